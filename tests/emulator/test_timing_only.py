"""timing_only / disable_early_exit / disable_dvfs / Runner reuse: the what-if switches of the emulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from compiled_ee import compile_planned, export_compressed, sentences

from edgebert.compiler.early_exit import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator import EmulatorInputError, Runner, run
from edgebert.isa.bits import sparse_mask_bytes
from edgebert.isa.encoding import make
from edgebert.isa.errors import EmulatorTrap
from edgebert.isa.hardware import default_config
from edgebert.isa.program import Program, Segment
from edgebert.isa.table import DTYPES, SPACES

LAYERS, THRESHOLD = 4, 0.05
ENVM, SRAM, DRAM = (SPACES.index(s) for s in ("envm", "sram", "dram"))
U8 = DTYPES.index("u8")


def _strip(report: dict) -> dict:
    out = dict(report)
    out.pop("what_if")
    return out


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled model's ONNX: 4 layers, sparse AF8 weights, an exit head per layer."""
    return export_compressed(tmp_path_factory.mktemp("timing") / "tiny.onnx", LAYERS, THRESHOLD)


@pytest.fixture(scope="module")
def tiny_early_exit(tiny_onnx: Path) -> Program:
    """Compiled with early exit, no DVFS."""
    return compile_onnx(tiny_onnx, early_exit=EarlyExitOptions(THRESHOLD)).program


@pytest.fixture(scope="module")
def tiny_planned(tiny_onnx: Path) -> Program:
    """Compiled with early exit and latency-aware DVFS for a target twice the all-fastest latency."""
    exits = np.repeat(np.array([2, 3, 4, 4], dtype=np.int32), 25)  # bins 0..24 -> 2, 25..49 -> 3, ...
    program = compile_planned(tiny_onnx, THRESHOLD, exits, LAYERS, 2.0)
    plan = program.metadata["dvfs_table"]
    # this target makes the plan switch twice on a low prediction (q != r), which the cases below exercise
    assert plan["point_table"][2] != plan["recovery_table"][2] and plan["point_table"][3] != plan["recovery_table"][3]
    return program


ENTROPY_CASES = [
    [0.01, 0.5, 0.5, 0.5],  # exits after layer 1
    [0.1, 0.01, 0.5, 0.5],  # bin 10: predicted 2, exits at 2
    [0.1, 0.5, 0.5, 0.01],  # predicted 2, exits at 4: recovery
    [0.3, 0.5, 0.01, 0.5],  # bin 30: predicted 3, exits at 3
    [0.3, 0.5, 0.5, 0.5],  # predicted 3, runs all 4: recovery
    [0.9, 0.5, 0.5, 0.5],  # bin 90: predicted 4
]


@pytest.mark.parametrize("entropies", ENTROPY_CASES)
def test_timing_only_report_equals_full_run(tiny_planned: Program, entropies: list[float]) -> None:
    x = sentences(1)[0]
    full = run(tiny_planned, x, entropy_values=entropies)
    fast = run(tiny_planned, x, entropy_values=entropies, timing_only=True)
    assert _strip(full.report) == _strip(fast.report)
    assert full.report["race_count"] == 0
    assert fast.report["what_if"]["timing_only"] is True
    assert full.exit_layer == fast.exit_layer
    assert full.report["macs"] > 0 and full.report["dvfs"][0]["cycles"] > 0


def test_dvfs_timeline_follows_the_plan(tiny_planned: Program) -> None:
    plan = tiny_planned.metadata["dvfs_table"]
    # bin 40 -> predicted layer 3; the sentence runs 4 layers: point q(3) for layers 2..3, then r(3)
    res = run(tiny_planned, entropy_values=[0.4, 0.5, 0.5, 0.5], timing_only=True)
    assert len(res.report["dvfs"]) == 3
    points = [seg["point"] for seg in res.report["dvfs"]]
    expected = [plan["fastest"], plan["point_table"][3], plan["recovery_table"][3]]
    dedup = [p for i, p in enumerate(expected) if i == 0 or p != expected[i - 1]]
    assert points == dedup
    assert res.exit_layer == 4


def test_disable_switches(tiny_planned: Program) -> None:
    ent = [0.4, 0.01, 0.5, 0.5]
    hw = default_config()
    normal = run(tiny_planned, entropy_values=ent, timing_only=True)
    assert normal.exit_layer == 2 and len(normal.report["dvfs"]) > 1
    no_exit = run(tiny_planned, entropy_values=ent, timing_only=True, disable_early_exit=True)
    assert no_exit.exit_layer == LAYERS
    no_dvfs = run(tiny_planned, entropy_values=ent, timing_only=True, disable_dvfs=True)
    assert [s["point"] for s in no_dvfs.report["dvfs"]] == [hw.dvfs.initial]
    assert no_dvfs.exit_layer == 2 and no_dvfs.report["seconds"] < normal.report["seconds"]
    assert no_dvfs.report["energy_j"] > normal.report["energy_j"]  # lower voltage after layer 1


def test_runner_reuse_matches_fresh_runs(tiny_early_exit: Program) -> None:
    program = tiny_early_exit
    xs = sentences(2, seed=3)
    runner = Runner(program)
    seq = [(xs[0], [0.9] * 4, False), (xs[1], [0.9, 0.01, 0.9, 0.9], True), (xs[0], [0.9] * 4, False)]
    for inputs, ent, timing in seq:
        got = runner.run(inputs, entropy_values=ent, timing_only=timing)
        want = run(program, inputs, entropy_values=ent, timing_only=timing)
        assert got.report == want.report
        for name in want.outputs:
            np.testing.assert_array_equal(got.outputs[name], want.outputs[name])


