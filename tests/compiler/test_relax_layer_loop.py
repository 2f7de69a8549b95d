"""Layer-loop outlining and attention-mask canonicalisation on small Relax modules."""

from __future__ import annotations

import numpy as np
import tvm
from relax_helpers import calls_to, const, run_cpu, tensor_var
from tvm import relax

from edgebert.compiler.pipeline import relax_passes
from edgebert.compiler.relax_passes import OutlineLayerLoops, SimplifyAttentionMask, find_layer_loops, run_passes

RNG = np.random.default_rng(1)
HIDDEN = 8


def _rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _layer(bb, x, side, weights):
    """A small residual block: layer_norm(x + relu(x @ w + b) * side)."""
    w, b, gamma, beta = weights
    h = bb.emit(relax.op.add(bb.emit(relax.op.matmul(x, const(w))), const(b)))
    h = bb.emit(relax.op.multiply(bb.emit(relax.op.nn.relu(h)), side))
    return bb.emit(relax.op.nn.layer_norm(bb.emit(relax.op.add(x, h)), const(gamma), const(beta), axes=[-1]))


def _weights():
    return (_rand(HIDDEN, HIDDEN) / 3, _rand(HIDDEN), 1 + 0.1 * _rand(HIDDEN), _rand(HIDDEN))


def _stack(layer_weights, extra_outputs: bool = False) -> tvm.IRModule:
    """main(x, side): a prologue, one _layer per entry of `layer_weights`, an epilogue."""
    x, side = tensor_var("x", [1, 4, HIDDEN]), tensor_var("side", [1, 1, HIDDEN])
    bb = relax.BlockBuilder()
    with bb.function("main", [x, side]):
        with bb.dataflow():
            h = bb.emit(relax.op.multiply(x, const(np.float32(2.0))))
            firsts = []
            for weights in layer_weights:
                h = _layer(bb, h, side, weights)
                if extra_outputs:
                    firsts.append(bb.emit(relax.op.take(h, relax.const(0, "int64"), axis=1)))
            out = bb.emit(relax.op.tanh(h))
            if extra_outputs:
                out = bb.emit(relax.Tuple([out, *firsts]))
            out = bb.emit_output(out)
        bb.emit_func_output(out)
    return bb.get()


def _check_same_numbers(before, after, n_outputs=1):
    x, side = _rand(1, 4, HIDDEN), _rand(1, 1, HIDDEN)
    got, want = run_cpu(after, x, side), run_cpu(before, x, side)
    assert len(got) == len(want) == n_outputs
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_identical_layers_become_one_function_called_n_times():
    shared = _weights()
    mod = _stack([shared] * 4)
    out = OutlineLayerLoops()(mod)
    (loop,) = find_layer_loops(out)
    assert (loop.func_name, loop.count, loop.num_carried, loop.num_outputs) == ("edgebert_layer_0", 4, 1, 1)
    layer = out["edgebert_layer_0"]
    assert [tuple(int(d) for d in p.ty.shape) for p in layer.params] == [(1, 4, HIDDEN), (1, 1, HIDDEN)]
    assert int(layer.attrs["edgebert.count"]) == 4
    # the calls are consecutive and chained: call i+1 reads call i's result; `side` is passed unchanged
    main_bindings = out["main"].body.blocks[0].bindings
    calls = [main_bindings[i] for i in loop.binding_indices]
    for prev, cur in zip(calls, calls[1:], strict=False):
        assert cur.value.args[0].same_as(prev.var)
        assert cur.value.args[1].name == "side"
    _check_same_numbers(mod, out)


def test_layers_with_different_weights_become_one_function_taking_them():
    """BERT's layers: the same ops and shapes with their own constants: one function whose trailing parameters are
    the constants that differ (here all four), each call passing its layer's."""
    layers = [_weights(), _weights(), _weights()]
    mod = _stack(layers)
    out = OutlineLayerLoops()(mod)
    (loop,) = find_layer_loops(out)
    assert (loop.count, loop.num_carried, loop.num_weights) == (3, 1, 4)
    layer = out["edgebert_layer_0"]
    assert len(layer.params) == 2 + 4 and int(layer.attrs["edgebert.num_weights"]) == 4
    calls = [out["main"].body.blocks[0].bindings[i] for i in loop.binding_indices]
    for call, weights in zip(calls, layers, strict=True):
        got = [a.value.numpy() for a in call.value.args[2:]]
        for g, w in zip(got, weights, strict=True):
            np.testing.assert_array_equal(g, w)
    _check_same_numbers(mod, out)
    without = OutlineLayerLoops(per_layer_weights=False)(mod)
    assert find_layer_loops(without) == []
    tvm.ir.assert_structural_equal(without["main"], mod["main"])


