"""Latency-aware DVFS planning: the guarantee (every exit the fastest point finishes in time still does, whatever the
prediction, both policies, both planners), optimality against brute force, the artifact's 16 DVFS bins (the model is
measured against the emulator in tests/emulator/test_dvfs_guarantee.py)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from edgebert.compiler import dvfs_bins
from edgebert.compiler.dvfs_model import (
    LayerCycles,
    PartEnergy,
    all_fastest_s,
    fastest_point,
    path_joules,
    sentence_energy_j,
    sentence_latency_s,
    sentence_path,
)
from edgebert.compiler.dvfs_plan import PlanRequest, plan_dvfs
from edgebert.compiler.dvfs_samples import ExitSamples, calibration_samples, policy_exits
from edgebert.isa.errors import CompileError
from edgebert.isa.exit_rule import natural_exits
from edgebert.isa.hardware import default_config

HW = default_config()
HW_SLOW_SWITCH = dataclasses.replace(HW, dvfs=dataclasses.replace(HW.dvfs, switch_ns=200_000.0))
CYCLES = [LayerCycles(60_000, 2_000_000, 100), LayerCycles(500, 1_300, 100), LayerCycles(0, 10_000, 0)]
FACTORS = [0.3, 0.95, 1.0, 1.02, 1.2, 1.6, 2.5, 6.0]
#: ALBERT-base-like energies (uJ scale): 84 uJ of dynamic energy per layer; leakage from the config (5 mW)
LEAKY = PartEnergy(85e-6, 84e-6, 4e-9, 1e-7, 0.0, 0.0)


def _all_exits(layers: int) -> np.ndarray:
    """An exit table whose 100 bins predict every layer 2..L."""
    return (2 + np.arange(100) * (layers - 1) // 100).astype(np.int32)


def _feasible(hw, cycles, target, e) -> bool:
    return all_fastest_s(hw, cycles, fastest_point(hw), e) <= target


def _random_samples(layers: int, seed: int, policy: str = "recover") -> ExitSamples:
    """Sentences with random (predicted, natural) exits, the policy applied."""
    rng = np.random.default_rng(seed)
    pred = rng.integers(2, layers + 1, 200)
    nat = rng.integers(1, layers + 1, 200)
    exits = policy_exits(nat, pred, policy)
    counts: dict = {}
    for p, e in zip(pred.tolist(), exits.tolist(), strict=True):
        key = (-1, 0, 1) if e == 1 else (p, p, e)
        counts[key] = counts.get(key, 0) + 1
    return ExitSamples(counts, f"random {seed}")


@pytest.mark.parametrize("hw", [HW, HW_SLOW_SWITCH], ids=["default", "slow-switch"])
@pytest.mark.parametrize("cycles", CYCLES, ids=["albert", "tiny", "no-prologue"])
@pytest.mark.parametrize("layers", [3, 4, 12])
@pytest.mark.parametrize("policy", ["recover", "forced"])
def test_every_feasible_exit_meets_the_target(hw, cycles, layers, policy) -> None:
    """Whatever the prediction: recover for every exit, forced for every exit up to the prediction (its only ones);
    with and without the energy model and calibration samples, layer 1 planned or at the fastest point."""
    full = all_fastest_s(hw, cycles, fastest_point(hw), layers)
    for factor in FACTORS:
        target = factor * full
        for energy, samples, first in ((None, None, "planned"), (LEAKY, _random_samples(layers, 1, policy), "planned"),
                                       (LEAKY, None, "fastest")):
            plan = plan_dvfs(hw, cycles, layers, target, _all_exits(layers), policy=policy, energy=energy,
                             samples=samples, layer1_point=first)
            if first == "fastest":
                assert plan.layer1_point == fastest_point(hw)
            for p in range(2, layers + 1):
                for e in range(1, (p if policy == "forced" else layers) + 1):
                    if _feasible(hw, cycles, target, e):
                        assert plan.latency_s(hw, p, e) <= target * (1 + 1e-12), (factor, p, e, energy is None)


# three points keep the brute force over every joint assignment small (3^7 plans for L = 4)
HW3 = dataclasses.replace(HW, dvfs=dataclasses.replace(HW.dvfs, points=tuple(HW.dvfs.points[i] for i in (0, 3, 6)),
                                                       nominal=2, initial=2))


@pytest.mark.parametrize("policy", ["recover", "forced"])
@pytest.mark.parametrize("factor", [1.05, 1.4, 2.2, 5.0])
def test_the_plan_is_the_cheapest_admissible_one(policy: str, factor: float) -> None:
    """Brute force over every (s, q(2..4), r(2..4)) on a 3-point machine: the planner's modelled energy of the
    samples is the minimum over the plans meeting the target for every feasible exit."""
    layers, cycles = 4, LayerCycles(60_000, 2_000_000, 100)
    F = fastest_point(HW3)
    target = factor * all_fastest_s(HW3, cycles, F, layers)
    samples = _random_samples(layers, 7, policy)
    plan = plan_dvfs(HW3, cycles, layers, target, _all_exits(layers), policy=policy, energy=LEAKY, samples=samples)
    feasible = [e for e in range(1, layers + 1) if _feasible(HW3, cycles, target, e)]
    best = np.inf
    for s, q2, q3, q4, r2, r3, r4 in itertools.product(range(3), repeat=7):
        q, r = {2: q2, 3: q3, 4: q4}, {2: r2, 3: r3, 4: r4}
        ok = all(sentence_latency_s(HW3, cycles, s, q[p], r[p], p, e, policy=policy) <= target
                 for p in q for e in feasible if policy == "recover" or e <= p)
        if not ok:
            continue
        total = sum(n * sentence_energy_j(HW3, cycles, LEAKY, s, q.get(p, s), r.get(p, s), max(p, 2), e,
                                          policy=policy) for (_, p, e), n in samples.counts.items())
        best = min(best, total)
    assert plan.modelled_energy_j * samples.sentences == pytest.approx(best, rel=1e-12)


def test_energy_model_is_the_emulators_formula() -> None:
    """Dynamic x (V/Vnom)^2 + fixed + leakage x V/Vnom x time, switches at switch_nj (+ leakage while switching)."""
    cycles = LayerCycles(1000, 10_000, 100)
    e = PartEnergy(2e-6, 3e-6, 1e-8, 5e-7, 0.0, 1e-9)
    pts, vn = HW.dvfs.points, HW.dvfs.nominal_point.volts
    path = sentence_path(cycles, e, 6, 1, 6, 2, 4, policy="recover", initial=6)
    assert path.switches == (1, 6)
    leak = HW.energy.leakage_mw * 1e-3
    want = (2e-6 + 5e-7 + leak * 11_000 / 800e6  # prologue + layer 1 at point 6 (nominal)
            + 3e-6 * (0.55 / vn) ** 2 + leak * 0.55 / vn * 10_000 / 300e6  # layer 2 at point 1
            + (2 * 3e-6 + 1e-8) + 1e-9 + leak * 20_100 / 800e6  # layers 3, 4 + epilogue at point 6
            + 2 * HW.dvfs.switch_nj * 1e-9 + leak * (pts[1].volts + pts[6].volts) / vn * HW.dvfs.switch_ns * 1e-9)
    assert path_joules(HW, path) == pytest.approx(want, rel=1e-12)


def test_tight_and_loose_targets() -> None:
    cycles, layers = CYCLES[0], 12
    F = fastest_point(HW)
    full = all_fastest_s(HW, cycles, F, layers)
    exact = plan_dvfs(HW, cycles, layers, full, _all_exits(layers))  # no slack for a sentence of L layers
    assert exact.layer1_point == F and exact.point_table[layers] == F and set(exact.recovery_table[2:].tolist()) == {F}
    loose = plan_dvfs(HW, cycles, layers, full * 100, _all_exits(layers))  # dynamic energy only: the slowest wins
    slowest = min(range(len(HW.dvfs.points)), key=lambda i: HW.dvfs.points[i].mhz)
    assert set(loose.point_table[1:].tolist()) == {slowest} == set(loose.recovery_table[2:].tolist())
    leaky = plan_dvfs(HW, cycles, layers, full * 100, _all_exits(layers), energy=LEAKY)  # leakage: 0.55 V is cheaper
    assert set(leaky.point_table[1:].tolist()) == {1}
    mid = plan_dvfs(HW, cycles, layers, full * 1.6, _all_exits(layers), layer1_point="fastest")
    mhz = [HW.dvfs.points[int(q)].mhz for q in mid.point_table[2:]]
    assert mhz == sorted(mhz)  # a later predicted exit needs a faster (or equal) point for layers 2..p
    assert mid.bin_point_table.tolist() == [int(mid.point_table[p]) for p in mid.exit_table]
    assert "recovery" in mid.describe(HW) and mid.to_json()["point_table"] == mid.point_table.tolist()


def test_impossible_target_runs_at_the_fastest_point() -> None:
    cycles, layers = CYCLES[0], 12
    F = fastest_point(HW)
    impossible = all_fastest_s(HW, cycles, F, 1) / 2  # not even one layer fits
    plan = plan_dvfs(HW, cycles, layers, impossible, _all_exits(layers))
    assert set(plan.point_table[1:].tolist()) == {F} == set(plan.recovery_table[2:].tolist())
    assert plan.infeasible_exits(HW) == list(range(1, layers + 1))
    # exits 1..3 fit, deeper ones cannot: layer 1 at F, and a low prediction's recovery for them runs at F
    partial = plan_dvfs(HW, cycles, layers, all_fastest_s(HW, cycles, F, 3), _all_exits(layers))
    assert partial.infeasible_exits(HW) == list(range(4, layers + 1)) and partial.layer1_point == F
    assert all(int(partial.recovery_table[p]) == F for p in range(3, layers))


def test_switch_latency_is_in_the_arithmetic() -> None:
    cycles = LayerCycles(0, 1000, 0)
    no_switch = sentence_latency_s(HW, cycles, 6, 6, 6, 2, 4)
    assert no_switch == pytest.approx(4000 / 800e6)
    two = sentence_latency_s(HW, cycles, 6, 0, 6, 2, 4)
    assert two == pytest.approx(1000 / 800e6 + 1000 / 200e6 + 2000 / 800e6 + 2 * HW.dvfs.switch_ns * 1e-9)
    first_slow = sentence_latency_s(HW, cycles, 0, 0, 0, 2, 1)  # reset at 6: one switch into the layer-1 point
    assert first_slow == pytest.approx(1000 / 200e6 + HW.dvfs.switch_ns * 1e-9)
    forced = sentence_latency_s(HW, cycles, 6, 0, 6, 2, 4, policy="forced")  # no recovery: layers 2..4 at q
    assert forced == pytest.approx(1000 / 800e6 + 3000 / 200e6 + HW.dvfs.switch_ns * 1e-9)


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
    with pytest.raises(CompileError, match="scale"):
        plan_dvfs(HW, c, 12, 0.05, _all_exits(12), planner="bins")


def test_artifact_dvfs_bins() -> None:
    """The 15 edges 256 .. 28672 (Q6.10) of the artifact's Dvfs unit: H / scale below 0.25 is bin 0, at or above 28
    bin 15; one `lut` over 113 fine indices gives the same bin."""
    q10 = np.array(dvfs_bins.EDGES_Q10) / 1024
    scale = 0.5
    for k, edge in enumerate(q10):
        assert dvfs_bins.dvfs_bin(edge * scale, scale) == k + 1  # at an edge: the upper bin (the artifact's >=)
        assert dvfs_bins.dvfs_bin(np.nextafter(np.float32(edge * scale), np.float32(0)), scale) == k
    assert dvfs_bins.dvfs_bin(1e6, scale) == 15 and dvfs_bins.dvfs_bin(0.0, scale) == 0
    table = dvfs_bins.fine_table(np.arange(16))
    assert table.size == 113 and table[0] == 0 and table[112] == 15 and np.all(np.diff(table) >= 0)
    h = np.random.default_rng(0).uniform(0, 20, 5000)
    assert np.array_equal(table[dvfs_bins.fine_index(h, scale)], dvfs_bins.dvfs_bin(h, scale))
    assert dvfs_bins.calibrate_scale(np.array([0.1, 0.7, np.nan])) == pytest.approx(0.7 / 28)


def test_bins_classes_hold_every_prediction_they_can_see() -> None:
    """A layer-1 entropy's DVFS bin lists the prediction of its predictor bin (fp32 arithmetic at the edges too)."""
    exits = _all_exits(12)
    for scale in (0.0247, 0.05, 1.0 / 28):
        req = PlanRequest(12, exits, planner="bins", bins_scale=scale)
        classes = req.classes(0.1)
        h = np.concatenate([np.random.default_rng(1).uniform(0.1, 1.2, 20000),
                            np.array(dvfs_bins.EDGE_STEPS) * 0.25 * scale, np.arange(10, 100) / 100 + 0.005])
        h = h[h >= 0.1].astype(np.float32).astype(np.float64)
        cls = req.class_of(h, exits[np.clip(np.rint(h.astype(np.float32) * np.float32(100)), 0, 99).astype(int)])
        for x, c in zip(h, cls, strict=True):
            p = int(exits[min(99, int(np.rint(np.float32(x) * np.float32(100))))])
            assert p in classes[int(c)], (scale, x, c)


