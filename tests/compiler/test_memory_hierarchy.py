"""The memory hierarchy (compiler/hierarchy, lower/blocked*.py): tiny models compiled for SRAMs far smaller than their
tensors, against onnxruntime and against the same model's all-resident program (bit for bit where AF8)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebert.compiler.cli import main as edgebertc
from edgebert.compiler.hierarchy.traffic_bound import traffic_bound
from edgebert.compiler.options import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator import run
from edgebert.isa.hardware import load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from albert_cases import export_albert, max_abs_errors, onnxruntime_outputs  # noqa: E402

TOL = 1e-4
#: the unbuffered machine whose one SRAM these tests resize (edgebert-cmod's buffers are the hardware's)
IDEAL = load_config("ideal-256mac")


def sram(size: int, hw=None):
    hw = hw or IDEAL
    return dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=dataclasses.replace(hw.memory.sram,
                                                                                                size_bytes=size)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny ALBERT (3 layers, hidden 64, 2 heads, FFN 128), seq 16, 5 padded tokens: 4 KiB per hidden state."""
    path, inputs = export_albert(tmp_path_factory.mktemp("mh"), "tiny", "tiny", 16, pad=5)
    return path, inputs, onnxruntime_outputs(path, inputs)


@pytest.mark.parametrize("size", [65536, 20480, 16384])
def test_tiny_albert_at_small_srams_matches_onnxruntime(tiny, size):
    path, inputs, want = tiny
    hw = sram(size)
    compiled = compile_onnx(path, 16, hw)
    result = run(compiled.program, inputs, hw)
    assert max(max_abs_errors(result.outputs, want).values()) <= TOL
    assert result.report["race_count"] == 0
    assert compiled.sram_peak_bytes <= size
    plan = compiled.memory_plan
    outputs = sum(v.nbytes for v in want.values())
    if size == 65536:  # everything fits: today's all-resident program, no DRAM writes but the outputs
        assert plan is None and result.report["traffic_bytes"]["dram"]["write"] == outputs
        return
    assert plan is not None and any(h == "dram" for h in plan.homes.values())
    assert result.report["traffic_bytes"]["dram"]["write"] > outputs  # spilled tensors
    kinds = {gp.kind for gp in plan.groups}
    assert {"dense", "rows", "attention"} <= kinds | {"ffn", "ffn-fused"}
    # one layer body still: a single backward branch
    assert sum(1 for c in compiled.program.code if c.mnemonic == "blt") == 1


def test_the_fused_ffn_keeps_the_intermediate_out_of_sram(tiny):
    """Where x and y fit but the [seq, intermediate] tensor would not sit beside them, the FFN is computed by
    intermediate blocks: no buffer of the intermediate's size exists."""
    path, inputs, want = tiny
    hw = sram(20480)
    compiled = compile_onnx(path, 16, hw)
    fused = [gp for gp in compiled.memory_plan.groups if gp.kind == "ffn-fused"]
    assert fused, [gp.kind for gp in compiled.memory_plan.groups]
    h_slots = [b for b in compiled.tile_program.buffers if ".h.slot" in b.name]
    assert h_slots and max(b.nbytes for b in h_slots) < 16 * 128 * 4 // 2
    assert fused[0].choice.tiling["j_t"] < 128
    result = run(compiled.program, inputs, hw)
    assert max(max_abs_errors(result.outputs, want).values()) <= TOL


def test_traffic_lower_bound_holds(tiny):
    """The compulsory-traffic bound never exceeds what a compiled program moves; with room for everything it is the
    weights (read once per layer iteration, less what could stay on chip)."""
    path, inputs, _ = tiny
    for size in (16384, 24576, 1 << 22):
        hw = sram(size)
        compiled = compile_onnx(path, 16, hw)
        t = run(compiled.program, inputs, hw).report["traffic_bytes"]
        moved = sum(t[lv]["read"] + t[lv]["write"] for lv in ("dram", "envm"))
        bound = traffic_bound(compiled.trace, compiled.trace.loops, size)
        assert 0 < bound.bytes <= moved, (size, bound.bytes, moved)


def test_verbose_prints_the_plan(tiny, tmp_path, capsys):
    path, _, _ = tiny
    toml = tmp_path / "small.toml"
    toml.write_text(load_config("ideal-256mac").toml_text().replace("size_bytes = 4194304", "size_bytes = 20480", 1))
    assert edgebertc([str(path), "--seq-len", "16", "--hw", str(toml), "-o", str(tmp_path / "p.ebin"), "-v"]) == 0
    err = capsys.readouterr().err
    assert "memory plan: SRAM 20480 B" in err and "output-stationary" in err and "DRAM" in err
    assert "best of" in err and "written" in err and "streamed" in err