def test_constants_shared_by_every_layer_stay_in_the_body():
    shared_norm = _weights()[2:]
    layers = [(*_weights()[:2], *shared_norm) for _ in range(3)]
    out = OutlineLayerLoops()(_stack(layers))
    (loop,) = find_layer_loops(out)
    assert loop.num_weights == 2  # w and b differ; gamma and beta are the same in every layer


def test_two_groups_give_two_functions():
    a, b = _weights(), _weights()
    mod = _stack([a, a, a, b, b])
    out = OutlineLayerLoops()(mod)
    loops = find_layer_loops(out)
    assert [(lp.func_name, lp.count) for lp in loops] == [("edgebert_layer_0", 3), ("edgebert_layer_1", 2)]
    _check_same_numbers(mod, out)


def test_values_used_after_the_loop_are_returned_per_call():
    shared = _weights()
    mod = _stack([shared] * 3, extra_outputs=True)
    out = OutlineLayerLoops()(mod)
    (loop,) = find_layer_loops(out)
    assert loop.count == 3 and loop.num_outputs == 2 and len(loop.binding_indices) == 3 * 3
    _check_same_numbers(mod, out, n_outputs=4)


def _mask_module(seq: int, index: np.ndarray) -> tvm.IRModule:
    """The legacy exporter's mask chain (astype, reshape, constant-index take, logical_and, where) + scores."""
    mask, scores = tensor_var("attention_mask", [1, seq], "int64"), tensor_var("scores", [1, 2, seq, seq])
    bb = relax.BlockBuilder()
    with bb.function("main", [mask, scores]):
        with bb.dataflow():
            m = bb.emit(relax.op.reshape(bb.emit(relax.op.astype(mask, "bool")), [seq, 1]))
            m = bb.emit(relax.op.take(m, const(index.reshape(1, 1, 1, seq)), axis=0))
            m = bb.emit(relax.op.reshape(bb.emit(relax.op.reshape(m, [seq])), [1, 1, 1, seq]))
            m = bb.emit(relax.op.logical_and(const(np.ones((1, 1, seq, seq), bool)), m))
            bias = bb.emit(relax.op.where(m, const(np.float32(0.0)), const(np.finfo(np.float32).min)))
            out = bb.emit_output(relax.op.nn.softmax(bb.emit(relax.op.add(scores, bias)), axis=-1))
        bb.emit_func_output(out)
    return bb.get()


def _mask_inputs(seq):
    mask = np.ones((1, seq), np.int64)
    mask[0, -2:] = 0
    return mask, _rand(1, 2, seq, seq)


def test_mask_chain_becomes_one_mask_bias_row():
    seq = 5
    mod = _mask_module(seq, np.arange(seq))
    out = run_passes(mod, relax_passes())
    (call,) = calls_to(out, "edgebert.mask_bias")
    assert call.args[0].name == "attention_mask"
    assert float(call.args[1].value.numpy()) == float(np.finfo(np.float32).min)
    assert [int(d) for d in call.ty.shape] == [1, 1, 1, seq]
    ops = {c.op.name for c in tvm_calls(out["main"]) if isinstance(c.op, tvm.ir.Op)}
    assert ops <= {"relax.add", "relax.nn.softmax"}
    mask, scores = _mask_inputs(seq)
    np.testing.assert_allclose(run_cpu(out, mask, scores)[0], run_cpu(mod, mask, scores)[0], atol=1e-6)


def test_mask_chain_that_permutes_the_mask_is_left_alone():
    seq = 5
    mod = _mask_module(seq, np.arange(seq)[::-1].copy())  # not the identity: verification must refuse
    out = SimplifyAttentionMask()(mod)
    tvm.ir.assert_structural_equal(out["main"], mod["main"])
    out = run_passes(mod, relax_passes())
    assert calls_to(out, "edgebert.mask_bias") == []
    mask, scores = _mask_inputs(seq)
    np.testing.assert_allclose(run_cpu(out, mask, scores)[0], run_cpu(mod, mask, scores)[0], atol=1e-6)


def tvm_calls(func) -> list:
    return [b.value for block in func.body.blocks for b in block.bindings if isinstance(b.value, tvm.ir.Call)]
