"""Plain-op handlers for the math the encoder zoo adds: comparisons (`vcmp`), clip and the ReLU family, log / sqrt /
erf, prefix sums (`vscan`), float -> int casts (`ftoi`), and sums / means over the last axis (a matmul by a ones
column). `MATH_OPS` maps relax op names to handlers (compiler/lower/op_table.py merges it with the others).

Integer operands of a comparison are converted with `itof`: exact for |value| < 2^24 (token ids: an id that large is
also out of range of every embedding table, where the `gather` traps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.lower.core import Const, Dest, Lowerer, Out, Scope, Tensor, Value, scalar_of, shape_of
from edgebert.compiler.lower.matmul_values import lower_matmul
from edgebert.compiler.lower.plain_ops import _float_only, binary, cast, unary
from edgebert.compiler.lower.plain_ops import _h_power as _plain_power
from edgebert.compiler.views import View
from edgebert.isa.errors import CompileError
from edgebert.isa.table import CMP_MODES

#: fp32 holds every integer of at most this magnitude exactly.
EXACT_INT = 2**24
_MIRROR = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}


def as_float(low: Lowerer, value: Value, what: str) -> Value:
    """A float32 (or bool 0/1) value equal to `value`: ints through `itof`, integer constants exactly or an error."""
    if value.dtype in ("float32", "bool"):
        return value
    if value.dtype not in ("int32", "int64"):
        raise CompileError(f"{what}: {value.dtype} operands are not supported")
    if isinstance(value, Const):
        if value.array.size and np.abs(value.array).max() >= EXACT_INT:
            raise CompileError(f"{what}: integer constant {value.array.reshape(-1)[0]} is not exact in fp32")
        return Const(value.array.astype(np.float32), "float32")
    f = low.new_tensor(f"{what}.f", value.shape, "float32")
    em.emit_unary(low.prog, "itof", f.view, value.view)
    return f


def _broadcasts(v: Value, shape: tuple[int, ...]) -> bool:
    """Whether a value is smaller than `shape` (broadcast) or a one-element constant."""
    vshape = v.array.shape if isinstance(v, Const) else v.shape
    return tuple(vshape) != tuple(shape)


def compare(low: Lowerer, out: Out, mode: str, a: Value, b: Value) -> Tensor:
    """dst = (a mode b) as 0/1: one `vcmp`, the broadcast operand as its `b` (the comparison mirrored if need be)."""
    name, shape = out.dest.name, out.dest.shape
    a, b = as_float(low, a, name), as_float(low, b, name)
    if _broadcasts(a, shape) and not _broadcasts(b, shape) or isinstance(a, Const) and not isinstance(b, Const):
        a, b, mode = b, a, _MIRROR[mode]
    ta, tb = low.to_sram(a, name), low.to_sram(b, name)
    if ta.shape != shape:
        ta = low.dense_copy(Tensor(ta.view.broadcast_to(shape), ta.dtype), f"{name}.a")
    dst = out.tensor(low, ta)
    em.emit_binary(low.prog, "vcmp", dst.view, ta.view, tb.view.broadcast_to(shape), mode=CMP_MODES.index(mode))
    return dst


def _h_compare(mode: str):
    def handler(scope: Scope, var, expr, args):
        return compare(scope.low, scope.out(var), mode, args[0], args[1])

    return handler


def _bound(expr: Any) -> float | None:
    """The value of a clip bound (a PrimValue or a one-element constant)."""
    value = getattr(expr, "value", None)  # PrimValue(IntImm) or an IntImm / FloatImm itself
    value = getattr(value, "value", value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return scalar_of(expr)


def _h_clip(scope: Scope, var, expr, args):
    """clip(x, lo, hi) = min(max(x, lo), hi) with constant bounds (an infinite bound is no instruction)."""
    _float_only(var, args[0])
    lo, hi = _bound(expr.args[1]), _bound(expr.args[2])
    if lo is None or hi is None:
        raise CompileError(f"binding '{var.name}': clip bounds must be constants")
    low = scope.low
    t = args[0]
    for mnemonic, bound in (("vmax", lo), ("vmin", hi)):
        if np.isfinite(bound):
            out = scope.out(var, [expr.args[0]]) if t is args[0] else Out(Dest.of(var), (t,))
            t = binary(low, out, mnemonic, t, Const(np.array(bound, np.float32), "float32"))
    return t


def _relu_plus_slope(scope: Scope, var, expr, x: Value, alpha: Value) -> Tensor:
    """relu(x) + alpha * min(x, 0): exact for any alpha (one of the two terms is 0)."""
    low = scope.low
    dest = Dest.of(var)
    pos = unary(low, Out(Dest(f"{var.name}.pos", dest.shape)), "relu", x)
    neg = binary(low, Out(Dest(f"{var.name}.neg", dest.shape)), "vmin", x, Const(np.array(0.0, np.float32), "float32"))
    neg = binary(low, Out(Dest(f"{var.name}.neg", dest.shape), (neg,)), "vmul", neg, alpha)
    return binary(low, Out(dest, (pos, neg)), "vadd", pos, neg)


def _h_leakyrelu(scope: Scope, var, expr, args):
    """max(x, alpha x) for 0 <= alpha <= 1 (two instructions, exact), else relu(x) + alpha min(x, 0)."""
    _float_only(var, args[0])
    alpha = float(expr.attrs.alpha)
    if 0.0 <= alpha <= 1.0:
        low = scope.low
        x = low.to_sram(args[0], var.name)
        scaled = binary(low, Out(Dest(f"{var.name}.ax", x.shape)), "vmul", x, Const(np.array(alpha, np.float32),
                                                                                  "float32"))
        return binary(low, Out(Dest.of(var), (scaled,)), "vmax", x, scaled)
    return _relu_plus_slope(scope, var, expr, args[0], Const(np.array(alpha, np.float32), "float32"))


def _h_prelu(scope: Scope, var, expr, args):
    """relu(x) + alpha * min(x, 0) with alpha along `axis` (broadcast over the others)."""
    _float_only(var, *args)
    x, alpha = args
    shape = shape_of(var)
    axis = int(expr.attrs.axis) % len(shape)
    bshape = [1] * len(shape)
    bshape[axis] = shape[axis]
    if isinstance(alpha, Const):
        a = alpha.array.reshape(-1)
        alpha = Const(np.broadcast_to(a, (shape[axis],)).reshape(bshape).astype(np.float32), "float32")
    else:
        view = alpha.view.reshape(tuple(bshape)) if alpha.view.size == shape[axis] else None
        if view is None:
            raise CompileError(f"binding '{var.name}': prelu slope must hold one value per channel")
        alpha = Tensor(view, "float32")
    return _relu_plus_slope(scope, var, expr, x, alpha)


def _h_power(scope: Scope, var, expr, args):
    """x ** 0.5 as `sqrt`; the other exponents as plain_ops does."""
    if scalar_of(expr.args[1]) == 0.5:
        _float_only(var, args[0])
        return unary(scope.low, scope.out(var, [expr.args[0]]), "sqrt", args[0])
    return _plain_power(scope, var, expr, args)


def _h_cumsum(scope: Scope, var, expr, args):
    """Prefix sum along `axis` of a float32 tensor: `vscan` over rows (another axis through transposed copies)."""
    _float_only(var, args[0])
    if expr.attrs.dtype is not None and str(expr.attrs.dtype) not in ("float32", ""):
        raise CompileError(f"binding '{var.name}': cumsum to {expr.attrs.dtype} (float32 only)")
    low = scope.low
    shape = shape_of(var)
    nd = len(shape)
    axis = int(expr.attrs.axis) % nd if expr.attrs.axis is not None else None
    x = low.to_sram(args[0], var.name)
    fields = {"exclusive": int(bool(expr.attrs.exclusive))}
    if axis is None:  # over the flattened tensor: one row
        flat = x.view.reshape((1, x.view.size)) or low.dense_copy(x, var.name).view.reshape((1, x.view.size))
        dst = low.new_tensor(var.name, shape, "float32")
        _scan_rows(low, dst.view.reshape((1, x.view.size)), flat, fields)
        return dst
    perm = tuple(a for a in range(nd) if a != axis) + (axis,)
    moved = x.view.permute(perm)
    if moved.strides[-1] != 1 and moved.shape[-1] > 1:
        moved = low.dense_copy(Tensor(moved, x.dtype), f"{var.name}.t").view
    if axis == nd - 1:
        dst = scope.out_tensor(var, x, [expr.args[0]])
        if dst.view.strides[-1] == 1 or shape[-1] == 1:
            _scan_rows(low, dst.view, moved, fields)
            return dst
    scanned = low.new_tensor(f"{var.name}.t", moved.shape, "float32")
    _scan_rows(low, scanned.view, moved, fields)
    dst = low.new_tensor(var.name, shape, "float32")
    em.emit_unary(low.prog, "vmov", dst.view.permute(perm), scanned.view)
    return dst


def _scan_rows(low: Lowerer, dst: View, src: View, fields: dict[str, int]) -> None:
    """`vscan` each row (the last axis) of `src` into `dst` (tiles never merge rows: the scan would run on)."""
    if not em.emit_row_op(low.prog, "vscan", dst, src, **fields):
        raise CompileError(f"internal: prefix sum over a non-contiguous row ({src.shape}, {src.strides})")


def _h_astype(scope: Scope, var, expr, args):
    """float32 -> int32/int64 (`ftoi`, truncating) and float32 -> bool (!= 0); the rest as plain_ops does."""
    src, dst_dtype = args[0].dtype, str(expr.attrs.dtype)
    low = scope.low
    if src == "float32" and dst_dtype in ("int32", "int64"):
        if isinstance(args[0], Const):
            return Const(np.trunc(args[0].array).astype(dst_dtype), dst_dtype)
        x = low.to_sram(args[0], var.name)
        out = low.new_tensor(var.name, shape_of(var), dst_dtype)
        em.emit_unary(low.prog, "ftoi", out.view, x.view)
        return out
    if src == "float32" and dst_dtype == "bool":
        return compare(low, scope.out(var), "ne", args[0], Const(np.array(0.0, np.float32), "float32"))
    return cast(low, Dest(var.name, shape_of(var), dst_dtype), args[0])


def _reduced_last_axis(var, expr) -> bool:
    """Whether a reduction sums the last axis (False: it only drops size-1 axes); other axes are an error."""
    x_shape = shape_of(expr.args[0])
    nd = len(x_shape)
    axes = range(nd) if expr.attrs.axis is None else [int(a) % nd for a in expr.attrs.axis]
    reduced = sorted(a for a in axes if x_shape[a] != 1)
    if reduced and reduced != [nd - 1]:
        raise CompileError(f"binding '{var.name}': reductions over the last axis only (axes {list(axes)} of "
                           f"{x_shape})")
    return bool(reduced)


def _row_sums(scope: Scope, var, expr, x: Value) -> Tensor:
    """x @ ones[N, 1]: each row's sum on the PU (fp32 accumulation), shaped like the result."""
    _float_only(var, x)
    low = scope.low
    shape = shape_of(expr.args[0])
    if not _reduced_last_axis(var, expr):
        return low.to_sram(x, var.name)
    ones = Const(np.ones((shape[-1], 1), np.float32), "float32")
    return lower_matmul(low, Out(Dest(var.name, (*shape[:-1], 1))), x, ones)


