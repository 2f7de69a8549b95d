"""The backend's own support check: every binding of `main` and of the functions it calls that the lowering would
reject, with why, in one CompileError, before any lowering (the pipeline's `check` stage, right after the Relax
passes). It reads the lowering's own tables (op_table.LOWERED_OPS, composites.COMPOSITES) and the restrictions their
handlers enforce (`RESTRICTIONS`), so what it accepts lowers and what it rejects is listed, every binding at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgebert.compiler.lower.composites import COMPOSITES
from edgebert.compiler.lower.core import STORAGE, composite_of, op_name
from edgebert.compiler.lower.op_table import FOLDABLE, LOWERED_OPS
from edgebert.isa.errors import CompileError

#: Bindings named one by one in the error (the rest are counted).
MAX_LISTED = 30

_FLOAT = ("float32", "bool")
_INTS = ("int32", "int64")


@dataclass(frozen=True)
class Unsupported:
    """One binding the backend cannot lower."""

    function: str
    binding: str
    op: str
    reason: str

    def __str__(self) -> str:
        return f"{self.function}: {self.binding} = {self.op} ({self.reason})"


def _dtype(expr: Any) -> str:
    return str(getattr(getattr(expr, "ty", None), "dtype", ""))


def _is_const(expr: Any) -> bool:
    return type(expr).__name__ == "GenericConst"


def _scalar(expr: Any) -> float | None:
    if _is_const(expr):
        a = expr.value.numpy()
        if a.size == 1:
            return float(a.reshape(-1)[0])
    return None


def _tensor_args(call: Any) -> list:
    return [a for a in call.args if type(getattr(a, "ty", None)).__name__ == "TensorType"]


def _float_args(call: Any) -> str | None:
    bad = sorted({_dtype(a) for a in _tensor_args(call) if not _is_const(a) and _dtype(a) not in _FLOAT})
    if bad:
        return (f"{'/'.join(bad)} arithmetic: the accelerator computes in float32 (integer arithmetic is only "
                "rewritten to float32 where its range is bounded, compiler/relax_passes/int_arith.py)")
    return None


def _power(call: Any) -> str | None:
    p = _scalar(call.args[1])
    if p not in (0.5, 1.0, 2.0, 3.0):
        return "exponents 0.5, 1, 2 and 3 only (sqrt or multiplies)"
    return _float_args(call)


def _take(call: Any) -> str | None:
    axis = int(call.attrs.axis) if call.attrs.axis is not None else 0
    data, idx = call.args
    if not _is_const(idx) and axis % max(data.ty.ndim, 1) != 0:
        return f"run-time indices along axis {axis} (axis 0 only: the `gather` instruction)"
    return None


_CASTS = {("float32", "int32"), ("float32", "int64"), ("float32", "bool"), ("bool", "float32"),
          ("int32", "float32"), ("int64", "float32"), ("int32", "bool"), ("int64", "bool")}


def _astype(call: Any) -> str | None:
    src, dst = _dtype(call.args[0]), str(call.attrs.dtype)
    if src == dst or (src in _INTS and dst in _INTS) or (src, dst) in _CASTS or _is_const(call.args[0]):
        return None
    return f"cast from {src} to {dst}"


def _where(call: Any) -> str | None:
    if _dtype(call.args[0]) != "bool":
        return f"a {_dtype(call.args[0])} condition"
    return _float_args_of(call.args[1:])


def _float_args_of(args: list) -> str | None:
    bad = sorted({_dtype(a) for a in args if not _is_const(a) and _dtype(a) not in _FLOAT
                  and type(getattr(a, "ty", None)).__name__ == "TensorType"})
    return f"{'/'.join(bad)} values (float32 only)" if bad else None


def _last_axis(call: Any) -> str | None:
    shape = _shape(call.args[0])
    if shape is None:
        return None
    nd = len(shape)
    axes = range(nd) if call.attrs.axis is None else [int(a) % nd for a in call.attrs.axis]
    if [a for a in axes if shape[a] != 1 and a != nd - 1]:
        return "reductions over the last axis only"
    return _float_args(call)


def _cumsum(call: Any) -> str | None:
    if _dtype(call.args[0]) != "float32":
        return (f"prefix sum of {_dtype(call.args[0])} values of unbounded range (integers are summed in float32 "
                "only where their range is bounded)")
    return None


def _const_index(call: Any) -> str | None:
    return None if _is_const(call.args[1]) else "run-time indices (constant indices only)"


def _pad(call: Any) -> str | None:
    if str(call.attrs.pad_mode) != "constant":
        return f"pad mode {call.attrs.pad_mode} (constant only)"
    if min(int(w) for w in call.attrs.pad_width) < 0:
        return "negative pads"
    return None


def _layer_norm(call: Any) -> str | None:
    nd = call.args[0].ty.ndim
    axes = sorted(int(a) % nd for a in call.attrs.axes)
    return None if axes == list(range(nd - len(axes), nd)) else "normalising other than the trailing axes"


def _clip(call: Any) -> str | None:
    for bound in call.args[1:]:
        value = getattr(bound, "value", None)
        if not (isinstance(getattr(value, "value", value), int | float) or _scalar(bound) is not None):
            return "run-time clip bounds"
    return _float_args(call)


_ARITH = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum", "relax.minimum",
          "relax.matmul", "relax.tanh", "relax.exp", "relax.log", "relax.sqrt", "relax.erf", "relax.nn.relu",
          "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.abs", "relax.sigmoid", "relax.negative", "relax.nn.softmax",
          "relax.nn.leakyrelu", "relax.nn.prelu")

#: relax op -> what its handler refuses (a reason), beyond the op being in the table.
RESTRICTIONS: dict[str, Callable[[Any], str | None]] = {
    **dict.fromkeys(_ARITH, _float_args),
    "relax.power": _power,
    "relax.take": _take,
    "relax.astype": _astype,
    "relax.where": _where,
    "relax.sum": _last_axis,
    "relax.mean": _last_axis,
    "relax.cumsum": _cumsum,
    "relax.gather_nd": _const_index,
    "relax.gather_elements": _const_index,
    "relax.nn.pad": _pad,
    "relax.nn.layer_norm": _layer_norm,
    "relax.clip": _clip,
}


def _shape(expr: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(d) for d in expr.ty.shape.values)
    except (AttributeError, TypeError):
        return None


def _type_problem(var: Any) -> str | None:
    """A binding's result the backend cannot hold: a dtype without storage, a shape that is not static."""
    ty = var.ty
    fields = getattr(ty, "fields", None)
    for t in fields if fields is not None else [ty]:
        dtype = str(getattr(t, "dtype", ""))
        if not dtype:
            continue
        if dtype not in STORAGE:
            return f"dtype {dtype} (float32, bool, int32/int64 indices only)"
        shape = getattr(t, "shape", None)
        try:
            [int(d) for d in shape.values]
        except (AttributeError, TypeError):
            return "shape is not static"
    return None


