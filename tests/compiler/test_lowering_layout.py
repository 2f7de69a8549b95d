"""What the lowering makes of ALBERT: free head split/merge, fused GELU and bias, liveness-shared SRAM."""

from __future__ import annotations

import pytest

from edgebert.compiler.memory_plan import live_intervals
from edgebert.compiler.pipeline import compile_onnx
from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export
from edgebert.isa.hardware import load_config


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("lower")
    path, _ = build_and_export(d / "m.onnx", preset="tiny", spec=ExportSpec(seq_len=16), seed=7, num_attention_heads=4)
    return compile_onnx(path, hw=load_config("ideal-256mac"))  # one SRAM shared by liveness (no buffer set)


def _body(compiled):
    loop = compiled.tile_program.loops[0]
    return compiled.program.code[loop.start : loop.end]


def test_one_loop_body_with_layer_counter(compiled):
    (loop,) = compiled.tile_program.loops
    assert loop.trips == 3
    back = compiled.program.code[loop.end - 1]
    assert back.mnemonic == "blt" and back["target"] == loop.start and back["rs1"] == 1


def test_head_split_and_merge_are_address_arithmetic(compiled):
    body = _body(compiled)
    mix = [i.mnemonic for i in body]
    # the only copy in a layer is the final write of the loop-carried state
    assert mix.count("vmov") <= 1, mix
    scores = [i for i in body if i.mnemonic == "matmul" and i["trans_b"]]
    assert len(scores) == 4  # Q K^T per head reads K in place (transposed operand)
    assert all(i["a_stride"] == 64 for i in scores)  # head h = columns h*d.. of the [S, H] projection


def test_gelu_and_bias_are_fused(compiled):
    body = _body(compiled)
    mix = [i.mnemonic for i in body]
    assert mix.count("gelu") == 1 and "tanh" not in mix
    dense = [i for i in body if i.mnemonic == "matmul" and not i["trans_b"] and i["has_bias"]]
    assert len(dense) >= 6  # q, k, v, attention output, FFN in, FFN out


def test_sram_is_shared_by_liveness(compiled):
    prog = compiled.tile_program
    acts = [b for b in prog.buffers if b.kind == "act"]
    spans = live_intervals(prog)
    assert compiled.sram_peak_bytes < sum(b.nbytes for b in acts) + sum(
        b.nbytes for b in prog.buffers if b.kind == "stage"
    )
    placed = [(b, spans[id(b)]) for b in acts if id(b) in spans]
    for i, (a, sa) in enumerate(placed):
        for b, sb in placed[i + 1 :]:
            overlap_time = sa[0] <= sb[1] and sb[0] <= sa[1]
            overlap_mem = a.address < b.address + b.nbytes and b.address < a.address + a.nbytes
            assert not (overlap_time and overlap_mem), (a, b)
