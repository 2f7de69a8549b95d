"""Composite fusion on small Relax modules: each edgebert.* composite forms, takes its documented argument
order, and TVM's CPU build gives the same numbers before and after (and as a numpy reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tvm
from relax_helpers import calls_to, composite_calls, const, run_cpu, tensor_var
from tvm import relax

from edgebert.compiler.relax_passes import (
    CanonicalizeCompositeArgs,
    cleanup_passes,
    composite_attrs,
    fusion_pass,
    run_passes,
)

RNG = np.random.default_rng(0)


def _fused(mod: tvm.IRModule) -> tvm.IRModule:
    return run_passes(mod, [*cleanup_passes(), fusion_pass(), CanonicalizeCompositeArgs()])


def _module(params, body) -> tvm.IRModule:
    """main(params) whose dataflow block is emitted by `body(bb, *params)` (returns the output expr)."""
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(body(bb, *params))
        bb.emit_func_output(out)
    return bb.get()


def _gelu_tanh(bb, x):
    cube = bb.emit(relax.op.power(x, const(np.float32(3.0))))
    inner = bb.emit(relax.op.add(x, bb.emit(relax.op.multiply(cube, const(np.float32(0.044715))))))
    t = bb.emit(relax.op.tanh(bb.emit(relax.op.multiply(inner, const(np.float32(math.sqrt(2 / math.pi)))))))
    half = bb.emit(relax.op.multiply(x, const(np.float32(0.5))))
    return relax.op.multiply(half, bb.emit(relax.op.add(t, const(np.float32(1.0)))))


def _rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_dense_layer_norm_gelu_pooler():
    w1, b1, gamma, beta = _rand(8, 16), _rand(16), 1 + 0.1 * _rand(16), _rand(16)
    w2, b2, wp, bp = _rand(16, 8), _rand(8), _rand(8, 8), _rand(8)

    def body(bb, x):
        h = bb.emit(relax.op.add(const(b1), bb.emit(relax.op.matmul(x, const(w1)))))  # bias first (legacy)
        h = bb.emit(relax.op.nn.layer_norm(h, const(gamma), const(beta), axes=[-1], epsilon=1e-12))
        h = bb.emit(_gelu_tanh(bb, h))
        h = bb.emit(relax.op.add(bb.emit(relax.op.matmul(h, const(w2))), const(b2)))
        cls = bb.emit(relax.op.take(h, relax.const(0, "int64"), axis=1))
        return relax.op.tanh(bb.emit(relax.op.add(bb.emit(relax.op.matmul(cls, const(wp))), const(bp))))

    mod = _module([tensor_var("x", [1, 5, 8])], body)
    x = _rand(1, 5, 8)
    fused = _fused(mod)
    assert composite_calls(fused) == {"edgebert.dense": 2, "edgebert.layer_norm": 1, "edgebert.gelu_tanh": 1,
                                      "edgebert.pooler": 1}
    for call in calls_to(fused, "edgebert.dense") + calls_to(fused, "edgebert.pooler"):
        w, b = (a.value.numpy() for a in call.args[1:])
        assert w.ndim == 2 and b.shape == (w.shape[1],)  # (x, w, b)
    (ln,) = calls_to(fused, "edgebert.layer_norm")
    np.testing.assert_array_equal(ln.args[1].value.numpy(), gamma)
    np.testing.assert_array_equal(ln.args[2].value.numpy(), beta)
    ln_func = fused[ln.op]
    assert composite_attrs(ln_func)["epsilon"] == pytest.approx(1e-12)
    (got,) = run_cpu(fused, x)
    (want,) = run_cpu(mod, x)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # numpy reference of the same computation
    h = x @ w1 + b1
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-12) * gamma + beta
    h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    h = h @ w2 + b2
    np.testing.assert_allclose(got, np.tanh(h[:, 0] @ wp + bp), atol=1e-4)


def test_gelu_with_wrong_constant_is_not_fused():
    def body(bb, x):
        cube = bb.emit(relax.op.power(x, const(np.float32(3.0))))
        inner = bb.emit(relax.op.add(x, bb.emit(relax.op.multiply(cube, const(np.float32(0.5))))))  # not 0.044715
        t = bb.emit(relax.op.tanh(bb.emit(relax.op.multiply(inner, const(np.float32(0.7978846))))))
        half = bb.emit(relax.op.multiply(x, const(np.float32(0.5))))
        return relax.op.multiply(half, bb.emit(relax.op.add(t, const(np.float32(1.0)))))

    fused = _fused(_module([tensor_var("x", [1, 3, 4])], body))
    assert composite_calls(fused)["edgebert.gelu_tanh"] == 0


def _attention_body(seq, heads, head_dim, scale):
    def body(bb, q, k, v, mask):
        def split(t, axes):
            return bb.emit(relax.op.permute_dims(bb.emit(relax.op.reshape(t, [1, seq, heads, head_dim])), axes))

        qh, kt, vh = split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1]), split(v, [0, 2, 1, 3])
        scores = bb.emit(relax.op.multiply(bb.emit(relax.op.matmul(qh, kt)), const(np.float32(scale))))
        probs = bb.emit(relax.op.nn.softmax(bb.emit(relax.op.add(scores, mask)), axis=-1))
        ctx = bb.emit(relax.op.permute_dims(bb.emit(relax.op.matmul(probs, vh)), [0, 2, 1, 3]))
        return relax.op.reshape(ctx, [1, seq, heads * head_dim])

    return body


def _attention_reference(q, k, v, mask, heads, scale):
    seq, width = q.shape[1], q.shape[2]
    d = width // heads
    out = np.zeros_like(q)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        s = q[0, :, cols] @ k[0, :, cols].T * scale + mask.reshape(-1, seq)[-1]
        p = np.exp(s - s.max(-1, keepdims=True))
        out[0, :, cols] = (p / p.sum(-1, keepdims=True)) @ v[0, :, cols]
    return out


def test_attention_composite_argument_order_and_numerics():
    seq, heads, head_dim = 6, 2, 4
    params = [tensor_var(n, [1, seq, heads * head_dim]) for n in "qkv"] + [tensor_var("mask", [1, 1, 1, seq])]
    mod = _module(params, _attention_body(seq, heads, head_dim, 0.5))
    fused = _fused(mod)
    assert composite_calls(fused) == {"edgebert.attention": 1}
    (call,) = calls_to(fused, "edgebert.attention")
    assert [a.name for a in call.args[:4]] == ["q", "k", "v", "mask"]
    assert float(call.args[4].value.numpy()) == 0.5
    assert composite_attrs(fused[call.op]) == {"num_heads": 2, "head_dim": 4}
    q, k, v = (_rand(1, seq, heads * head_dim) for _ in range(3))
    mask = np.where(np.arange(seq) < 4, 0.0, -1e9).astype(np.float32).reshape(1, 1, 1, seq)
    (got,) = run_cpu(fused, q, k, v, mask)
    np.testing.assert_allclose(got, _attention_reference(q, k, v, mask, heads, 0.5), atol=1e-5)


def test_attention_operands_out_of_order_are_canonicalised():
    """The exporter may compute v before k; the composite still takes (q, k, v, mask, scale)."""
    seq, heads, head_dim = 4, 2, 2
    params = [tensor_var(n, [1, seq, heads * head_dim]) for n in ("v", "k", "q")] + \
        [tensor_var("mask", [1, 1, 1, seq])]

    def body(bb, v, k, q, mask):
        return _attention_body(seq, heads, head_dim, 0.25)(bb, q, k, v, mask)

    fused = _fused(_module(params, body))
    (call,) = calls_to(fused, "edgebert.attention")
    assert [a.name for a in call.args[:4]] == ["q", "k", "v", "mask"]
    v, k, q = (_rand(1, seq, heads * head_dim) for _ in range(3))
    mask = np.zeros((1, 1, 1, seq), np.float32)
    (got,) = run_cpu(fused, v, k, q, mask)
    np.testing.assert_allclose(got, _attention_reference(q, k, v, mask, heads, 0.25), atol=1e-5)


def test_span_masked_softmax_attention():
    seq, heads, head_dim = 5, 2, 3
    span = (RNG.random((heads, seq, seq)) > 0.3).astype(np.float32)
    span[..., 0] = 1.0  # every row keeps one term

    def body(bb, q, k, v, mask):
        def split(t, axes):
            return bb.emit(relax.op.permute_dims(bb.emit(relax.op.reshape(t, [1, seq, heads, head_dim])), axes))

        qh, kt, vh = split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1]), split(v, [0, 2, 1, 3])
        s = bb.emit(relax.op.add(bb.emit(relax.op.multiply(bb.emit(relax.op.matmul(qh, kt)),
                                                           const(np.float32(0.5)))), mask))
        peak = bb.emit(relax.op.max(s, axis=[-1], keepdims=True))
        e = bb.emit(relax.op.multiply(bb.emit(relax.op.exp(bb.emit(relax.op.subtract(s, peak)))), const(span)))
        p = bb.emit(relax.op.divide(e, bb.emit(relax.op.sum(e, axis=[-1], keepdims=True))))
        ctx = bb.emit(relax.op.permute_dims(bb.emit(relax.op.matmul(p, vh)), [0, 2, 1, 3]))
        return relax.op.reshape(ctx, [1, seq, heads * head_dim])

    params = [tensor_var(n, [1, seq, heads * head_dim]) for n in "qkv"] + [tensor_var("mask", [1, 1, 1, seq])]
    mod = _module(params, body)
    fused = _fused(mod)
    (call,) = calls_to(fused, "edgebert.attention_span")
    assert [a.name for a in call.args[:4]] == ["q", "k", "v", "mask"]
    np.testing.assert_array_equal(call.args[5].value.numpy(), span)
    inputs = [_rand(1, seq, heads * head_dim) for _ in range(3)] + [np.zeros((1, 1, 1, seq), np.float32)]
    np.testing.assert_allclose(run_cpu(fused, *inputs)[0], run_cpu(mod, *inputs)[0], atol=1e-5)


def test_embedding_with_negative_index_wrap():
    table = _rand(10, 4)

    def body(bb, ids):
        wrapped = bb.emit(relax.op.where(bb.emit(relax.op.less(ids, relax.const(0, "int64"))),
                                         bb.emit(relax.op.add(ids, relax.const(10, "int64"))), ids))
        return relax.op.take(const(table), wrapped, axis=0)

    mod = _module([tensor_var("ids", [1, 6], "int64")], body)
    fused = _fused(mod)
    (call,) = calls_to(fused, "edgebert.embedding")
    assert call.args[0].name == "ids" and call.args[1].value.numpy().shape == (10, 4)
    assert [int(a.value.numpy()) for a in call.args[2:]] == [0, 10]
    ids = np.array([[0, 3, 9, -1, 5, -10]], np.int64)
    np.testing.assert_allclose(run_cpu(fused, ids)[0], table[ids % 10], atol=0)