def unsupported_bindings(mod: Any) -> list[Unsupported]:
    """Every binding of `main` and of the (non-composite) functions it calls that the backend cannot lower."""
    found: list[Unsupported] = []
    seen: set[str] = set()

    def walk(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        func = mod[name]
        for block in func.body.blocks:
            for b in block.bindings:
                why = _binding_problem(mod, b, walk)
                if why is not None:
                    found.append(Unsupported(name, b.var.name, why[0], why[1]))

    walk("main")
    return found


def _binding_problem(mod: Any, b: Any, walk: Callable[[str], None]) -> tuple[str, str] | None:
    """(op, reason) when the backend cannot lower binding `b`; a called function is walked too."""
    value = b.value
    kind = type(value).__name__
    name = op_name(value)
    if name is None:
        if kind == "Call" and type(value.op).__name__ == "GlobalVar":
            callee = mod[value.op]
            composite = composite_of(callee)
            if composite is None:
                walk(value.op.name_hint)
                return None
            return None if composite in COMPOSITES else (
                composite, f"{value.op.name_hint}: a composite the backend has no handler for")
        if kind in ("Tuple", "TupleGetItem", "Var", "DataflowVar", "GenericConst"):
            return None
        return (kind, "cannot be lowered")
    if name == "relax.call_tir":
        callee = getattr(value.args[0], "name_hint", "?")
        return (name, f"a TE kernel TVM's importer emitted ({callee}): no lowering")
    if name in FOLDABLE and all(_is_const(a) or type(a).__name__ in ("ShapeExpr", "PrimValue") for a in value.args):
        return None  # folded at lowering
    if name not in LOWERED_OPS:
        return (name, "no lowering for this op")
    problem = _type_problem(b.var)
    if problem is not None:
        return (name, problem)
    check = RESTRICTIONS.get(name)
    reason = check(value) if check is not None else None
    return (name, reason) if reason is not None else None


def check_supported(mod: Any) -> None:
    """Raise one CompileError listing every binding the backend cannot lower (`unsupported_bindings`)."""
    bad = unsupported_bindings(mod)
    if not bad:
        return
    ops = ", ".join(sorted({u.op for u in bad}))
    listing = "; ".join(str(u) for u in bad[:MAX_LISTED])
    if len(bad) > MAX_LISTED:
        listing += f"; and {len(bad) - MAX_LISTED} more"
    raise CompileError(f"{len(bad)} binding(s) the edgebert backend cannot lower [ops: {ops}]: {listing}")

