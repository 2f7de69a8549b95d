"""The oracle bound of latency-aware DVFS: each sentence at the one operating point with the least energy that still
meets the latency target, knowing its exit layer.

The exit layer is the program's own (its run without DVFS, the `early-exit` mode: same binary, same exits). From
that run's cycles and energy breakdown at the reset point, the latency and energy at every point x follow exactly
(cycles do not depend on the point; dynamic energy scales with (Vx / Vnom)^2, leakage with Vx / Vnom x time, levels
that do not scale with voltage stay): the oracle picks the cheapest x with latency <= target (the fastest when none
meets it) and runs the sentence there (the emulator reset at x, DVFS requests ignored), so its latency and energy
are measured, and checked against the formula. With little leakage the cheapest point meeting the target is the
slowest one; with leakage a faster point can cost less, and the oracle takes it (the tighter bound).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from edgebert.emulator.bench.path_cache import ReplayRunner
from edgebert.emulator.runner import Runner
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig

#: Relative disagreement between the oracle's formula and its emulator run that is an error.
MODEL_TOLERANCE = 1e-6


def energy_at_points(hw: HardwareConfig, cycles: int, breakdown: Mapping[str, float]) -> list[tuple[float, float]]:
    """(latency s, energy J) at every operating point of a run without DVFS switches at the reset point."""
    pts, vn = hw.dvfs.points, hw.dvfs.nominal_point.volts
    r0 = pts[hw.dvfs.initial].volts / vn
    dyn = fixed = 0.0
    for k, v in breakdown.items():
        if k in ("leakage", "dvfs_switch"):
            continue
        if k in ("dram", "envm", "sram") and not hw.memory.level(k).scales_with_voltage:
            fixed += v
        else:
            dyn += v / (r0 * r0)
    out = []
    for p in pts:
        r, secs = p.volts / vn, cycles / (p.mhz * 1e6)
        out.append((secs, dyn * r * r + fixed + hw.energy.leakage_mw * 1e-3 * r * secs))
    return out


def oracle_point(options: Sequence[tuple[float, float]], target_s: float) -> int:
    """The cheapest point whose latency meets the target, else the fastest (shortest latency)."""
    meeting = [i for i, (secs, _) in enumerate(options) if secs <= target_s]
    if not meeting:
        return min(range(len(options)), key=lambda i: options[i][0])
    return min(meeting, key=lambda i: (options[i][1], options[i][0]))


class OracleRunner:
    """Runs sentences at a chosen point: one emulator Runner per reset point, made on first use (`path_cache`: a
    `ReplayRunner`, one emulation per exit path and point; identical reports)."""

    def __init__(self, program: Any, hw: HardwareConfig, path_cache: bool = True) -> None:
        self.program, self.hw, self.path_cache = program, hw, path_cache
        self.runners: dict[int, Runner | ReplayRunner] = {}

    def run(self, point: int, inputs: Any, entropies: Sequence[float] | None, timing_only: bool,
            task: str | None) -> Any:
        if point not in self.runners:
            hw = dataclasses.replace(self.hw, dvfs=dataclasses.replace(self.hw.dvfs, initial=point))
            self.runners[point] = ReplayRunner(self.program, hw) if self.path_cache else Runner(self.program, hw)
        return self.runners[point].run(inputs, entropy_values=entropies, timing_only=timing_only, disable_dvfs=True,
                                       check_races=False, task=task, resident_task=task)


def check_model(where: str, want: tuple[float, float], report: Mapping[str, Any]) -> None:
    """The oracle's formula must equal its emulator run (EdgebertError naming the sentence otherwise)."""
    for name, a, b in (("latency", want[0], report["seconds"]), ("energy", want[1], report["energy_j"])):
        if abs(a - b) > MODEL_TOLERANCE * max(abs(b), 1e-30):
            raise EdgebertError(f"{where}: oracle {name} {a!r} from the no-DVFS run disagrees with its emulator run "
                                f"{b!r}")
