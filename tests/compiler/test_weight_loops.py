"""Layer loops whose layers have their own weights (compiler/lower/loops.py, lower/weight_tables.py): one body read
at r8 + offset from a table of per-layer blocks, the same code size for 3 and 6 layers, numbers equal to TVM's CPU
build; layers that lower differently (a per-layer scale) fall back to unrolled code."""

from __future__ import annotations

import numpy as np
from relax_helpers import const, run_cpu, tensor_var
from tvm import relax

from edgebert.compiler.pipeline import compile_relax, relax_pipeline
from edgebert.emulator import run
from edgebert.isa.abi import R_WEIGHTS, WEIGHT_TABLE

RNG = np.random.default_rng(3)
HIDDEN, SEQ = 16, 4


def _rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _model(layers: int, scales: list[float] | None = None):
    """main(x): `layers` residual blocks layer_norm(x + gelu(x @ w1 + b1) @ w2 * s), each with its own weights."""
    x = tensor_var("x", [1, SEQ, HIDDEN])
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            h = x
            for i in range(layers):
                w1, b1, w2 = _rand(HIDDEN, 2 * HIDDEN) / 4, _rand(2 * HIDDEN), _rand(2 * HIDDEN, HIDDEN) / 4
                t = bb.emit(relax.op.add(bb.emit(relax.op.matmul(h, const(w1))), const(b1)))
                t = bb.emit(relax.op.matmul(bb.emit(relax.op.nn.gelu(t)), const(w2)))
                t = bb.emit(relax.op.multiply(t, const(np.float32(scales[i] if scales else 0.5))))
                h = bb.emit(relax.op.nn.layer_norm(bb.emit(relax.op.add(h, t)), const(1 + 0.1 * _rand(HIDDEN)),
                                                   const(0.1 * _rand(HIDDEN)), axes=[-1]))
            out = bb.emit_output(relax.op.tanh(h))
        bb.emit_func_output(out)
    return bb.get()


def _compile(mod):
    return compile_relax(relax_pipeline(mod), output_names=["y"])


def test_per_layer_weights_loop_with_a_strided_table():
    x = _rand(1, SEQ, HIDDEN)
    sizes = {}
    for layers in (3, 6):
        mod = _model(layers)
        result = _compile(mod)
        prog = result.tile_program
        assert len(prog.loops) == 1 and prog.loops[0].trips == layers
        table = next(b for b in prog.buffers if b.name.startswith(WEIGHT_TABLE))
        per_layer = table.nbytes // layers
        assert per_layer >= (2 * HIDDEN * HIDDEN * 2 + 2 * HIDDEN + 2 * HIDDEN) * 4  # w1, w2, b1, gamma, beta
        body = prog.insts[prog.loops[0].start:prog.loops[0].end]
        assert any(i.mnemonic == "mul" and i.fields["rd"] == R_WEIGHTS for i in prog.insts)
        assert sum(i.fields.get("src_base") == R_WEIGHTS for i in body if i.mnemonic == "ld") >= 3
        got = run(result.program, {"x": x}).outputs["y"]
        np.testing.assert_allclose(got, run_cpu(mod, x)[0], rtol=1e-5, atol=1e-5)
        sizes[layers] = len(result.program.code)
    assert sizes[3] == sizes[6]


def test_layers_that_lower_differently_are_unrolled():
    mod = _model(3, scales=[0.5, 0.25, 0.5])  # the scale is an immediate: layer 2's code differs
    result = _compile(mod)
    assert result.tile_program.loops == []
    assert not any(b.name.startswith(WEIGHT_TABLE) for b in result.tile_program.buffers)
    x = _rand(1, SEQ, HIDDEN)
    np.testing.assert_allclose(run(result.program, {"x": x}).outputs["y"], run_cpu(mod, x)[0], rtol=1e-5, atol=1e-5)
