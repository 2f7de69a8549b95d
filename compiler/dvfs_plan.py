"""Latency-aware DVFS planning (EdgeBERT): per predicted exit layer, the operating point and the recovery point.

Execution model (what the program does and what the plan assumes):

1. The prologue (embedding) and layer 1 with its exit head run at the fastest operating point F.
2. After layer 1 (if it did not exit), `lut` maps the layer-1 entropy to a bin and the bin to the predicted exit
   layer p; the program switches to the point q(p) and runs layers 2 .. p there.
3. After layer p (if it did not exit: the prediction was low), it switches to the recovery point r(p) and runs
   the remaining layers p+1 .. L there.
4. The epilogue (final store, exit word) runs at the point in force when the loop ends.

Time of a sentence that exits after layer e, with cycles P (prologue), C (one layer + its exit head), E
(epilogue), clocks f_x and switch latency s (paid only when the point changes):

    e = 1:      (P + C + E) / f_F
    e <= p:     (P + C) / f_F + s[F != q] + ((e - 1) C + E) / f_q
    e > p:      (P + C) / f_F + s[F != q] + (p - 1) C / f_q + s[q != r] + ((e - p) C + E) / f_r

Policy. "Feasible" exits are those that running everything at F meets: (P + e C + E) / f_F <= target (all of
them when the target is met for e = L). For each p, q(p) is the slowest point such that (a) every feasible
e <= p meets the target and (b) every feasible e > p still meets it when recovery runs at F: so a low prediction
never makes the program miss a target the fastest point would have met. r(p) is then the slowest point meeting
the target for every feasible e > p with that q(p) (r = F always does, by (b)). q = r = F is always admissible,
which is the fallback when the target is tight. Exits the fastest point cannot finish in time miss the target
in every mode; the plan then runs them as fast as it can: the recovery point after a low prediction is F when
only infeasible exits remain, and q = r = F when no exit is feasible (`DvfsPlan.infeasible_exits` lists them;
edgebertc warns). `margin` (a fraction) shrinks the target to absorb the drain
cycles at each switch and the inter-layer overlap the additive cycle model ignores.

The compiler embeds three int32 tables: bin -> p (`exit_table`, from `edgebert.frontend.predictor`), p -> q
(`point_table`, indexed 0 .. L) and p -> r (`recovery_table`); the lowering (compiler/lower/exits.py) emits the
lookup after layer 1's exit branch and the recovery switch after every layer's exit branch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.compiler.abi import DVFS_TABLES
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program


@dataclass(frozen=True)
class LayerCycles:
    """Core cycles of the program's parts (at any clock: cycles do not depend on the operating point)."""

    prologue: int  # before layer 1 (embedding)
    layer: int  # one layer and its exit head
    epilogue: int  # after the loop (final store, exit word)