def test_edgebert_cmod_buffer_set(tiny):
    """With a buffer set (edgebert-cmod, its input buffers shrunk so the model must be blocked) every tensor lies in
    one buffer, DMA'd tensors avoid the 2 B/cycle mask memories, and the results still match."""
    path, inputs, want = tiny
    cmod = load_config("edgebert-cmod")
    mem = cmod.memory.sram
    shrunk = {"input": 8192, "mask": 2048}
    buffers = tuple(dataclasses.replace(b, size_bytes=shrunk.get(b.name, b.size_bytes)) for b in mem.buffers)
    size = sum(b.count * b.size_bytes for b in buffers)
    hw = dataclasses.replace(cmod, memory=dataclasses.replace(cmod.memory, sram=dataclasses.replace(
        mem, size_bytes=size, buffers=buffers)))
    compiled = compile_onnx(path, 16, hw)
    assert compiled.memory_plan is not None
    regions = hw.memory.sram.regions("sram")
    dma = {id(b) for i in compiled.tile_program.insts if i.mnemonic in ("ld", "st")
           for b, _ in i.addrs.values() if b.space == "sram"}
    for b in compiled.tile_program.buffers:
        if b.space != "sram" or b.kind not in ("act", "stage") or b.address is None:
            continue
        lo, hi, spec = next(r for r in regions if r[0] <= b.address < r[1])
        assert b.address + b.nbytes <= hi, b  # inside one buffer
        if id(b) in dma and b.nbytes > 64:
            assert spec.port_bytes_per_cycle >= hw.memory.dram.bandwidth, b
    result = run(compiled.program, inputs, hw)
    assert max(max_abs_errors(result.outputs, want).values()) <= TOL and result.report["race_count"] == 0


# ---- compressed models, early exit, DVFS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """The golden programs' compressed model: AF8 weights, activations and attention, 50 % pruned, adaptive span;
    4 layers, hidden 64, seq 32, an exit head per layer."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_compression import build, export_variant

    from edgebert.frontend.models.synthetic_tasks import make_dataset
    from edgebert.isa.traces import write_entropy_trace

    d = tmp_path_factory.mktemp("mhc")
    model, seq = build(base=False, ramp=4)
    path = d / "compressed.onnx"
    export_variant(model, seq, path, span=True, af8=True, act=True, attn=True)
    cal = d / "cal.txt"
    write_entropy_trace(cal, np.abs(np.random.default_rng(0).normal(0.35, 0.2, (300, 4))))
    ds = make_dataset("sentiment", 8, seq, seed=3)
    xs = [{"input_ids": ds.input_ids[i:i + 1].astype(np.int64),
           "attention_mask": ds.attention_mask[i:i + 1].astype(np.int64)} for i in range(8)]
    # a threshold between the median exit-1 entropies (onnxruntime's view of the heads): several exit layers
    heads = [onnxruntime_outputs(path, x) for x in xs]
    ents = sorted(_entropy(next(v for k, v in h.items() if k.startswith("exit_1"))) for h in heads)
    return path, seq, cal, xs, (ents[3] + ents[4]) / 2


def _entropy(logits: np.ndarray) -> float:
    z = logits.reshape(-1).astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


def _exits(program, hw, xs):
    outs = [run(program, x, hw) for x in xs]
    assert all(o.report["race_count"] == 0 for o in outs)
    return [(o.exit_layer, o.outputs["logits"]) for o in outs]


def test_compressed_early_exit_dvfs_is_bit_identical_at_small_srams(compressed):
    """AF8 + sparse + span with early exit and latency-aware DVFS: exit layers and logits bit-identical to the
    all-resident program (AF8 sums are never split; the SFU ops see the same rows)."""
    path, seq, cal, xs, threshold = compressed
    opts = EarlyExitOptions(threshold=threshold, latency_target_s=60e-6, calibration_entropies=cal)
    ref_prog = compile_onnx(path, seq, IDEAL, early_exit=opts).program
    ref = _exits(ref_prog, IDEAL, xs)
    assert len({e for e, _ in ref}) > 1  # several exit layers
    for size in (32768, 16384):
        hw = sram(size)
        compiled = compile_onnx(path, seq, hw, early_exit=opts)
        assert compiled.memory_plan is not None and "dvfs_table" in compiled.program.metadata
        got = _exits(compiled.program, hw, xs)
        assert [e for e, _ in got] == [e for e, _ in ref]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, ref, strict=True))


def test_looped_early_exit_survives_blocking(tmp_path):
    """Layers + exit heads in ONE loop body stay one loop when the layer is blocked; logits equal the resident
    program's."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_early_exit_loop import _model

    from edgebert.frontend.models.synthetic_tasks import make_dataset

    path = _model(tmp_path / "l4.onnx", 4)
    ds = make_dataset("sentiment", 4, 16, seed=1)
    xs = [{"input_ids": ds.input_ids[i:i + 1].astype(np.int64),
           "attention_mask": ds.attention_mask[i:i + 1].astype(np.int64)} for i in range(4)]
    opts = EarlyExitOptions(threshold=0.6925)
    ref = _exits(compile_onnx(path, hw=IDEAL, early_exit=opts).program, IDEAL, xs)
    hw = sram(8192)
    compiled = compile_onnx(path, hw=hw, early_exit=opts)
    assert compiled.memory_plan is not None
    assert compiled.program.metadata["early_exit"]["layout"] == "looped"
    assert sum(1 for c in compiled.program.code if c.mnemonic == "blt") == 1
    got = _exits(compiled.program, hw, xs)
    assert [e for e, _ in got] == [e for e, _ in ref]
    assert max(float(np.max(np.abs(a - b))) for (_, a), (_, b) in zip(got, ref, strict=True)) <= TOL