def test_runner_restores_memory_written_by_sw_and_st() -> None:
    # sw overwrites a data-segment word, st writes DRAM: the next run must see the segment again.
    code = [
        make("lw", rd=1, src=0, src_space=DRAM),
        make("addi", rd=1, rs1=1, imm=5),
        make("sw", rs=1, dst=0, dst_space=DRAM),
        make("st", dst=64, dst_space=DRAM, src=0, rows=1, cols=4, dtype=U8),
        make("barrier"),
        make("halt"),
    ]
    program = Program(code, [Segment("dram", 0, np.int32([10]).tobytes()), Segment("sram", 0, b"\x01\x02\x03\x04")],
                      metadata={"outputs": [{"name": "w", "space": "dram", "address": 0, "shape": [1], "dtype": "int32"}]})
    runner = Runner(program)
    for _ in range(3):
        res = runner.run()
        assert res.outputs["w"][0] == 15
        assert bytes(res.memory("dram")[64:68]) == b"\x01\x02\x03\x04"


def test_timing_only_needs_entropies(tiny_planned: Program) -> None:
    with pytest.raises(EmulatorInputError, match="entropy"):
        run(tiny_planned, timing_only=True)
    with pytest.raises(EmulatorInputError, match="check_uninitialized"):
        run(tiny_planned, entropy_values=[0.9] * 4, timing_only=True, check_uninitialized=True)


def _sparse_program(via_dram: bool, computed: bool) -> tuple[Program, int]:
    """A sparse matmul whose mask is loaded from eNVM (optionally bounced through DRAM) or computed by the PU."""
    k = n = 16
    rng = np.random.default_rng(1)
    bits = rng.random(k * n) < 0.3
    mask = np.packbits(bits, bitorder="little")
    mbytes = sparse_mask_bytes(k, n)
    nnz = int(bits.sum())
    vals = rng.normal(size=nnz).astype(np.float32)
    blob = mask.tobytes() + b"\0" * (mbytes - len(mask)) + vals.tobytes()
    a = rng.normal(size=(4, k)).astype(np.float32)
    b_s = 0x1000
    code = [make("ld", dst=0, src=0x100, src_space=ENVM, rows=4, cols=k * 4, dtype=U8, signal=2)]
    if computed:  # the PU writes the mask area: timing-only cannot know the nnz
        code.append(make("matmul", dst=b_s, a=0, b=0, m=1, k=k, n=mbytes // 4, wait=1))
        code.append(make("barrier"))
    elif via_dram:
        code += [
            make("ld", dst=0x3000, src=0x400, src_space=ENVM, rows=1, cols=len(blob), dtype=U8),
            make("barrier"),
            make("st", dst=0x800, dst_space=DRAM, src=0x3000, rows=1, cols=len(blob), dtype=U8),
            make("barrier"),
            make("ld", dst=b_s, src=0x800, src_space=DRAM, rows=1, cols=len(blob), dtype=U8),
            make("barrier"),
        ]
    else:
        code += [make("ld", dst=b_s, src=0x400, src_space=ENVM, rows=1, cols=len(blob), dtype=U8), make("barrier")]
    code.append(make("matmul", dst=0x2000, a=0, b=b_s, m=4, k=k, n=n, sparse=1))
    code += [make("barrier"), make("halt")]
    if not computed:
        code[0] = make("ld", dst=0, src=0x100, src_space=ENVM, rows=4, cols=k * 4, dtype=U8)
    segs = [Segment("envm", 0x100, a.tobytes()), Segment("envm", 0x400, blob)]
    return Program(code, segs), nnz


@pytest.mark.parametrize("via_dram", [False, True])
def test_sparse_nnz_from_loaded_mask(via_dram: bool) -> None:
    program, nnz = _sparse_program(via_dram, computed=False)
    full = run(program)
    fast = run(program, timing_only=True)
    assert _strip(full.report) == _strip(fast.report)
    assert full.report["macs"] == 4 * nnz


def test_sparse_mask_computed_is_an_error_in_timing_only() -> None:
    program, _ = _sparse_program(False, computed=True)
    run(program)  # fine with numerics
    with pytest.raises(EmulatorTrap, match="computed"):
        run(program, timing_only=True)


def test_cli_switches(tiny_early_exit: Program, tmp_path: Path) -> None:
    from edgebert.emulator.cli import main
    from edgebert.isa.ebin import save_ebin

    prog = tmp_path / "tiny.ebin"
    save_ebin(tiny_early_exit, prog)
    trace = tmp_path / "trace.txt"
    trace.write_text("0.9, 0.01, 0.9, 0.9\n")
    assert main([str(prog), "--timing-only", "-q"]) == 2  # no entropies
    report = tmp_path / "r.json"
    args = [str(prog), "--entropy-trace", str(trace), "--row", "0", "-q", "--json", str(report)]
    assert main([*args, "--timing-only"]) == 0
    import json

    assert json.loads(report.read_text())["exit_layer"] == 2
    assert main([*args, "--timing-only", "--no-early-exit", "--no-dvfs"]) == 0
    r = json.loads(report.read_text())
    assert r["exit_layer"] == LAYERS and r["what_if"] == {
        "timing_only": True, "disable_early_exit": True, "disable_dvfs": True}
