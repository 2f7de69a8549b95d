"""Latency-aware DVFS planning: the guarantee (a low prediction never misses a target all-fastest meets),
minimality of the chosen points (measured in the emulator: tests/emulator/test_dvfs_guarantee.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgebert.compiler.dvfs_plan import (
    LayerCycles,
    all_fastest_s,
    fastest_point,
    plan_dvfs,
    sentence_latency_s,
)
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
