"""Canonicalise what exporters decompose back into the Relax op it came from, so fusion and lowering see one form:

* exact GELU, `x * 0.5 * (1 + erf(x / sqrt 2))` in any association order (legacy exporter at opset <= 18, dynamo
  at opset 18, transformers' `gelu_python`), also with `x * (1 / sqrt 2)`  ->  `nn.gelu(x)` (the `gelu_erf` SFU op);
* LayerNorm below opset 17, `d = x - mean(x); d / sqrt(mean(d^2) + eps) * gamma + beta` (the square as `d ** 2` or
  `d * d`, constant gamma and beta of the last dim)  ->  `nn.layer_norm(x, gamma, beta, axes=[-1], epsilon=eps)`,
  which fusion groups as `edgebert.layer_norm` exactly as at opset 17.

* `min` / `max` over axis 0 of `stack((a, b, ...))` (TVM's import of ONNX's variadic Min / Max)  ->  a chain of
  `minimum` / `maximum` of the operands.

* SDPA-exported attention (BERT, RoBERTa, ... from transformers' sdpa path): `matmul(q * c, kT * c)` ->
  `matmul(q, kT) * c^2`, `where(isnan(softmax(x)), 0, softmax(x))` -> the softmax, and a reshape to the shape it
  already has -> its operand, and any chain of transposes and reshapes that only add or drop size-1 dims (dynamo's
  `k.transpose(-1, -2)` after the head split, with or without the batch dim dropped) -> one transpose, so the
  attention fuses into `edgebert.attention` (the memory-hierarchy plan blocks it per head on small
  SRAMs; unfused, its [heads, seq, seq] scores had to fit whole).

Constants are checked (sqrt 2, 1, 0.5 to rtol 1e-5); anything else stays as it is (still lowered op by op).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tvm
from tvm import relax

from edgebert.compiler.relax_passes.exprs import rebind_matches

_RTOL = 1e-5


def _op(expr, var2val: dict, name: str):
    """The call `expr` is (or is bound to) when it applies op `name`, else None."""
    value = var2val.get(expr, expr) if isinstance(expr, relax.Var) else expr
    if isinstance(value, tvm.ir.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name == name:
        return value
    return None


def _scalar(expr) -> float | None:
    if isinstance(expr, tvm.ir.Constant):
        a = expr.value.numpy()
        if a.size == 1 and a.dtype.kind == "f":
            return float(a.reshape(-1)[0])
    return None


def _is(expr, want: float) -> bool:
    value = _scalar(expr)
    return value is not None and math.isclose(value, want, rel_tol=_RTOL)


def _orders(expr, var2val: dict, name: str) -> list[tuple]:
    """Both orders of the operands of `expr` when it is (or is bound to) a binary call of commutative op `name`,
    else none."""
    call = _op(expr, var2val, name)
    if call is None:
        return []
    a, b = call.args
    return [(a, b), (b, a)]


def _erf_term(expr, var2val: dict):
    """x when `expr` is 1 + erf(x / sqrt 2) (or erf(x * 1/sqrt 2) + 1), else None."""
    for erf_expr, one in _orders(expr, var2val, "relax.add"):
        erf = _op(erf_expr, var2val, "relax.erf")
        if erf is None or not _is(one, 1.0):
            continue
        div = _op(erf.args[0], var2val, "relax.divide")
        if div is not None and _is(div.args[1], math.sqrt(2.0)):
            return div.args[0]
        for x, c in _orders(erf.args[0], var2val, "relax.multiply"):
            if _is(c, 1.0 / math.sqrt(2.0)):
                return x
    return None


def _gelu_of(x, t, var2val: dict) -> bool:
    """Whether t is 1 + erf(x / sqrt 2)."""
    term = _erf_term(t, var2val)
    return term is not None and x.same_as(term)


def exact_gelu(value, var2val: dict):
    """`nn.gelu(x)` when `value` is 0.5 x (1 + erf(x / sqrt 2)) in any association order, else None."""
    for left, right in _orders(value, var2val, "relax.multiply"):
        for a, b in _orders(left, var2val, "relax.multiply"):
            if _is(right, 0.5) and _gelu_of(a, b, var2val):  # (x * t) * 0.5
                return relax.op.nn.gelu(a)
            if _is(b, 0.5) and _gelu_of(a, right, var2val):  # (x * 0.5) * t
                return relax.op.nn.gelu(a)
        for t, c in _orders(right, var2val, "relax.multiply"):  # x * (t * 0.5)
            if _is(c, 0.5) and _gelu_of(left, t, var2val):
                return relax.op.nn.gelu(left)
    return None


def _last_axis_mean(expr, var2val: dict):
    """The operand of mean(operand, axis=[-1], keepdims=True), else None."""
    mean = _op(expr, var2val, "relax.mean")
    if mean is None or not bool(mean.attrs.keepdims) or mean.attrs.axis is None:
        return None
    ndim = mean.args[0].ty.ndim
    axes = [int(a) % ndim for a in mean.attrs.axis]
    return mean.args[0] if axes == [ndim - 1] else None


def _row_const(expr, channels: int) -> bool:
    if not isinstance(expr, tvm.ir.Constant):
        return False
    a = expr.value.numpy()
    return a.dtype == np.float32 and a.size == channels and (a.ndim == 1 or a.shape[-1] == channels)


def decomposed_layer_norm(value, var2val: dict):
    """`nn.layer_norm(x, gamma, beta, [-1], eps)` when `value` is LayerNorm decomposed below opset 17, else None."""
    add = _op(value, var2val, "relax.add")
    if add is None:
        return None
    scaled, beta = add.args
    mul = _op(scaled, var2val, "relax.multiply")
    if mul is None:
        return None
    normed, gamma = mul.args
    div = _op(normed, var2val, "relax.divide")
    if div is None:
        return None
    d, denom = div.args
    sub = _op(d, var2val, "relax.subtract")
    if sub is None or _mean_var(sub.args[1], var2val, sub.args[0]) is None:
        return None
    x = sub.args[0]
    sqrt = _op(denom, var2val, "relax.sqrt")
    plus_eps = _op(sqrt.args[0], var2val, "relax.add") if sqrt is not None else None
    if plus_eps is None or _scalar(plus_eps.args[1]) is None:
        return None
    square = _last_axis_mean(plus_eps.args[0], var2val)
    if square is None or not _is_square_of(square, d, var2val):
        return None
    channels = int(x.ty.shape[-1])
    if not (_row_const(gamma, channels) and _row_const(beta, channels)):
        return None
    eps = _scalar(plus_eps.args[1])
    g = relax.const(gamma.value.numpy().reshape(channels), "float32")
    b = relax.const(beta.value.numpy().reshape(channels), "float32")
    return relax.op.nn.layer_norm(x, g, b, axes=[-1], epsilon=eps)


def _mean_var(mu, var2val: dict, x):
    """`mu` when it is mean(x, axis=-1, keepdims), else None."""
    operand = _last_axis_mean(mu, var2val)
    return mu if operand is not None and operand.same_as(x) else None


def _is_square_of(expr, d, var2val: dict) -> bool:
    power = _op(expr, var2val, "relax.power")
    if power is not None:
        return power.args[0].same_as(d) and _is(power.args[1], 2.0)
    mul = _op(expr, var2val, "relax.multiply")
    return mul is not None and mul.args[0].same_as(d) and mul.args[1].same_as(d)


def stacked_extremum(value, var2val: dict):
    """`minimum(a, b)` / `maximum(a, b)` when `value` is min / max over axis 0 of stack((a, b), axis=0) (TVM's
    import of ONNX's variadic Min / Max, e.g. transformers' xIELU), else None."""
    for name, op in (("relax.min", relax.op.minimum), ("relax.max", relax.op.maximum)):
        reduce = _op(value, var2val, name)
        if reduce is None or reduce.attrs.keepdims or reduce.attrs.axis is None or \
                [int(a) for a in reduce.attrs.axis] != [0]:
            continue
        stack = _op(reduce.args[0], var2val, "relax.stack")
        if stack is None or int(stack.attrs.axis) != 0 or not isinstance(stack.args[0], relax.Tuple):
            continue
        parts = list(stack.args[0].fields)
        out = parts[0]
        for part in parts[1:]:
            out = op(out, part)
        return out
    return None


def scaled_matmul(value, var2val: dict):
    """`matmul(a, b) * (c1 * c2)` when `value` is `matmul(a * c1, b * c2)` with scalar constants c1 and/or c2 (an
    SDPA export scales q and k^T by sqrt(1 / sqrt(d)) each), else None: the attention fusion's form. Equal up to
    float rounding (the scale is applied once, after the sum)."""
    mm = _op(value, var2val, "relax.matmul")
    if mm is None or any(isinstance(a, tvm.ir.Constant) for a in mm.args):
        return None  # activations x activations only (q @ kT): a dense keeps its scaled input (GELU's 0.5 x ...)
    args, scale = list(mm.args), 1.0
    for side in (0, 1):
        mul = _op(args[side], var2val, "relax.multiply")
        if mul is None:
            continue
        for x, c in ((mul.args[0], mul.args[1]), (mul.args[1], mul.args[0])):
            k = _scalar(c)
            if k is not None and c.value.numpy().dtype == np.float32 and not isinstance(x, tvm.ir.Constant):
                args[side], scale = x, scale * k
                break
    if args[0].same_as(mm.args[0]) and args[1].same_as(mm.args[1]):
        return None
    return relax.op.multiply(relax.op.matmul(args[0], args[1]), relax.const(np.float32(scale), "float32"))


def nan_guarded_softmax(value, var2val: dict):
    """`s` when `value` is `where(isnan(s), 0, s)` with `s` a softmax (the softmax of finite scores is never NaN;
    `idioms.py` drops the same idiom after fusion, this one before it so the attention fuses), else None."""
    where = _op(value, var2val, "relax.where")
    if where is None:
        return None
    cond, zero, s = where.args
    isnan = _op(cond, var2val, "relax.isnan")
    if isnan is None or not isnan.args[0].same_as(s) or not _is_zero(zero):
        return None
    return s if _op(s, var2val, "relax.nn.softmax") is not None else None


def _is_zero(expr) -> bool:
    if not isinstance(expr, tvm.ir.Constant):
        return False
    a = expr.value.numpy()
    return a.size >= 1 and not np.any(a)


def same_shape_reshape(value, var2val: dict):
    """The operand of a reshape to the shape it already has, else None."""
    r = _op(value, var2val, "relax.reshape")
    if r is None:
        return None
    a, b = _static_shape(r.args[0]), _static_shape(value)
    return r.args[0] if a is not None and a == b and r.args[0].ty.dtype == value.ty.dtype else None


def composed_permute(value, var2val: dict):
    """`permute_dims(x, axes)` (or `x`) when `value` is a chain of at least two transposes and reshapes that only add
    or drop size-1 dims, with at least one transpose, down to `x` (dynamo's `k.transpose(-1, -2)` after the head
    split: two transposes with a no-op reshape between, or a transpose of [H, S, D] between reshapes dropping and
    restoring the batch dim), else None: the attention fusion sees one transpose."""
    chain: list = []  # the ops from `value` down to the base
    expr = value
    while True:
        call = _op(expr, var2val, "relax.permute_dims")
        if call is None:
            call = _op(expr, var2val, "relax.reshape")
        if call is None or (call.op.name == "relax.reshape" and not _unit_reshape(call.args[0], call)):
            break
        chain.append(call)
        expr = call.args[0]
    if len(chain) < 2 or all(c.op.name == "relax.reshape" for c in chain):
        return None
    base_shape, out_shape = _static_shape(expr), _static_shape(value)
    if base_shape is None or out_shape is None or len(base_shape) != len(out_shape):
        return None
    axes: list[int | None] = list(range(len(base_shape)))  # per axis of the current tensor: its base axis (None: 1)
    for call in reversed(chain):
        if call.op.name == "relax.permute_dims":
            n = len(axes)
            perm = [int(a) % n for a in call.attrs.axes] if call.attrs.axes is not None else list(range(n))[::-1]
            if sorted(perm) != list(range(n)):
                return None
            axes = [axes[j] for j in perm]
        else:  # the non-unit axes keep their order; unit axes come and go
            real = iter(a for a in axes if a is not None and base_shape[a] != 1)
            axes = [None if d == 1 else next(real) for d in _static_shape(call)]
    units = iter(i for i, d in enumerate(base_shape) if d == 1)
    try:
        full = [a if a is not None and base_shape[a] != 1 else next(units) for a in axes]
    except StopIteration:
        return None
    if sorted(full) != list(range(len(base_shape))) or [base_shape[a] for a in full] != out_shape:
        return None
    return expr if full == list(range(len(full))) else relax.op.permute_dims(expr, full)


def _unit_reshape(x, reshape) -> bool:
    """Whether `reshape` of `x` only adds or drops size-1 dims (static shapes)."""
    a, b = _static_shape(x), _static_shape(reshape)
    return a is not None and b is not None and [d for d in a if d != 1] == [d for d in b if d != 1]


def _static_shape(expr) -> list[int] | None:
    shape = getattr(expr.ty, "shape", None)
    try:
        return [int(d) for d in shape] if shape is not None else None
    except (TypeError, ValueError):
        return None


#: Each rewrite: (binding value, var -> bound value) -> the canonical expression, or None.
REWRITES: tuple[Callable, ...] = (exact_gelu, decomposed_layer_norm, stacked_extremum, scaled_matmul,
                                  nan_guarded_softmax, same_shape_reshape, composed_permute)


def canonical_form(value, var2val: dict):
    """The first of REWRITES that matches `value`, else None."""
    return next((e for rewrite in REWRITES if (e := rewrite(value, var2val)) is not None), None)


@tvm.transform.module_pass(opt_level=0, name="edgebert.CanonicalizeDecomposed")
class CanonicalizeDecomposed:
    """Rebind each matched binding to its canonical op (module docstring); dead intermediate bindings are dropped."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return rebind_matches(mod, canonical_form)
