"""Latency-aware DVFS planning: the guarantee (a low prediction never misses a target all-fastest meets),
minimality of the chosen points, the ISA snippets, and the guarantee measured in the emulator on a compiled
program."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgebert.compiler.dvfs_plan import (
    LayerCycles,
    all_fastest_s,
    fastest_point,
    plan_dvfs,
    predict_snippet,
    recovery_snippet,
    sentence_latency_s,
)
from edgebert.isa.encoding import encode
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import default_config

HW = default_config()
HW_SLOW_SWITCH = dataclasses.replace(HW, dvfs=dataclasses.replace(HW.dvfs, switch_ns=200_000.0))
CYCLES = [LayerCycles(60_000, 2_000_000, 100), LayerCycles(500, 1_300, 100), LayerCycles(0, 10_000, 0)]
FACTORS = [0.3, 0.95, 1.0, 1.02, 1.2, 1.6, 2.5, 6.0]


def _all_exits(layers: int) -> np.ndarray:
    """An exit table whose 100 bins predict every layer 2..L."""
    return (2 + np.arange(100) * (layers - 1) // 100).astype(np.int32)


def _feasible(hw, cycles, layers, target, e) -> bool:
    return all_fastest_s(hw, cycles, fastest_point(hw), e) <= target


@pytest.mark.parametrize("hw", [HW, HW_SLOW_SWITCH], ids=["default", "slow-switch"])
@pytest.mark.parametrize("cycles", CYCLES, ids=["albert", "tiny", "no-prologue"])
@pytest.mark.parametrize("layers", [2, 4, 12])
def test_low_prediction_never_misses_a_feasible_target(hw, cycles, layers) -> None:
    full = all_fastest_s(hw, cycles, fastest_point(hw), layers)
    for factor in FACTORS:
        target = factor * full
        plan = plan_dvfs(hw, cycles, layers, target, _all_exits(layers))
        for p in range(2, layers + 1):
            for e in range(1, layers + 1):
                if _feasible(hw, cycles, layers, target, e):
                    assert plan.latency_s(hw, p, e) <= target * (1 + 1e-12), (factor, p, e)


@pytest.mark.parametrize("cycles", CYCLES[:2], ids=["albert", "tiny"])
def test_points_are_the_slowest_admissible(cycles) -> None:
    hw, layers = HW, 12
    F = fastest_point(hw)
    order = sorted(range(len(hw.dvfs.points)), key=lambda i: hw.dvfs.points[i].mhz)
    for factor in FACTORS:
        target = factor * all_fastest_s(hw, cycles, F, layers)
        plan = plan_dvfs(hw, cycles, layers, target, _all_exits(layers))
        feasible = [e for e in range(1, layers + 1) if _feasible(hw, cycles, layers, target, e)]
        for p in range(2, layers + 1):
            q, r = int(plan.point_table[p]), int(plan.recovery_table[p])
            if order.index(q) > 0:  # one step slower would break (a) or (b)
                slower = order[order.index(q) - 1]
                assert any(sentence_latency_s(hw, cycles, F, slower, F, p, e) > target for e in feasible)
            high = [e for e in feasible if e > p]
            if high and order.index(r) > 0:
                slower = order[order.index(r) - 1]
                assert any(sentence_latency_s(hw, cycles, F, q, slower, p, e) > target for e in high)


def test_tight_and_loose_targets() -> None:
    cycles, layers = CYCLES[0], 12
    F = fastest_point(HW)
    full = all_fastest_s(HW, cycles, F, layers)
    exact = plan_dvfs(HW, cycles, layers, full, _all_exits(layers))  # no slack for a sentence of L layers
    assert exact.point_table[layers] == F and set(exact.recovery_table[2:].tolist()) == {F}
    loose = plan_dvfs(HW, cycles, layers, full * 100, _all_exits(layers))
    slowest = min(range(len(HW.dvfs.points)), key=lambda i: HW.dvfs.points[i].mhz)
    assert set(loose.point_table[2:].tolist()) == {slowest} == set(loose.recovery_table[2:].tolist())
    # a later predicted exit needs a faster (or equal) point for layers 2..p
    mid = plan_dvfs(HW, cycles, layers, full * 1.6, _all_exits(layers))
    mhz = [HW.dvfs.points[int(q)].mhz for q in mid.point_table[2:]]
    assert mhz == sorted(mhz)
    assert mid.bin_point_table.tolist() == [int(mid.point_table[p]) for p in mid.exit_table]
    assert "recovery" in mid.describe(HW) and mid.to_json()["point_table"] == mid.point_table.tolist()


def test_impossible_target_runs_at_the_fastest_point() -> None:
    cycles, layers = CYCLES[0], 12
    F = fastest_point(HW)
    impossible = all_fastest_s(HW, cycles, F, 1) / 2  # not even one layer fits
    plan = plan_dvfs(HW, cycles, layers, impossible, _all_exits(layers))
    assert set(plan.point_table[2:].tolist()) == {F} == set(plan.recovery_table[2:].tolist())
    assert plan.infeasible_exits(HW) == list(range(1, layers + 1))
    # exits 1..3 fit, deeper ones cannot: a low prediction's recovery for them runs at F, not slower
    partial = plan_dvfs(HW, cycles, layers, all_fastest_s(HW, cycles, F, 3), _all_exits(layers))
    assert partial.infeasible_exits(HW) == list(range(4, layers + 1))
    assert all(int(partial.recovery_table[p]) == F for p in range(3, layers))


def test_switch_latency_is_in_the_arithmetic() -> None:
    cycles = LayerCycles(0, 1000, 0)
    q, r = 0, 6
    no_switch = sentence_latency_s(HW, cycles, 6, 6, 6, 2, 4)
    assert no_switch == pytest.approx(4000 / 800e6)
    two = sentence_latency_s(HW, cycles, 6, q, r, 2, 4)
    assert two == pytest.approx(1000 / 800e6 + 1000 / 200e6 + 2000 / 800e6 + 2 * HW.dvfs.switch_ns * 1e-9)


def test_bad_arguments() -> None:
    c = CYCLES[0]
    with pytest.raises(CompileError):
        plan_dvfs(HW, c, 1, 0.05, [2])
    with pytest.raises(CompileError):
        plan_dvfs(HW, c, 12, 0.0, _all_exits(12))
    with pytest.raises(CompileError):
        plan_dvfs(HW, c, 12, 0.05, np.full(100, 13))
    with pytest.raises(CompileError):
        plan_dvfs(HW, c, 12, 0.05, np.full(100, 1))


def test_snippets_encode_and_branch_past_themselves() -> None:
    pred = predict_snippet(40, r_layer=1, r_pred=4, r_off=5, r_tmp=6, f_entropy=1, exit_table=0, point_table=400)
    rec = recovery_snippet(47, r_layer=1, r_pred=4, r_off=5, r_tmp=6, recovery_table=460)
    assert [i.mnemonic for i in pred] == ["li", "bne", "lut", "li", "mul", "lw", "dvfsr"]
    assert [i.mnemonic for i in rec] == ["bne", "lw", "dvfsr"]
    assert pred[1]["target"] == 40 + len(pred) and rec[0]["target"] == 47 + len(rec)
    for inst in pred + rec:
        assert len(encode(inst)) == 32


@pytest.fixture(scope="module")
def compiled_dvfs(tmp_path_factory):
    """An untrained 6-layer compressed ALBERT (exit head per layer) compiled with latency-aware DVFS, the exit
    table predicting every layer 2..L, the target 1.3x the all-fastest L-layer latency."""
    import torch

    from edgebert.compiler.options import EarlyExitOptions
    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.frontend.compressed_export import export_onnx
    from edgebert.frontend.tasks import TASKS, VOCAB
    from edgebert.frontend.torch_model import CompressedAlbert, CompressionConfig, albert_config

    layers, seq = 6, 16
    task = TASKS["sentiment"]
    cfg = albert_config(len(VOCAB), hidden=32, layers=layers, heads=2, intermediate=64, max_positions=seq, dropout=0.0)
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names),
                             span_enabled=False, max_span=seq)
    torch.manual_seed(0)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=1)
    path = tmp_path_factory.mktemp("dvfs") / "m.onnx"
    export_onnx(model, str(path), seq, threshold=0.05)
    exits = _all_exits(layers)
    table = np.ones((100, layers - 1))  # predicted entropies of layers 2..L-1: below 0.05 from layer exits[b] on
    table[:, 0] = np.arange(100) / 100
    for b, p in enumerate(exits):
        table[b, 1:][np.arange(2, layers) >= p] = 0.0

    def build(target: float):
        return compile_onnx(path, early_exit=EarlyExitOptions(0.05, target, predictor_table=table)).program

    c = build(1.0).metadata["dvfs_table"]["cycles"]
    target = 1.3 * all_fastest_s(HW, LayerCycles(c["prologue"], c["layer"], c["epilogue"]), fastest_point(HW), layers)
    program = build(target)
    return program, exits, target, layers


def test_guarantee_in_the_emulator_on_a_compiled_program(compiled_dvfs) -> None:
    """Every (predicted, actual) exit pair of a compiled program, measured: within the target whenever the
    all-fastest program is, and the plan's additive cycle model within 1 % of the emulator."""
    from edgebert.compiler.dvfs_plan import DvfsPlan
    from edgebert.emulator import Runner

    program, exits, target, layers = compiled_dvfs
    meta = program.metadata["dvfs_table"]
    assert meta["exit_table"] == exits.tolist()
    c = meta["cycles"]
    plan = DvfsPlan(layers, target, meta["fastest"], exits, np.array(meta["point_table"]),
                    np.array(meta["recovery_table"]), LayerCycles(c["prologue"], c["layer"], c["epilogue"]),
                    meta["margin"])
    assert len(set(meta["point_table"][2:])) > 1  # the plan slows down for some predictions
    runner = Runner(program)
    worst = 0.0
    for p in range(2, layers + 1):
        h1 = (np.flatnonzero(exits == p)[-1] + 0.2) / 100  # a layer-1 entropy (>= threshold) in a bin predicting p
        for e in range(1, layers + 1):
            ent = [0.5] * layers
            ent[0] = h1 if e > 1 else 0.01
            ent[e - 1] = 0.01 if e > 1 else ent[e - 1]
            res = runner.run(entropy_values=ent, timing_only=True, check_races=False)
            assert res.exit_layer == e
            fast = runner.run(entropy_values=ent, timing_only=True, disable_dvfs=True, check_races=False)
            if fast.report["seconds"] <= target:
                assert res.report["seconds"] <= target, (p, e)
            if e > 1:
                model = plan.latency_s(HW, p, e)
                worst = max(worst, abs(res.report["seconds"] - model) / model)
    assert worst < 0.01  # the additive cycle model tracks the emulator within 1 %