@dataclass(frozen=True)
class DvfsPlan:
    """The tables a program embeds and what they mean."""

    num_layers: int
    target_s: float
    fastest: int
    exit_table: np.ndarray  # int32 [nbins]: entropy bin -> predicted exit layer p (2 .. L)
    point_table: np.ndarray  # int32 [L + 1]: p -> operating point of layers 2 .. p
    recovery_table: np.ndarray  # int32 [L + 1]: p -> operating point of layers p+1 .. L after a low prediction
    cycles: LayerCycles
    margin: float

    @property
    def bin_point_table(self) -> np.ndarray:
        """int32 [nbins]: entropy bin -> operating point of layers 2 .. p."""
        return self.point_table[self.exit_table].astype(np.int32)

    def latency_s(self, hw: HardwareConfig, predicted: int, exit_layer: int) -> float:
        """Modelled latency of a sentence predicted to exit at `predicted` that exits after `exit_layer`."""
        p = predicted
        return sentence_latency_s(hw, self.cycles, self.fastest, int(self.point_table[p]),
                                  int(self.recovery_table[p]), p, exit_layer)

    def infeasible_exits(self, hw: HardwareConfig) -> list[int]:
        """Exit layers that miss the target even with every layer at the fastest point."""
        budget = self.target_s * (1.0 - self.margin)
        return [e for e in range(1, self.num_layers + 1)
                if all_fastest_s(hw, self.cycles, self.fastest, e) > budget]

    def describe(self, hw: HardwareConfig) -> str:
        """Human-readable plan: one line per predicted layer."""
        pts = hw.dvfs.points
        lines = [
            f"latency-aware DVFS plan: L = {self.num_layers}, target {self.target_s * 1e3:.3f} ms "
            f"(margin {self.margin:.1%}), layer {self.cycles.layer:,} cycles, prologue {self.cycles.prologue:,}, "
            f"epilogue {self.cycles.epilogue:,}; layer 1 at point {self.fastest} ({pts[self.fastest].mhz:g} MHz)",
            f"all-fastest latency for L layers: {all_fastest_s(hw, self.cycles, self.fastest, self.num_layers) * 1e3:.3f} ms",
        ]
        used = sorted(set(int(x) for x in self.exit_table))
        for p in range(2, self.num_layers + 1):
            q, r = int(self.point_table[p]), int(self.recovery_table[p])
            bins = np.flatnonzero(self.exit_table == p)
            where = f"bins {bins[0]}..{bins[-1]}" if bins.size else "no bin"
            lines.append(
                f"  p = {p:2d} ({where}): layers 2..{p} at point {q} ({pts[q].volts:.2f} V, {pts[q].mhz:g} MHz), "
                f"recovery at point {r} ({pts[r].volts:.2f} V, {pts[r].mhz:g} MHz)"
                f"{'' if p in used else '  [unused]'}"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready plan (for program metadata `dvfs_table`)."""
        return {
            "num_layers": self.num_layers,
            "target_s": self.target_s,
            "margin": self.margin,
            "fastest": self.fastest,
            "cycles": {"prologue": self.cycles.prologue, "layer": self.cycles.layer, "epilogue": self.cycles.epilogue},
            "exit_table": self.exit_table.tolist(),
            "point_table": self.point_table.tolist(),
            "recovery_table": self.recovery_table.tolist(),
        }


def fastest_point(hw: HardwareConfig) -> int:
    """Index of the fastest operating point (highest MHz, then lowest volts)."""
    pts = hw.dvfs.points
    return max(range(len(pts)), key=lambda i: (pts[i].mhz, -pts[i].volts))


def _by_speed(hw: HardwareConfig) -> list[int]:
    """Operating points from slowest (lowest MHz, then lowest volts) to fastest."""
    pts = hw.dvfs.points
    return sorted(range(len(pts)), key=lambda i: (pts[i].mhz, pts[i].volts))


def sentence_latency_s(
    hw: HardwareConfig, cycles: LayerCycles, fastest: int, q: int, r: int, predicted: int, exit_layer: int
) -> float:
    """Modelled latency (module docstring formula) of one sentence; switches cost `hw.dvfs.switch_ns`.

    Cycles are summed per operating point before dividing by its clock, so an all-fastest path gives exactly
    `all_fastest_s` (no rounding difference).
    """
    P, C, E = cycles.prologue, cycles.layer, cycles.epilogue
    at: dict[int, int] = {fastest: P + C}
    switches = 0
    if exit_layer <= 1:
        at[fastest] += E
    elif exit_layer <= predicted:
        switches += q != fastest
        at[q] = at.get(q, 0) + (exit_layer - 1) * C + E
    else:
        switches += (q != fastest) + (r != q)
        at[q] = at.get(q, 0) + (predicted - 1) * C
        at[r] = at.get(r, 0) + (exit_layer - predicted) * C + E
    pts = hw.dvfs.points
    return sum(c / (pts[x].mhz * 1e6) for x, c in at.items()) + switches * hw.dvfs.switch_ns * 1e-9


def all_fastest_s(hw: HardwareConfig, cycles: LayerCycles, fastest: int, exit_layer: int) -> float:
    """Latency of a sentence exiting after `exit_layer` with every layer at the fastest point."""
    return (cycles.prologue + exit_layer * cycles.layer + cycles.epilogue) / (hw.dvfs.points[fastest].mhz * 1e6)


def plan_dvfs(
    hw: HardwareConfig,
    cycles: LayerCycles,
    num_layers: int,
    target_s: float,
    exit_table: Sequence[int] | np.ndarray,
    *,
    margin: float = 0.0,
) -> DvfsPlan:
    """Compute q(p) and r(p) for p = 2 .. L by the policy of the module docstring."""
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
    budget = target_s * (1.0 - margin)
    F = fastest_point(hw)
    order = _by_speed(hw)
    feasible = [e for e in range(1, L + 1) if all_fastest_s(hw, cycles, F, e) <= budget]
    point_table = np.full(L + 1, F, dtype=np.int32)
    recovery_table = np.full(L + 1, F, dtype=np.int32)

    def meets(q: int, r: int, p: int, es: list[int]) -> bool:
        return all(sentence_latency_s(hw, cycles, F, q, r, p, e) <= budget for e in es)

    for p in range(2, L + 1):
        low = [e for e in feasible if e <= p]
        high = [e for e in feasible if e > p]
        # With no exit that can meet the target, slowing down only adds latency: stay at the fastest point.
        q = next(x for x in order if meets(x, F, p, low + high)) if low + high else F  # F always qualifies
        r = next(x for x in order if meets(q, x, p, high)) if high else (q if p == L else F)
        point_table[p], recovery_table[p] = q, r
    return DvfsPlan(L, target_s, F, exits, point_table, recovery_table, cycles, margin)


def measure_layer_cycles(program: Any, hw: HardwareConfig) -> LayerCycles:
    """Prologue / per-layer / epilogue cycles of a compiled early-exit program, measured in the emulator.

    The program must run one `bexit` per layer (after its exit head) and be valid timing-only (control flow
    depends only on entropies). Runs it timing-only without DVFS, with early exit forced after layer 1 and
    after layer 2; the layer is the distance between the first two `bexit` ends, the prologue what precedes
    the first minus one layer, the epilogue what follows the first exit. Compile with placeholder tables
    (every point F), measure, plan, then write the plan's tables: the cycles do not depend on the tables.
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
        runs.append((ends, res.report["cycles"]))
    (first, total1), (second, _) = runs
    layer = second[1] - second[0]
    return LayerCycles(prologue=first[0] - layer, layer=layer, epilogue=total1 - first[0])


def plan_program_dvfs(program: Program, hw: HardwareConfig, num_layers: int, target_s: float,
                      exit_table: np.ndarray, margin: float = 0.0) -> DvfsPlan:
    """Measure a compiled early-exit program's cycles, plan its DVFS, and write the plan into the program: its three
    tables (`abi.DVFS_TABLES` segments, compiled as placeholders of the same size) and metadata."""
    plan = plan_dvfs(hw, measure_layer_cycles(program, hw), num_layers, target_s, exit_table, margin=margin)
    new = dict(zip(DVFS_TABLES, (plan.exit_table, plan.point_table, plan.recovery_table), strict=True))
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