@pytest.mark.parametrize("policy", ["recover", "forced"])
def test_bins_planner_meets_the_target(policy: str) -> None:
    """Every layer-1 entropy above the threshold, every feasible exit: within the target with the DVFS bin's point."""
    cycles, layers, thr = CYCLES[0], 12, 0.1
    rng = np.random.default_rng(3)
    ent = np.abs(rng.normal(0.3, 0.2, (400, layers)))
    exits = _all_exits(layers)
    scale = dvfs_bins.calibrate_scale(ent[:, 0])
    req = PlanRequest(layers, exits, policy, "bins", bins_scale=scale)
    samples = calibration_samples(ent, thr, "lt", exits, policy, req.class_of)
    for factor in (1.1, 1.6, 3.0):
        target = factor * all_fastest_s(HW, cycles, fastest_point(HW), layers)
        plan = plan_dvfs(HW, cycles, layers, target, exits, policy=policy, planner="bins", energy=LEAKY,
                         samples=samples, bins_scale=scale, threshold=thr)
        assert plan.class_points.shape == (16,) and plan.bin_table.shape == (113,)
        for h in np.linspace(thr, 1.5, 300):
            p = int(exits[min(99, int(np.rint(h * 100)))])
            c = int(dvfs_bins.dvfs_bin(h, scale))
            for e in range(2, (p if policy == "forced" else layers) + 1):
                assert plan.latency_s(HW, p, e, c) <= target * (1 + 1e-12)


def test_calibration_samples_apply_the_policy() -> None:
    """Forced: min(natural, predicted) past layer 1 (the authors' mean exit layer 3.90 at 0.16 on SST-2 follows)."""
    ent = np.array([[0.1, 0.5, 0.5, 0.5], [0.5, 0.5, 0.1, 0.5], [0.5, 0.5, 0.5, 0.5], [0.5, 0.05, 0.5, 0.5]])
    nat = natural_exits(ent, 0.2)
    assert nat.tolist() == [1, 3, 4, 2]
    pred = np.array([3, 2, 3, 4])
    assert policy_exits(nat, pred, "forced").tolist() == [1, 2, 3, 2]
    assert natural_exits(np.array([[0.2, 0.1, 0.1]]), np.float32(0.2), "le").tolist() == [1]
    assert natural_exits(np.array([[0.2, 0.1, 0.1]]), np.float32(0.2), "lt").tolist() == [2]
