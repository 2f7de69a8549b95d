"""The token protocol of compiled programs: balanced per barrier region, every pop after its push."""

from __future__ import annotations

import numpy as np
import pytest

from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator import run
from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export, make_inputs
from edgebert.isa.table import UNITS


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("sched")
    path, cfg = build_and_export(
        d / "m.onnx",
        preset="tiny",
        spec=ExportSpec(seq_len=24),
        seed=5,
        hidden_size=128,
        intermediate_size=512,
        num_attention_heads=4,
    )
    return compile_onnx(path), make_inputs(24, cfg.vocab_size, pad=2)


def test_tokens_balance_per_region_and_pushes_precede_pops(compiled):
    result, _ = compiled
    code = result.program.code
    queue = np.zeros((len(UNITS), len(UNITS)), dtype=int)
    for inst in code:
        if inst.mnemonic in ("barrier", "halt"):
            assert not queue.any(), "tokens left in flight across a barrier"
            continue
        u = UNITS.index(inst.spec.unit)
        for v in range(len(UNITS)):
            if inst["wait"] >> v & 1:
                queue[v, u] -= 1
                assert queue[v, u] >= 0, f"pop of {UNITS[v]}->{UNITS[u]} before its push"
        for v in range(len(UNITS)):
            if inst["signal"] >> v & 1:
                queue[u, v] += 1


def test_loads_overlap_compute_without_races(compiled):
    result, inputs = compiled
    report = run(result.program, inputs).report
    assert report["race_count"] == 0
    busy = {u: report["units"][u]["busy_cycles"] for u in ("ld", "pu", "sfu")}
    # double buffering: the run is shorter than the serialised sum of the units' work
    assert report["cycles"] < busy["ld"] + busy["pu"] + busy["sfu"]


def test_weight_tiles_fit_the_hardware_limits(compiled):
    from edgebert.isa.hardware import default_config

    hw = default_config()
    for inst in compiled[0].program.code:
        if inst.mnemonic == "matmul":
            assert inst["m"] <= hw.pu.max_m and inst["k"] <= hw.pu.max_k and inst["n"] <= hw.pu.max_n
