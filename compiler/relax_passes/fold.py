"""Constant folding in numpy for the shape and index arithmetic exporters emit (TVM's FoldConstant builds a kernel
per folded op: ~2 s on tiny ALBERT; this takes milliseconds and leaves FoldConstant almost nothing to do).

Only exact ops are folded (integer/boolean arithmetic, data movement, float add/sub/mul/div of constants), and a
folded value must have exactly the dtype and static shape Relax inferred for the binding, else it is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tvm
from tvm import relax


def _axes(value) -> list[int] | None:
    return None if value is None else [int(a) for a in value]


def _take(e, x, idx):
    mode = str(e.attrs.mode)
    return np.take(x, idx.astype(np.int64), axis=None if e.attrs.axis is None else int(e.attrs.axis),
                   mode="wrap" if mode == "wrap" else "raise")


def _gather_nd(e, x, idx):
    if int(e.attrs.batch_dims) != 0:
        raise ValueError("batch_dims")
    return x[tuple(np.moveaxis(idx.astype(np.int64), -1, 0))]


_FOLDERS: dict[str, Callable] = {
    "relax.add": lambda e, a, b: a + b,
    "relax.subtract": lambda e, a, b: a - b,
    "relax.multiply": lambda e, a, b: a * b,
    "relax.divide": lambda e, a, b: a / b,
    "relax.less": lambda e, a, b: a < b,
    "relax.greater": lambda e, a, b: a > b,
    "relax.less_equal": lambda e, a, b: a <= b,
    "relax.greater_equal": lambda e, a, b: a >= b,
    "relax.equal": lambda e, a, b: a == b,
    "relax.not_equal": lambda e, a, b: a != b,
    "relax.logical_and": lambda e, a, b: np.logical_and(a, b),
    "relax.logical_or": lambda e, a, b: np.logical_or(a, b),
    "relax.logical_not": lambda e, a: np.logical_not(a),
    "relax.where": lambda e, c, a, b: np.where(c, a, b),
    "relax.astype": lambda e, a: a.astype(str(e.attrs.dtype)),
    "relax.reshape": lambda e, a, shape: a.reshape(shape),
    "relax.broadcast_to": lambda e, a, shape: np.broadcast_to(a, shape),
    "relax.permute_dims": lambda e, a: np.transpose(a, _axes(e.attrs.axes)),
    "relax.expand_dims": lambda e, a: np.expand_dims(a, tuple(_axes(e.attrs.axis))),
    "relax.squeeze": lambda e, a: np.squeeze(a, None if e.attrs.axis is None else tuple(_axes(e.attrs.axis))),
    "relax.take": _take,
    "relax.gather_elements": lambda e, a, idx: np.take_along_axis(a, idx.astype(np.int64), int(e.attrs.axis)),
    "relax.gather_nd": _gather_nd,
    "relax.shape_to_tensor": lambda e, shape: np.asarray(shape, np.int64),
}


@tvm.transform.module_pass(opt_level=0, name="edgebert.FoldConstantsNumpy")
class FoldConstantsNumpy:
    """Fold calls whose operands are constants (and `shape_of` of static shapes) in every Relax function."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        out = mod
        for gv, func in mod.functions.items():
            if isinstance(func, relax.Function) and (func.attrs is None or "Composite" not in func.attrs):
                folder = _Folder(mod)
                new = folder.visit_expr(func)
                if folder.folded:
                    out = tvm.IRModule(dict(out.functions.items()), attrs=out.attrs)
                    out[gv] = new
        return out


@relax.expr_functor.mutator
class _Folder(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.values: dict = {}  # var -> folded Constant or ShapeExpr
        self.folded = 0

    def visit_var_(self, var):
        return self.values.get(var, var)

    def visit_dataflow_var_(self, var):
        return self.values.get(var, var)

    def visit_var_binding_(self, binding):
        value = self.visit_expr(binding.value)
        folded = _fold(value, binding.var) if isinstance(binding.var, relax.DataflowVar) else None
        if folded is None:  # keep the binding (and its var: static types do not change), operands folded
            self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(value)))
            return
        self.values[binding.var] = folded
        self.folded += 1


