"""Replace the exporters' attention-mask plumbing by one canonical additive-mask row computation.

Both torch exporters turn `attention_mask` [1, S] into an additive bias [1, 1, S, S] through a chain of
casts, reshapes, constant-index gathers, `logical_and` with an all-true constant and `broadcast_to`, ending in
`where(cond, 0, finfo.min)`. `SimplifyAttentionMask` recognises such a chain (only data-movement ops and
logical ops with constants, one int input), *verifies* on 0/1 probe masks (all ones, and each single zero;
the allowed ops move elements or test them for non-zero, so that decides every element) that
`cond[..., i, j] == (mask[0, j] != 0)`, and rewrites the bias to

    where(astype(reshape(mask, [1, 1, 1, S]), bool), 0.0, NEG)    # f32[1, 1, 1, S], one row per sentence

which fusion then groups as the composite `edgebert.mask_bias`. Users must be `add`s (broadcasting).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from edgebert.compiler.relax_passes.exprs import vars_in

_MOVE_OPS = {"relax.astype", "relax.reshape", "relax.take", "relax.gather_nd", "relax.broadcast_to",
             "relax.permute_dims", "relax.expand_dims", "relax.squeeze", "relax.logical_and", "relax.logical_or"}
#: The exporters use the model dtype's finfo.min: float32's -3.4e38, float16's -65504 (fp16 models are widened to
#: float32 on load, keeping that value); anything this negative zeroes a softmax entry (exp underflows to 0).
_MIN_NEG = -65504.0


@tvm.transform.module_pass(opt_level=0, name="edgebert.SimplifyAttentionMask")
class SimplifyAttentionMask:
    """See module docstring. Leaves anything it cannot verify unchanged."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        main_gv = mod.get_global_var("main")
        func = mod[main_gv]
        if not isinstance(func, relax.Function):
            return mod
        var2val = relax.analysis.get_var2val(func)
        users = _users(func)
        targets = {}
        for var, value in var2val.items():
            mask_param = _verified_mask_param(value, var2val, func.params)
            if mask_param is not None and all(_is_add(u) for u in users.get(var, [])):
                targets[var] = (mask_param, value)
        if not targets:
            return mod
        new_func = _MaskRewriter(targets, mod).visit_expr(func)
        out = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
        out[main_gv] = new_func
        return relax.transform.DeadCodeElimination(["main"])(out)


def _users(func) -> dict:
    users: dict = {}
    for block in func.body.blocks:
        for b in block.bindings:
            for v in vars_in(b.value):
                users.setdefault(v, []).append(b.value)
    return users


def _is_add(expr) -> bool:
    return isinstance(expr, tvm.ir.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.add"


def _verified_mask_param(value, var2val, params):
    """The int [1, S] parameter `value` = where(cond(param), 0, NEG) is a mask bias of, else None."""
    if not (isinstance(value, tvm.ir.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name == "relax.where"):
        return None
    cond, on, off = value.args
    on_v, off_v = _const(on), _const(off)
    if on_v is None or off_v is None or on_v.size != 1 or off_v.size != 1:
        return None
    if float(on_v.reshape(-1)[0]) != 0.0 or float(off_v.reshape(-1)[0]) > _MIN_NEG:
        return None
    leaves: list = []
    if not _collect_leaves(cond, var2val, leaves):
        return None
    inputs = [p for p in params if any(p.same_as(leaf) for leaf in leaves)]
    if len(inputs) != 1 or inputs[0].ty.ndim != 2 or not str(inputs[0].ty.dtype).startswith("int"):
        return None
    mask = inputs[0]
    seq = int(mask.ty.shape[1])
    cond_shape = [int(d) for d in cond.ty.shape]
    if len(cond_shape) != 4 or cond_shape[-1] != seq or int(mask.ty.shape[0]) != 1:
        return None
    probes = [np.ones((1, seq), np.int64)]
    for j in range(seq):
        p = np.ones((1, seq), np.int64)
        p[0, j] = 0
        probes.append(p)
    for probe in probes:
        got = _evaluate(cond, var2val, mask, probe)
        want = np.broadcast_to((probe != 0).reshape(1, 1, 1, seq), cond_shape)
        if got is None or got.shape != tuple(cond_shape) or not np.array_equal(got.astype(bool), want):
            return None
    return mask


def _collect_leaves(expr, var2val, leaves: list) -> bool:
    """Walk back through allowed ops; leaves are constants, shapes and parameters."""
    if isinstance(expr, relax.Var):
        if expr in var2val:
            return _collect_leaves(var2val[expr], var2val, leaves)
        leaves.append(expr)
        return True
    if isinstance(expr, tvm.ir.Constant | relax.ShapeExpr):
        return True
    if isinstance(expr, tvm.ir.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name in _MOVE_OPS:
        return all(_collect_leaves(a, var2val, leaves) for a in expr.args)
    return False


def _evaluate(expr, var2val, mask, probe):
    """numpy value of `expr` with `mask` := probe (allowed ops only)."""
    if isinstance(expr, relax.Var):
        if expr.same_as(mask):
            return probe
        return _evaluate(var2val[expr], var2val, mask, probe)
    if isinstance(expr, tvm.ir.Constant):
        return expr.value.numpy()
    if isinstance(expr, relax.ShapeExpr):
        return [int(d) for d in expr.values]
    args = [_evaluate(a, var2val, mask, probe) for a in expr.args]
    name, attrs = expr.op.name, expr.attrs
    if name == "relax.astype":
        return args[0].astype(str(attrs.dtype))
    if name in ("relax.reshape", "relax.broadcast_to"):
        return args[0].reshape(args[1]) if name == "relax.reshape" else np.broadcast_to(args[0], args[1])
    if name == "relax.take":
        return np.take(args[0], args[1].astype(np.int64), axis=int(attrs.axis))
    if name == "relax.gather_nd":
        if int(attrs.batch_dims) != 0:
            return None
        idx = args[1].astype(np.int64)
        return args[0][tuple(np.moveaxis(idx, -1, 0))]
    if name == "relax.permute_dims":
        return np.transpose(args[0], None if attrs.axes is None else [int(a) for a in attrs.axes])
    if name == "relax.expand_dims":
        return np.expand_dims(args[0], tuple(int(a) for a in attrs.axis))
    if name == "relax.squeeze":
        return np.squeeze(args[0], None if attrs.axis is None else tuple(int(a) for a in attrs.axis))
    if name == "relax.logical_and":
        return np.logical_and(args[0], args[1])
    if name == "relax.logical_or":
        return np.logical_or(args[0], args[1])
    return None


def _const(expr):
    return expr.value.numpy() if isinstance(expr, tvm.ir.Constant) else None


@relax.expr_functor.mutator
class _MaskRewriter(relax.PyExprMutator):
    def __init__(self, targets: dict, mod: tvm.IRModule):
        super().__init__(mod)
        self.targets = targets

    def visit_var_binding_(self, binding):
        if binding.var in self.targets:
            mask, where = self.targets[binding.var]
            seq = int(mask.ty.shape[1])
            row = relax.op.reshape(self.visit_expr(mask), relax.ShapeExpr([1, 1, 1, seq]))
            nonzero = relax.op.astype(row, "bool")
            bias = relax.op.where(nonzero, where.args[1], where.args[2])
            new = self.builder_.emit(bias, binding.var.name)
            self.set_var_remap(binding.var, new)
            return
        super().visit_var_binding_(binding)
