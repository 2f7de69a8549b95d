"""Latency-aware DVFS planning (EdgeBERT): the layer-1 point, the point after layer 1 per class, the recovery point.

Execution model (compiler/dvfs_model.py): the program starts with `lw; dvfsr` to the layer-1 point s (the prologue
and layer 1 run there); after layer 1 (if it did not exit) `lut` maps the layer-1 entropy to its predicted exit
layer p and the program switches to the point of the sentence's class: q(p) (`table` planner: class = p) or q(bin)
(`bins` planner: the artifact's 16-level DVFS bin of the entropy, compiler/dvfs_bins.py). `recover`: after layer p,
if the sentence did not exit (a low prediction), it switches to the recovery point r(p) for the remaining layers.
`forced`: the exit is forced at p (`bexitp`), no recovery.

Guarantee (both planners, both policies). "Feasible" exits are those that running everything at the fastest point F
meets: (P + e C + E) / f_F <= target x (1 - margin). Every feasible exit meets the target under the plan, whatever
the prediction: for each class, q is admissible only if every feasible e <= p (for each p the class can hold) meets
it and, `recover`, every feasible e > p still meets it with recovery at F; r(p) is admissible only if every feasible
e > p meets the target for every q of a class holding p. s is admissible when some q, r satisfy all that (and a
layer-1 exit meets the target at s); q = r = s = F always is.

Objective. Among admissible points, the plan minimises the modelled energy (dynamic x V^2, fixed, leakage x V x
time, switches) of a sample of sentences (compiler/dvfs_samples.py): the calibration entropies' sentences (their
natural exits, predictions and policy exits), or without them one sentence per predictor bin exiting at its
prediction. Ties go to the slower point (for s: to the faster one). Exits the fastest point cannot finish in time
miss the target in every mode; the plan then runs them as fast as it can: s = F when any exit is infeasible, the
recovery point is F when only infeasible exits remain past p, and q = F for a class with no feasible exit.
`layer1_point="fastest"` keeps s = F (the plan before the layer-1 point was planned). `margin` (a fraction) shrinks
the target to absorb the drain cycles at each switch and the inter-layer overlap the additive model ignores.

The program embeds int32 tables (isa/abi.py DVFS_TABLES): bin -> p (`exit_table`, from frontend/predictor.py),
`point_table` ([1] = s; [p] = q(p) for the table planner), p -> r (`recovery_table`) and, bins planner, fine index
-> q(bin) (`bin_table`); they are compiled as placeholders, then patched once the program's cycles and energies are
measured (`plan_program_dvfs`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.compiler import dvfs_bins
from edgebert.compiler.dvfs_model import (
    LayerCycles,
    PartEnergy,
    all_fastest_s,
    by_speed,
    fastest_point,
    path_joules,
    path_seconds,
    sentence_latency_s,
    sentence_path,
)
from edgebert.compiler.dvfs_samples import ExitSamples, table_samples
from edgebert.isa.abi import DVFS_BIN_TABLE, DVFS_TABLES
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program

__all__ = ["DvfsPlan", "LayerCycles", "PartEnergy", "PlanRequest", "all_fastest_s", "fastest_point",
           "measure_layer_cycles", "measure_parts", "plan_dvfs", "plan_program_dvfs", "sentence_latency_s",
           "table_bytes"]


@dataclass(frozen=True)
class PlanRequest:
    """What a compile asks the planner for, besides the target and the measured program (early_exit.exit_spec)."""

    num_layers: int
    exit_table: np.ndarray  # int32 [100]: predictor bin -> predicted exit layer 2 .. L
    policy: str = "recover"
    planner: str = "table"
    layer1_point: str = "planned"
    margin: float = 0.0
    samples: ExitSamples | None = None  # None: one sentence per predictor bin (dvfs_samples.table_samples)
    bins_scale: float | None = None  # bins planner: entropy scale (known at compile time: it sets the lut)

    def classes(self, threshold: float | None = None) -> dict[int, frozenset[int]]:
        """Class -> the predicted layers its sentences can hold (table planner: {p}; bins: every predictor bin whose
        entropy interval meets the DVFS bin's, above the threshold)."""
        L = self.num_layers
        if self.planner == "table":
            return {p: frozenset({p}) for p in range(2, L + 1)}
        out = {}
        exits = np.asarray(self.exit_table)
        n = exits.size
        slack = 1e-6  # the lut's fp32 arithmetic: widen every interval so no reachable pair is missed
        for b in range(dvfs_bins.NUM_BINS):
            lo, hi = dvfs_bins.bin_interval(b, self.bins_scale)
            lo = max(lo, (threshold or 0.0) * (1 - slack))  # layer 1 exits below the threshold
            reach = {int(exits[k]) for k in range(n)
                     if max(lo, (k - 0.5) / n - slack if k else -math.inf)
                     < min(hi, (k + 0.5) / n + slack if k < n - 1 else math.inf)}
            out[b] = frozenset(reach)
        return out

    def class_of(self, layer1: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """The planner's class of sentences with these layer-1 entropies and predictions."""
        if self.planner == "table":
            return np.asarray(predicted, np.int64)
        return dvfs_bins.dvfs_bin(layer1, self.bins_scale).astype(np.int64)


@dataclass(frozen=True)
class DvfsPlan:
    """The tables a program embeds and what they mean."""

    num_layers: int
    target_s: float
    fastest: int
    layer1_point: int  # s: prologue and layer 1
    exit_table: np.ndarray  # int32 [nbins]: entropy bin -> predicted exit layer p (2 .. L)
    point_table: np.ndarray  # int32 [L + 1]: [1] = s; table planner: p -> q(p)
    recovery_table: np.ndarray  # int32 [L + 1]: p -> operating point of layers p+1 .. L after a low prediction
    cycles: LayerCycles
    margin: float
    policy: str = "recover"
    planner: str = "table"
    class_points: np.ndarray | None = None  # bins planner: int32 [16], DVFS bin -> q
    bins_scale: float | None = None
    energy: PartEnergy | None = None
    samples: ExitSamples | None = None
    modelled_energy_j: float | None = None  # mean modelled energy of the samples under the plan
    layer1_mode: str = "planned"

    @property
    def bin_point_table(self) -> np.ndarray:
        """int32 [nbins]: predictor bin -> operating point of layers 2 .. p (table planner)."""
        return self.point_table[self.exit_table].astype(np.int32)

    @property
    def bin_table(self) -> np.ndarray | None:
        """Bins planner: int32 [113], the `lut` table fine index -> point (dvfs_bins.fine_table)."""
        return None if self.class_points is None else dvfs_bins.fine_table(self.class_points)

    def point_after_layer1(self, predicted: int, cls: int | None = None) -> int:
        """q of a sentence (bins planner: its DVFS bin `cls`)."""
        if self.planner == "bins":
            if cls is None:
                raise CompileError("the bins planner's point depends on the DVFS bin of the layer-1 entropy")
            return int(self.class_points[cls])
        return int(self.point_table[predicted])

    def latency_s(self, hw: HardwareConfig, predicted: int, exit_layer: int, cls: int | None = None) -> float:
        """Modelled latency of a sentence predicted to exit at `predicted` that exits after `exit_layer`."""
        q = self.point_after_layer1(predicted, cls) if exit_layer > 1 else self.layer1_point
        return sentence_latency_s(hw, self.cycles, self.layer1_point, q, int(self.recovery_table[predicted]),
                                  predicted, exit_layer, policy=self.policy)

    def infeasible_exits(self, hw: HardwareConfig) -> list[int]:
        """Exit layers that miss the target even with every layer at the fastest point."""
        budget = self.target_s * (1.0 - self.margin)
        return [e for e in range(1, self.num_layers + 1)
                if all_fastest_s(hw, self.cycles, self.fastest, e) > budget]

    def describe(self, hw: HardwareConfig) -> str:
        """Human-readable plan: one line per predicted layer (or DVFS bin)."""
        pts = hw.dvfs.points

        def pt(x: int) -> str:
            return f"point {x} ({pts[x].volts:.2f} V, {pts[x].mhz:g} MHz)"

        s = self.layer1_point
        lines = [
            f"latency-aware DVFS plan ({self.planner} planner, {self.policy} policy): L = {self.num_layers}, target "
            f"{self.target_s * 1e3:.3f} ms (margin {self.margin:.1%}), layer {self.cycles.layer:,} cycles, prologue "
            f"{self.cycles.prologue:,}, epilogue {self.cycles.epilogue:,} ({self.cycles.epilogue_after(self.num_layers):,} after every layer); "
            f"prologue and layer 1 at {pt(s)}"
            f"{' (fastest, by request)' if self.layer1_mode == 'fastest' else ''}",
            f"all-fastest latency for L layers: {all_fastest_s(hw, self.cycles, self.fastest, self.num_layers) * 1e3:.3f}"
            f" ms; optimised for {self.samples.source if self.samples else 'nothing'}"
            + (f", modelled {self.modelled_energy_j * 1e6:.3f} uJ per sentence" if self.modelled_energy_j else ""),
        ]
        used = sorted(set(int(x) for x in self.exit_table))
        if self.planner == "bins":
            lines.append(f"  entropy scale {self.bins_scale:.6g}: DVFS bin b holds layer-1 entropies in "
                         f"[edge(b-1), edge(b)) x {self.bins_scale:.6g}")
            for b, q in enumerate(self.class_points.tolist()):
                lo, hi = dvfs_bins.bin_interval(b, self.bins_scale)
                lines.append(f"  bin {b:2d} (H in [{max(lo, 0):.4f}, {hi:.4f})): layers 2.. at {pt(q)}")
        for p in range(2, self.num_layers + 1):
            bins = np.flatnonzero(self.exit_table == p)
            where = f"bins {bins[0]}..{bins[-1]}" if bins.size else "no bin"
            head = (f"layers 2..{p} at {pt(int(self.point_table[p]))}, " if self.planner == "table" else "")
            tail = (f"recovery at {pt(int(self.recovery_table[p]))}" if self.policy == "recover"
                    else f"exit forced after layer {p}")
            lines.append(f"  p = {p:2d} ({where}): {head}{tail}{'' if p in used else '  [unused]'}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready plan (program metadata `dvfs_table`)."""
        out = {
            "num_layers": self.num_layers,
            "target_s": self.target_s,
            "margin": self.margin,
            "fastest": self.fastest,
            "layer1_point": self.layer1_point,
            "layer1_mode": self.layer1_mode,
            "policy": self.policy,
            "planner": self.planner,
            "cycles": dataclasses.asdict(self.cycles),
            "exit_table": self.exit_table.tolist(),
            "point_table": self.point_table.tolist(),
            "recovery_table": self.recovery_table.tolist(),
        }
        if self.planner == "bins":
            out["bins"] = {"scale": self.bins_scale, "edges_q10": list(dvfs_bins.EDGES_Q10),
                           "class_points": self.class_points.tolist()}
        if self.energy is not None:
            out["energy"] = self.energy.to_json()
        if self.samples is not None:
            out["calibration"] = {"source": self.samples.source, "sentences": self.samples.sentences,
                                  "modelled_energy_j": self.modelled_energy_j}
        return out

    def tables(self) -> dict[str, np.ndarray]:
        """Data segment name -> int32 table (isa/abi.py names)."""
        out = dict(zip(DVFS_TABLES, (self.exit_table, self.point_table, self.recovery_table), strict=True))
        if self.class_points is not None:
            out[DVFS_BIN_TABLE] = self.bin_table
        return out


class _Planner:
    """The optimisation of the module docstring for one request (memoised model evaluations)."""

    def __init__(self, hw: HardwareConfig, cycles: LayerCycles, energy: PartEnergy, req: PlanRequest,
                 budget: float, threshold: float | None) -> None:
        self.hw, self.cycles, self.energy, self.req, self.budget = hw, cycles, energy, req, budget
        self.L, self.F, self.order = req.num_layers, fastest_point(hw), by_speed(hw)
        self.forced = req.policy == "forced"
        self.feasible = [e for e in range(1, self.L + 1) if all_fastest_s(hw, cycles, self.F, e) <= budget]
        self.classes = req.classes(threshold)
        samples = req.samples or table_samples(req.exit_table, req.class_of)
        self.samples = samples
        self.by_class: dict[int, list[tuple[int, int, int]]] = {}
        for (c, p, e), n in samples.counts.items():
            if e > 1:
                self.by_class.setdefault(c, []).append((p, e, n))
        self.layer1_exits = samples.counts.get((-1, 0, 1), 0)
        self._memo: dict[tuple, tuple[float, float]] = {}

    def model(self, s: int, q: int, r: int, p: int, e: int) -> tuple[float, float]:
        """(latency s, energy J) of one sentence."""
        key = (s, q, r, p, e)
        if key not in self._memo:
            path = sentence_path(self.cycles, self.energy, s, q, r, p, e, policy=self.req.policy,
                                 initial=self.hw.dvfs.initial)
            self._memo[key] = (path_seconds(self.hw, path), path_joules(self.hw, path, self.energy.leakage))
        return self._memo[key]

    def meets(self, s: int, q: int, r: int, p: int, es: list[int]) -> bool:
        return all(self.model(s, q, r, p, e)[0] <= self.budget for e in es)

    def q_admissible(self, s: int, q: int, preds: frozenset[int]) -> bool:
        for p in preds:
            if not self.meets(s, q, q, p, [e for e in self.feasible if 2 <= e <= p]):
                return False
            if not self.forced and not self.meets(s, q, self.F, p, [e for e in self.feasible if e > p]):
                return False
        return True

    def r_choices(self, s: int, qs: set[int], p: int) -> list[int]:
        """Admissible recovery points after a low prediction p (slowest first)."""
        high = [e for e in self.feasible if e > p]
        if self.forced or p == self.L:
            return [min(qs, key=self.order.index)] if qs else [self.F]
        if not high:  # only exits the fastest point cannot finish in time remain: run them as fast as possible
            return [self.F]
        return [r for r in self.order if all(self.meets(s, q, r, p, high) for q in qs)]

    def energy_of(self, s: int, q: int, r: int, items: list[tuple[int, int, int]]) -> float:
        return sum(n * self.model(s, q, r, p, e)[1] for p, e, n in items)

    def plan_for(self, s: int) -> tuple[float, dict[int, int], dict[int, int]] | None:
        """(total energy, class -> q, p -> r) with layer 1 at s, or None when s is not admissible."""
        if 1 in self.feasible and self.model(s, s, s, 2, 1)[0] > self.budget:
            return None
        q_of: dict[int, int] = {}
        for c, preds in self.classes.items():
            # a class no sentence can fall in, or with no exit the fastest point finishes in time: the fastest point
            useful = bool(preds) and any(e >= 2 for e in self.feasible)
            choices = [q for q in self.order if self.q_admissible(s, q, preds)] if useful else [self.F]
            if not choices:
                return None
            items = self.by_class.get(c, [])

            def cost(q: int, items: list = items) -> float:
                total = 0.0
                for p in {p for p, _, _ in items}:
                    mine = [(pp, e, n) for pp, e, n in items if pp == p]
                    rs = self.r_choices(s, {q}, p)
                    total += min(self.energy_of(s, q, r, mine) for r in rs)
                return total

            q_of[c] = min(choices, key=cost)  # min keeps the first (slowest) of equal costs
        r_of: dict[int, int] = {}
        for p in range(2, self.L + 1):
            qs = {q_of[c] for c, preds in self.classes.items() if p in preds}
            rs = self.r_choices(s, qs, p)
            if not rs:
                return None
            high = [(c, pp, e, n) for c, items in self.by_class.items() for pp, e, n in items if pp == p and e > p]
            r_of[p] = min(rs, key=lambda r, high=high: sum(n * self.model(s, q_of[c], r, pp, e)[1]
                                                            for c, pp, e, n in high))
        total = self.layer1_exits * self.model(s, s, s, 2, 1)[1]
        for c, items in self.by_class.items():
            q = q_of.get(c, self.F)
            total += sum(n * self.model(s, q, r_of.get(p, self.F), p, e)[1] for p, e, n in items)
        return total, q_of, r_of


def plan_dvfs(
    hw: HardwareConfig,
    cycles: LayerCycles,
    num_layers: int,
    target_s: float,
    exit_table: np.ndarray | list[int],
    *,
    margin: float = 0.0,
    policy: str = "recover",
    planner: str = "table",
    layer1_point: str = "planned",
    energy: PartEnergy | None = None,
    samples: ExitSamples | None = None,
    bins_scale: float | None = None,
    threshold: float | None = None,
) -> DvfsPlan:
    """The plan of the module docstring. `energy` None: dynamic energy only, 1 pJ per cycle (no measurement)."""
    L = num_layers
    if L < 2:
        raise CompileError(f"latency-aware DVFS needs at least 2 layers, got {L}")
    if target_s <= 0 or not 0 <= margin < 1:
        raise CompileError(f"bad latency target {target_s} s or margin {margin}")
    if min(cycles.prologue, cycles.layer, cycles.epilogue) < 0:
        raise CompileError(f"negative cycle counts {cycles}")
    exits = np.asarray(exit_table, dtype=np.int32)
    if exits.ndim != 1 or exits.size == 0 or exits.min() < 2 or exits.max() > L:
        raise CompileError(f"exit table must hold predicted layers 2..{L}")
    if planner == "bins":
        dvfs_bins.check_scale(bins_scale if bins_scale is not None else math.nan)
    req = PlanRequest(L, exits, policy, planner, layer1_point, margin, samples, bins_scale)
    energy = energy or PartEnergy.dynamic_only(cycles)
    # each layer is modelled at the longest layer's cycles, so a modelled switch can come up to `spread` cycles per
    # layer later than the real one: keep that many cycles at the slowest point in reserve (a bound, not a guess)
    slack = L * cycles.spread / (hw.dvfs.points[by_speed(hw)[0]].mhz * 1e6)
    pl = _Planner(hw, cycles, energy, req, target_s * (1.0 - margin) - slack, threshold)
    F = pl.F
    firsts = [F] if layer1_point == "fastest" or len(pl.feasible) < L else \
        [F] + [x for x in reversed(pl.order) if x != F]
    best = None
    for s in firsts:
        got = pl.plan_for(s)
        if got is not None and (best is None or got[0] < best[1][0] * (1 - 1e-12)):
            best = (s, got)
    if best is None:  # cannot happen: s = q = r = F is admissible
        raise CompileError("internal: no admissible DVFS plan")
    s, (total, q_of, r_of) = best
    point_table = np.full(L + 1, F, dtype=np.int32)
    point_table[1] = s
    recovery_table = np.full(L + 1, F, dtype=np.int32)
    for p in range(2, L + 1):
        recovery_table[p] = r_of[p]
        if planner == "table":
            point_table[p] = q_of[p]
    class_points = None
    if planner == "bins":
        class_points = np.array([q_of[b] for b in range(dvfs_bins.NUM_BINS)], np.int32)
    n = pl.samples.sentences
    return DvfsPlan(L, target_s, F, s, exits, point_table, recovery_table, cycles, margin, policy, planner,
                    class_points, bins_scale, energy, pl.samples, total / n if n else None, layer1_point)


def measure_parts(program: Any, hw: HardwareConfig) -> tuple[LayerCycles, PartEnergy]:
    """Prologue / per-layer / epilogue cycles and energies of a compiled early-exit program, measured in the emulator.

    The program must run one `bexit` per layer (after its exit head) and be valid timing-only (control flow
    depends only on entropies). Runs it timing-only without DVFS, with early exit forced after layer 1 and
    after layer 2 (the layer's energy is the difference of the two runs), and once through every layer: the layer
    is the longest distance between consecutive `bexit` ends (units overlap across layer boundaries, so a layer in
    the steady state can take a few cycles more than layer 2: the longest keeps the plan's latencies upper bounds),
    the prologue what precedes the first minus one layer, the epilogue what follows the first exit (its energy: the
    layer's per cycle). Compile with placeholder tables, measure, plan, then write the plan's tables: cycles and
    energies do not depend on the tables.
    """
    from edgebert.emulator.runner import Runner  # the emulator only when measuring

    runner = Runner(program, hw, trace=True)
    code = program.code
    runs = []
    for exit_after in (1, 2):
        # +inf never passes a threshold (any threshold, including >= 1 for many-label heads); 0 always does.
        ent = [math.inf] * (exit_after - 1) + [0.0] + [math.inf] * 4096
        res = runner.run(entropy_values=ent, timing_only=True, disable_dvfs=True, check_races=False)
        ends = [end for _, _, end, pc in res.machine.trace if code[pc].mnemonic in ("bexit", "bexitr")]
        if len(ends) < exit_after:
            raise CompileError("cannot measure layer cycles: the program does not run one bexit per layer")
        runs.append((ends, res.report["cycles"], _split_energy(res.report["energy_breakdown_j"], hw)))
    (first, total1, (dyn1, fix1)), (second, _, (dyn2, fix2)) = runs
    every = runner.run(entropy_values=[math.inf] * 4096, timing_only=True, disable_dvfs=True, check_races=False)
    ends = [end for _, _, end, pc in every.machine.trace if code[pc].mnemonic in ("bexit", "bexitr")]
    gaps = [second[1] - second[0]] + [b - a for a, b in zip(ends, ends[1:], strict=False)]
    layer = max(gaps)
    # two epilogues: after an exit, and after the last layer when none exits (the last layer may run no bexit, and
    # the way out of the loop can cost more than an exit's)
    num_layers = int((program.metadata.get("early_exit") or {}).get("num_layers") or len(ends) + 1)
    prologue = first[0] - layer
    cycles = LayerCycles(prologue=prologue, layer=layer, epilogue=total1 - first[0], spread=layer - min(gaps),
                         layers=num_layers,
                         last_epilogue=max(every.report["cycles"] - prologue - num_layers * layer, 0))
    per = cycles.epilogue / layer if layer else 0.0
    layer_dyn, layer_fix = dyn2 - dyn1, fix2 - fix1
    energy = PartEnergy(dyn1 - per * layer_dyn, layer_dyn, per * layer_dyn,
                        fix1 - per * layer_fix, layer_fix, per * layer_fix)
    return cycles, energy


def measure_layer_cycles(program: Any, hw: HardwareConfig) -> LayerCycles:
    """The cycles of `measure_parts`."""
    return measure_parts(program, hw)[0]


def _split_energy(breakdown: dict[str, float], hw: HardwareConfig) -> tuple[float, float]:
    """(dynamic J at the nominal point, fixed J) of a run at the reset point without DVFS."""
    ratio = hw.dvfs.points[hw.dvfs.initial].volts / hw.dvfs.nominal_point.volts
    dyn = fixed = 0.0
    for k, v in breakdown.items():
        if k in ("leakage", "dvfs_switch"):
            continue
        level = hw.memory.level(k) if k in ("dram", "envm", "sram") else None
        if level is not None and not level.scales_with_voltage:
            fixed += v
        else:
            dyn += v / (ratio * ratio)
    return dyn, fixed


def plan_program_dvfs(program: Program, hw: HardwareConfig, target_s: float, request: PlanRequest,
                      threshold: float | None = None) -> DvfsPlan:
    """Measure a compiled early-exit program's cycles and energies, plan its DVFS, and write the plan into the program:
    its tables (`abi.DVFS_TABLES` segments, compiled as placeholders of the same size) and metadata."""
    cycles, energy = measure_parts(program, hw)
    plan = plan_dvfs(hw, cycles, request.num_layers, target_s, request.exit_table, margin=request.margin,
                     policy=request.policy, planner=request.planner, layer1_point=request.layer1_point,
                     energy=energy, samples=request.samples, bins_scale=request.bins_scale, threshold=threshold)
    new = plan.tables()
    program.segments = [dataclasses.replace(s, data=table_bytes(new[s.name])) if s.name in new else s
                        for s in program.segments]
    program.metadata["dvfs_table"] = plan.to_json()
    program.metadata["latency_target_s"] = target_s
    program.metadata["dvfs_plan"] = plan.describe(hw).splitlines()
    program.metadata["dvfs_infeasible_exits"] = plan.infeasible_exits(hw)
    return plan


def table_bytes(table: np.ndarray) -> bytes:
    """Little-endian int32 bytes of a table, for a data segment."""
    return np.ascontiguousarray(table, dtype="<i4").tobytes()
