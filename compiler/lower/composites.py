"""Lowering of the `edgebert.*` composites, `{composite name: handler}`: each composite is lowered as a unit from its
arguments and the facts `relax_passes.composite_attrs` gives, never by inlining its body.

What each emits (views in, views out; a handler may write over an argument the call marks reusable):
  dense       one tiled matmul with the bias row in the matmul (`has_bias`)
  pooler      dense, then `tanh` in place
  layer_norm  one `layernorm` row op (in place over a dying input)
  gelu_tanh   one `gelu` (in place over a dying input)
  embedding   one `gather` from the eNVM table (negative ids trap: the ONNX wrap is not needed)
  mask_bias   the additive mask row: `itof`, != 0, then 0 / finfo.min selected
  attention   per head: QK^T (K read transposed in place), scale, + mask, softmax (all in place), PV written straight
              into the merged [S, H*D] layout: the head split and merge are address arithmetic
  attention_core, attention_span, masked_softmax: the same steps on per-head operands / with the adaptive span
"""

from __future__ import annotations

from edgebert.compiler.lower import span
from edgebert.compiler.lower.core import CompositeCall, Const, Dest, Out, Scope, Tensor, Value
from edgebert.compiler.lower.matmul_values import lower_matmul, matmul_shape
from edgebert.compiler.lower.plain_ops import binary, cast, layer_norm, permute, reshape, select, softmax, take, unary
from edgebert.compiler.relax_passes import fusion
from edgebert.isa.errors import CompileError


def _shape(v: Value) -> tuple[int, ...]:
    return tuple(v.array.shape) if isinstance(v, Const) else v.shape


def _dense(scope: Scope, call: CompositeCall, activation: str | None = None) -> Value:
    """x @ w + b (then `activation`): the bias row rides in the matmul when it is one row of N."""
    low = scope.low
    x, w, b = call.args[:3]
    w_shape = _shape(w)
    mm = Dest(call.dest.name, matmul_shape(_shape(x), w_shape))
    n = w_shape[-1]
    row = isinstance(b, Const) and len(w_shape) > 1 and b.array.size == n and b.array.shape[-1] == n \
        and b.array.dtype == "float32" and mm.shape == call.dest.shape
    t = lower_matmul(low, Out(mm), x, w, b.array if row else None)
    if not row:
        t = binary(low, Out(call.dest, (t,)), "vadd", t, b)
    if activation is not None:
        t = unary(low, Out(call.dest, (t,)), activation, t)
    return t


def _pooler(scope: Scope, call: CompositeCall) -> Value:
    return _dense(scope, call, "tanh")


def _layer_norm(scope: Scope, call: CompositeCall) -> Value:
    a = call.attrs
    return layer_norm(scope.low, call.out(0), *call.args[:3], a["axes"], a["epsilon"], a["scale"], a["center"])


def _gelu_tanh(scope: Scope, call: CompositeCall) -> Value:
    return unary(scope.low, call.out(0), "gelu", call.args[0])


def _embedding(scope: Scope, call: CompositeCall) -> Value:
    ids, table = call.args[:2]
    return take(scope.low, call.dest, table, ids, 0)


def _mask_bias(scope: Scope, call: CompositeCall) -> Value:
    mask, neg, zero = call.args
    low, dest = scope.low, call.dest
    row = reshape(low, Dest(dest.name, dest.shape, mask.dtype), mask)
    return select(low, Out(dest), cast(low, Dest(dest.name, dest.shape, "bool"), row), zero, neg)


def _scores(scope: Scope, call: CompositeCall, q: Value, k_t: Value) -> Tensor:
    """softmax(q @ k_t * scale + mask) per head, every step after the matmul in place."""
    low, name = scope.low, call.dest.name
    mask, scale = call.args[3], call.args[4]
    dest = Dest(name, matmul_shape(_shape(q), _shape(k_t)))
    scores = lower_matmul(low, Out(dest), q, k_t)
    scores = binary(low, Out(dest, (scores,)), "vmul", scores, scale)
    scores = binary(low, Out(dest, (scores, *call.out(3).reuse)), "vadd", scores, mask)
    return softmax(low, Out(dest, (scores,)), scores, len(dest.shape) - 1)


def _attention(scope: Scope, call: CompositeCall) -> Value:
    """q, k, v [1, S, H*D]: head h is columns h*D.. (a view), K^T a transposed view, PV lands in [1, S, H*D]."""
    low, name = scope.low, call.dest.name
    heads, head_dim = int(call.attrs["num_heads"]), int(call.attrs["head_dim"])
    q, k, v = call.args[:3]
    seq = _shape(q)[1]

    def split(t: Value, axes: tuple[int, ...]) -> Value:
        return permute(reshape(low, Dest(name, (1, seq, heads, head_dim), t.dtype), t), axes)

    q_heads, k_t, v_heads = split(q, (0, 2, 1, 3)), split(k, (0, 2, 3, 1)), split(v, (0, 2, 1, 3))
    probs = _scores(scope, call, q_heads, k_t)
    merged = (0, 2, 1, 3)
    ctx = lower_matmul(low, Out(Dest(name, (1, heads, seq, head_dim)), order=lambda: merged), probs, v_heads)
    return reshape(low, call.dest, permute(ctx, merged))


def _attention_core(scope: Scope, call: CompositeCall) -> Value:
    """q [1, H, S, D], k_t [1, H, D, S], v [1, H, S, D] (the head layout done outside)."""
    q, k_t, v = call.args[:3]
    return lower_matmul(scope.low, Out(call.dest), _scores(scope, call, q, k_t), v)


COMPOSITES = {
    fusion.DENSE: _dense,
    fusion.POOLER: _pooler,
    fusion.LAYER_NORM: _layer_norm,
    fusion.GELU_TANH: _gelu_tanh,
    fusion.EMBEDDING: _embedding,
    fusion.MASK_BIAS: _mask_bias,
    fusion.ATTENTION: _attention,
    fusion.ATTENTION_CORE: _attention_core,
    fusion.ATTENTION_SPAN: span.lower_attention_span,
    fusion.MASKED_SOFTMAX: span.lower_masked_softmax,
}

if set(COMPOSITES) != set(fusion.COMPOSITES):  # every composite the Relax passes make has a handler
    raise CompileError(f"internal: composites without a handler: {sorted(set(fusion.COMPOSITES) - set(COMPOSITES))}")