def _fold(value, var):
    """A Constant/ShapeExpr equal to `value`, or None when it cannot (or must not) be folded."""
    if not isinstance(value, tvm.ir.Call) or not isinstance(value.op, tvm.ir.Op):
        return None
    name = value.op.name
    if name == "relax.shape_of":
        shape = _static_shape(value.args[0])
        return None if shape is None else relax.ShapeExpr(shape)
    uniform = _uniform_gather(value, var)
    if uniform is not None:
        return uniform
    folder = _FOLDERS.get(name)
    if name == "relax.strided_slice":
        folder, value = _strided_slice_folder(value)
    if folder is None:
        return None
    args = []
    for a in value.args:
        if isinstance(a, tvm.ir.Constant):
            args.append(a.value.numpy())
        elif isinstance(a, relax.ShapeExpr):
            dims = _static_dims(a.values)
            if dims is None:
                return None
            args.append(dims)
        else:
            return None
    ty = var.ty
    want_shape = _static_dims(getattr(ty, "shape", None) or [])
    if not hasattr(ty, "dtype") or want_shape is None:
        return None
    try:
        with np.errstate(all="ignore"):
            result = np.asarray(folder(value, *args))
    except (ValueError, IndexError, TypeError):
        return None
    dtype = str(ty.dtype)
    if list(result.shape) != want_shape or (result.dtype.kind == "f") != dtype.startswith("float"):
        return None
    return relax.const(np.array(result, dtype=dtype, order="C"), dtype)  # (ascontiguousarray makes 0-d 1-d)


_GATHERS = ("relax.take", "relax.gather_elements", "relax.gather_nd")


def _uniform_gather(call, var):
    """A gather from a constant whose elements are all equal (RoBERTa's all-zero token-type buffer, gathered by run-time
    position ids) is that value at every position: a constant of the result's shape, whatever the indices."""
    if call.op.name not in _GATHERS or not isinstance(call.args[0], tvm.ir.Constant):
        return None
    data = call.args[0].value.numpy()
    ty = var.ty
    shape = _static_dims(getattr(ty, "shape", None) or [])
    if data.size == 0 or shape is None or not np.all(data == data.reshape(-1)[0]):
        return None
    return relax.const(np.full(shape, data.reshape(-1)[0], dtype=str(ty.dtype)), str(ty.dtype))


def _strided_slice_folder(call):
    """(folder, call with only the data operand) for strided_slice with literal axes/begin/end/strides."""
    try:
        axes, begin, end = ([int(getattr(f, "value", f)) for f in t.fields] for t in call.args[1:4])
        strides = [int(getattr(f, "value", f)) for f in call.args[4].fields] if len(call.args) > 4 else [1] * len(axes)
    except (AttributeError, TypeError, ValueError):
        return None, call

    def fold(_e, x):
        index = [slice(None)] * x.ndim
        for axis, b, e, st in zip(axes, begin, end, strides, strict=True):
            index[axis] = slice(b, e, st)
        return x[tuple(index)]

    return fold, relax.Call(call.op, [call.args[0]], call.attrs, call.ty_args)


def _static_shape(expr) -> list[int] | None:
    shape = getattr(getattr(expr, "ty", None), "shape", None)
    return None if shape is None else _static_dims(shape)


def _static_dims(dims) -> list[int] | None:
    try:
        return [int(d) for d in dims]
    except (TypeError, ValueError):
        return None


@tvm.transform.module_pass(opt_level=0, name="edgebert.FoldRemainingConstants")
class FoldRemainingConstants:
    """TVM's FoldConstant, run only when some call still has only constant operands (it costs 0.3-0.9 s on
    ALBERT even when there is nothing left to fold, e.g. after FoldConstantsNumpy on a legacy export)."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if any(_all_constant_call(b.value) for _, func in mod.functions.items() if isinstance(func, relax.Function)
               and isinstance(func.body, relax.SeqExpr) for block in func.body.blocks for b in block.bindings):
            return relax.transform.FoldConstant()(mod)
        return mod


def _all_constant_call(value) -> bool:
    return isinstance(value, tvm.ir.Call) and isinstance(value.op, tvm.ir.Op) and len(value.args) > 0 and all(
        isinstance(a, tvm.ir.Constant | relax.ShapeExpr) or
        (isinstance(a, relax.Tuple) and all(isinstance(f, tvm.ir.Constant) for f in a.fields))
        for a in value.args
    )
