"""Layer loops whose layers have their own weights (compiler/lower/loops.py, lower/weight_tables.py): one body read
at r8 + offset from a table of per-layer blocks, the same code size for 3 and 6 layers, numbers equal to TVM's CPU
build; layers that lower differently (a per-layer scale) fall back to unrolled code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from relax_helpers import const, run_cpu, tensor_var
from tvm import relax

from edgebert.compiler.errors import SramTooSmall
from edgebert.compiler.pipeline import compile_relax, relax_pipeline
from edgebert.emulator import run
from edgebert.isa.abi import R_WEIGHTS, WEIGHT_TABLE
from edgebert.isa.hardware import load_config

RNG = np.random.default_rng(3)
HIDDEN, SEQ = 16, 4


def _rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _model(layers: int, scales: list[float] | None = None, seq: int = SEQ):
    """main(x): `layers` residual blocks layer_norm(x + gelu(x @ w1 + b1) @ w2 * s), each with its own weights."""
    x = tensor_var("x", [1, seq, HIDDEN])
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


def _with_sram(size: int):
    hw = load_config("ideal-256mac")
    return dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=dataclasses.replace(
        hw.memory.sram, size_bytes=size)))


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


def test_per_layer_weights_loop_on_a_blocked_plan():
    """On an SRAM the layer does not fit in (the memory-hierarchy plan tiles it), the per-layer-weight loop is still
    one body: each layer's trial lowering takes layer 1's plan decisions (its sites), so the copies match up to their
    weights (BERT-base on edgebert-cmod). The FFN's second matmul has no bias (the blocked FFN executor's case)."""
    hw = _with_sram(16384)  # x is 8 KiB, the FFN intermediate 16 KiB
    seq = 128
    mod = _model(3, seq=seq)
    result = compile_relax(relax_pipeline(mod), output_names=["y"], hw=hw)
    prog = result.tile_program
    assert result.memory_plan is not None and len(prog.loops) == 1 and prog.loops[0].trips == 3
    assert any(b.name.startswith(WEIGHT_TABLE) for b in prog.buffers)
    x = _rand(1, seq, HIDDEN)
    got = run(result.program, {"x": x}, hw=hw).outputs["y"]
    np.testing.assert_allclose(got, run_cpu(mod, x)[0], rtol=1e-5, atol=1e-5)


def test_blocked_ffn_without_a_bias_fails_cleanly_below_its_smallest_block():
    """The blocked FFN executor with a bias-free second matmul (it unpacked a bias that is not there: ValueError)
    ends, below the smallest block, in the typed SRAM-too-small error."""
    hw = _with_sram(1024)
    with pytest.raises(SramTooSmall, match="SRAM too small"):
        compile_relax(relax_pipeline(_model(3)), output_names=["y"], hw=hw)
