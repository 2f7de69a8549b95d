"""EdgeBERT's three modes over many sentences (MLPerf-style SingleStream): latency, energy and exit layers.

Every sentence runs the SAME binary three times: `no-exit` (bexit never taken, DVFS ignored: every layer at the
initial operating point, the fastest in the default config), `early-exit` (DVFS ignored: latency-unbounded early
exit at full speed) and `ee+dvfs` (the program as compiled: early exit and latency-aware DVFS). Sentences carry
real inputs (full numerics) or recorded entropies (timing-only replay through the real program).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgebert.emulator.bench.path_cache import ReplayRunner
from edgebert.emulator.runner import Runner
from edgebert.isa.errors import EdgebertError

#: mode name -> (disable_early_exit, disable_dvfs), in report order.
MODES: dict[str, tuple[bool, bool]] = {
    "no-exit": (True, True),
    "early-exit": (False, True),
    "ee+dvfs": (False, False),
}
MODE_TITLES = {
    "no-exit": "no early exit, full speed",
    "early-exit": "early exit, no DVFS",
    "ee+dvfs": "early exit + latency-aware DVFS",
}
PERCENTILES = (50, 90, 99)
#: The paper's reported energy savings of ee+dvfs (MICRO'21): vs no early exit, vs latency-unbounded early exit.
PAPER_SAVINGS = {"vs_no_exit": 7.0, "vs_early_exit": 2.5}


def _stats(lat: np.ndarray, energy: np.ndarray, exits: list[int | None], target: float | None) -> dict[str, Any]:
    hist: dict[str, int] = {}
    for e in exits:
        key = str(e)
        hist[key] = hist.get(key, 0) + 1
    valid = [e for e in exits if e is not None]
    return {
        "sentences": len(lat),
        "latency_s": {f"p{p}": float(np.percentile(lat, p)) for p in PERCENTILES}
        | {"mean": float(lat.mean()), "max": float(lat.max())},
        "energy_j": {"mean": float(energy.mean()), "total": float(energy.sum())},
        "exit_layer": {"mean": float(np.mean(valid)) if valid else None,
                       "histogram": dict(sorted(hist.items(), key=lambda kv: (kv[0] == "None", int(kv[0]) if kv[0] != "None" else 0)))},
        "within_target": float(np.mean(lat <= target)) if target is not None else None,
    }


def run_bench(
    program: Any,
    hw: Any,
    sentences: list[dict[str, Any]],
    *,
    timing_only: bool,
    target_s: float | None,
    progress: Callable[[str, int], None] | None = None,
    task: str | None = None,
    path_cache: bool = True,
) -> dict[str, Any]:
    """Run every sentence in the three modes; `sentences` are `{"inputs": ..., "entropies": ...}` dicts.

    `task`: the task of a multi-task program, run with its block already resident (steady state). `path_cache`:
    timing-only replays cost one emulation per control path (`path_cache.ReplayRunner`; identical numbers)."""
    runner = ReplayRunner(program, hw) if path_cache else Runner(program, hw)
    modes: dict[str, Any] = {}
    per_sentence: dict[str, Any] = {}
    points_used: dict[str, int] = {}
    switches: dict[str, int] = {}  # ee+dvfs: sentences by number of DVFS switches (2 = a low prediction recovered)
    races: dict[str, int] = {}  # race detection runs on the first sentence of each mode only (speed)
    t0 = time.perf_counter()
    for mode, (no_exit, no_dvfs) in MODES.items():
        lat, energy, exits, cycles = [], [], [], []
        breakdown: dict[str, float] = {}
        for i, s in enumerate(sentences):
            try:
                res = runner.run(
                    s.get("inputs"), entropy_values=s.get("entropies"), timing_only=timing_only,
                    disable_early_exit=no_exit, disable_dvfs=no_dvfs, check_races=i == 0,
                    task=task, resident_task=task,
                )
            except EdgebertError as exc:
                raise EdgebertError(f"sentence {i}, mode {mode}: {exc}") from None
            r = res.report
            if i == 0 and r["race_count"]:
                races[mode] = r["race_count"]
            lat.append(r["seconds"])
            energy.append(r["energy_j"])
            for k, v in r["energy_breakdown_j"].items():
                breakdown[k] = breakdown.get(k, 0.0) + v
            exits.append(r["exit_layer"])
            cycles.append(r["cycles"])
            if mode == "ee+dvfs":
                key = str(len(r["dvfs"]) - 1)
                switches[key] = switches.get(key, 0) + 1
                for seg in r["dvfs"][1:]:
                    key = str(seg["point"])
                    points_used[key] = points_used.get(key, 0) + 1
            if progress:
                progress(mode, i)
        lat_a, en_a = np.array(lat), np.array(energy)
        modes[mode] = _stats(lat_a, en_a, exits, target_s)
        modes[mode]["title"] = MODE_TITLES[mode]
        modes[mode]["energy_breakdown_j"] = {k: v / len(sentences) for k, v in breakdown.items()}
        per_sentence[mode] = {"latency_s": lat, "energy_j": energy, "exit_layer": exits, "cycles": cycles}
    e = {m: modes[m]["energy_j"]["mean"] for m in MODES}
    savings = {
        "vs_no_exit": e["no-exit"] / e["ee+dvfs"] if e["ee+dvfs"] else None,
        "vs_early_exit": e["early-exit"] / e["ee+dvfs"] if e["ee+dvfs"] else None,
        "early_exit_vs_no_exit": e["no-exit"] / e["early-exit"] if e["early-exit"] else None,
    }
    return {
        "hw": hw.name,
        "task": task,
        "sentences": len(sentences),
        "timing_only": timing_only,
        "latency_target_s": target_s,
        "modes": modes,
        "savings": savings,
        "paper_savings": PAPER_SAVINGS,
        "dvfs_switches_to_point": dict(sorted(points_used.items())),
        "dvfs_switches_per_sentence": dict(sorted(switches.items())),
        "races_first_sentence": races,
        "wall_seconds": time.perf_counter() - t0,
        "path_cache": dict(runner.stats) if path_cache else None,
        "per_sentence": per_sentence,
    }