def _h_sum(scope: Scope, var, expr, args):
    t = _row_sums(scope, var, expr, args[0])
    return Tensor(t.view.reshape(shape_of(var)) or scope.low.dense_copy(t, var.name).view.reshape(shape_of(var)),
                  "float32")


def _h_mean(scope: Scope, var, expr, args):
    """Row sums, then / N (an exact `vmuli` when N is a power of two, else `vdiv`)."""
    t = _row_sums(scope, var, expr, args[0])
    n = shape_of(expr.args[0])[-1] if _reduced_last_axis(var, expr) else 1
    if n > 1:
        t = binary(scope.low, Out(Dest(var.name, t.shape), (t,)), "vdiv", t, Const(np.array(n, np.float32),
                                                                                     "float32"))
    return Tensor(t.view.reshape(shape_of(var)) or scope.low.dense_copy(t, var.name).view.reshape(shape_of(var)),
                  "float32")


def _h_float_unary(mnemonic: str):
    def handler(scope: Scope, var, expr, args):
        _float_only(var, *args)
        return unary(scope.low, scope.out(var, [expr.args[0]]), mnemonic, args[0])

    return handler


MATH_OPS = {
    "relax.equal": _h_compare("eq"),
    "relax.not_equal": _h_compare("ne"),
    "relax.less": _h_compare("lt"),
    "relax.less_equal": _h_compare("le"),
    "relax.greater": _h_compare("gt"),
    "relax.greater_equal": _h_compare("ge"),
    "relax.clip": _h_clip,
    "relax.nn.leakyrelu": _h_leakyrelu,
    "relax.nn.prelu": _h_prelu,
    "relax.log": _h_float_unary("log"),
    "relax.sqrt": _h_float_unary("sqrt"),
    "relax.erf": _h_float_unary("erf"),
    "relax.power": _h_power,
    "relax.cumsum": _h_cumsum,
    "relax.astype": _h_astype,
    "relax.sum": _h_sum,
    "relax.mean": _h_mean,
}
