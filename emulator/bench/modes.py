"""EdgeBERT's modes over many sentences (MLPerf-style SingleStream): latency, energy, exit layers and accuracy.

Every sentence runs the SAME binary in each mode: `no-exit` (exits never taken, DVFS ignored: every layer at the
initial operating point, the fastest in the default config), `early-exit` (DVFS ignored: latency-unbounded early
exit at full speed, the program's exit policy included), `ee+dvfs` (the program as compiled: early exit and
latency-aware DVFS) and, with a latency target, `oracle` (emulator/bench/oracle.py: the early-exit run's exits, each
sentence at the cheapest single operating point that meets the target). Sentences carry real inputs (full numerics
for no-exit and early-exit; ee+dvfs and the oracle replay the early-exit run's entropies timing-only: same control
flow, cycles and energy) or recorded entropies (timing-only replay through the real program). With labels, the
accuracy of each mode's exits (the `logits` output's argmax).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.emulator.bench.oracle import OracleRunner, check_model, energy_at_points, oracle_point
from edgebert.emulator.bench.path_cache import ReplayRunner
from edgebert.emulator.bench.savings import savings
from edgebert.emulator.runner import Runner
from edgebert.isa.abi import R_PRED
from edgebert.isa.errors import EdgebertError
from edgebert.isa.exit_rule import natural_exits
from edgebert.isa.progress import Progress, ProgressTask, progress_or_silent

#: mode name -> (disable_early_exit, disable_dvfs), in report order.
MODES: dict[str, tuple[bool, bool]] = {
    "no-exit": (True, True),
    "early-exit": (False, True),
    "ee+dvfs": (False, False),
}
ORACLE = "oracle"
ALL_MODES = (*MODES, ORACLE)
MODE_TITLES = {
    "no-exit": "no early exit, full speed",
    "early-exit": "early exit, no DVFS",
    "ee+dvfs": "early exit + latency-aware DVFS",
    ORACLE: "oracle: exit known, cheapest point in time",
}
#: Short mode names (table headers, axes).
MODE_SHORT = {"no-exit": "no exit", "early-exit": "early exit", "ee+dvfs": "early exit + DVFS", ORACLE: "oracle"}
PERCENTILES = (50, 90, 99)
#: The paper's reported energy savings of ee+dvfs (MICRO'21): vs no early exit, vs latency-unbounded early exit.
PAPER_SAVINGS = {"vs_no_exit": 7.0, "vs_early_exit": 2.5}


@dataclass
class SentenceRun:
    """One sentence in one mode."""

    latency_s: float
    energy_j: float
    exit_layer: int | None
    cycles: int
    breakdown: dict[str, float]
    predicted: int | None = None  # the predicted exit layer (R_PRED) when a prediction was made
    entropies: list[float] = field(default_factory=list)  # every entropy the run computed or replayed
    correct: bool | None = None
    points: list[int] = field(default_factory=list)  # DVFS timeline (operating point of each segment)


def _record(res: Any, label: int | None) -> SentenceRun:
    r = res.report
    pred = int(res.machine.regs[R_PRED]) if len(res.machine.regs) > R_PRED else 0
    correct = None
    logits = res.outputs.get("logits") if label is not None else None
    if logits is not None:
        correct = bool(int(np.argmax(np.asarray(logits).ravel())) == int(label))
    return SentenceRun(r["seconds"], r["energy_j"], r["exit_layer"], r["cycles"], dict(r["energy_breakdown_j"]),
                       pred or None, list(res.machine.entropy_log), correct, [s["point"] for s in r["dvfs"]])


def run_mode(runner: Runner, sentences: Sequence[Mapping[str, Any]], mode: str, *, timing_only: bool,
             task: str | None = None, replay: Sequence[SentenceRun] | None = None,
             labels: Sequence[int] | None = None, progress: ProgressTask | None = None,
             races: dict[str, int] | None = None) -> list[SentenceRun]:
    """Every sentence in one of MODES. `replay`: runs of the same sentences whose entropy logs drive a timing-only
    run instead (their exits must be this mode's; correctness is copied)."""
    no_exit, no_dvfs = MODES[mode]
    out = []
    for i, s in enumerate(sentences):
        ref = replay[i] if replay is not None else None
        try:
            res = runner.run(
                None if ref is not None else s.get("inputs"),
                entropy_values=ref.entropies if ref is not None else s.get("entropies"),
                timing_only=timing_only or ref is not None, disable_early_exit=no_exit, disable_dvfs=no_dvfs,
                check_races=i == 0, task=task, resident_task=task,
            )
        except EdgebertError as exc:
            raise EdgebertError(f"sentence {i}, mode {mode}: {exc}") from None
        if i == 0 and res.report["race_count"] and races is not None:
            races[mode] = res.report["race_count"]
        run = _record(res, labels[i] if labels is not None and ref is None and not timing_only else None)
        if ref is not None:
            if run.exit_layer != ref.exit_layer:
                raise EdgebertError(f"sentence {i}, mode {mode}: the replay exits after layer {run.exit_layer}, the "
                                    f"run it replays after {ref.exit_layer}")
            run.correct = ref.correct
        out.append(run)
        if progress is not None:
            progress.advance()
    return out


def run_oracle(program: Any, hw: Any, sentences: Sequence[Mapping[str, Any]], early: Sequence[SentenceRun],
               target_s: float, *, task: str | None = None,
               progress: ProgressTask | None = None, path_cache: bool = True) -> list[SentenceRun]:
    """Each sentence of the early-exit runs `early` at its oracle point (oracle.py), replayed timing-only (`path_cache`:
    one emulation per exit path and point)."""
    oracle = OracleRunner(program, hw, path_cache)
    out = []
    for i, ref in enumerate(early):
        options = energy_at_points(hw, ref.cycles, ref.breakdown)
        x = oracle_point(options, target_s)
        entropies = ref.entropies if ref.entropies or "entropies" not in sentences[i] else sentences[i]["entropies"]
        try:
            res = oracle.run(x, None, entropies, True, task)
        except EdgebertError as exc:
            raise EdgebertError(f"sentence {i}, mode {ORACLE}: {exc}") from None
        run = _record(res, None)
        if run.exit_layer != ref.exit_layer:
            raise EdgebertError(f"sentence {i}, mode {ORACLE}: exits after layer {run.exit_layer}, its early-exit run "
                                f"after {ref.exit_layer}")
        check_model(f"sentence {i}, mode {ORACLE} at point {x}", options[x], res.report)
        run.correct, run.points = ref.correct, [x]
        out.append(run)
        if progress is not None:
            progress.advance()
    return out


def _stats(runs: Sequence[SentenceRun], target: float | None) -> dict[str, Any]:
    lat = np.array([r.latency_s for r in runs])
    energy = np.array([r.energy_j for r in runs])
    hist: dict[str, int] = {}
    for r in runs:
        key = str(r.exit_layer)
        hist[key] = hist.get(key, 0) + 1
    valid = [r.exit_layer for r in runs if r.exit_layer is not None]
    graded = [r.correct for r in runs if r.correct is not None]
    within = lat <= target if target is not None else None
    return {
        "sentences": len(lat),
        "latency_s": {f"p{p}": float(np.percentile(lat, p)) for p in PERCENTILES}
        | {"mean": float(lat.mean()), "max": float(lat.max())},
        "energy_j": {"mean": float(energy.mean()), "total": float(energy.sum())},
        "exit_layer": {"mean": float(np.mean(valid)) if valid else None,
                       "histogram": dict(sorted(hist.items(), key=lambda kv: (kv[0] == "None", int(kv[0]) if kv[0] != "None" else 0)))},
        "within_target": float(np.mean(within)) if within is not None else None,
        "missed": int(np.sum(~within)) if within is not None else None,
        "accuracy": float(np.mean(graded)) if graded else None,
    }


def _prediction_stats(program: Any, sentences: Sequence[Mapping[str, Any]], runs: Mapping[str, list[SentenceRun]]
                      ) -> dict[str, Any] | None:
    """How the predictor did on the early-exit runs: predictions made, low ones (a later natural exit: recovered
    under `recover`, forced early under `forced`), from the entropies (the trace, or the no-exit run's log)."""
    early = program.metadata.get("early_exit") or {}
    ee = runs.get("early-exit")
    if not ee or "threshold" not in early or not any(r.predicted for r in ee):
        return None
    L = int(early["num_layers"])
    rows = []
    for i, s in enumerate(sentences):
        ent = s.get("entropies")
        if ent is None and "no-exit" in runs:
            ent = runs["no-exit"][i].entropies
        if ent is None or len(ent) < L - 1:
            return None
        rows.append(list(ent[: L - 1]) + [0.0])
    nat = natural_exits(np.array(rows), float(early["threshold"]), early.get("compare", "lt"))
    pred = np.array([r.predicted or 0 for r in ee])
    got = np.array([r.exit_layer for r in ee])
    low = (pred > 0) & (nat > pred)
    forced = got < nat
    return {"policy": early.get("policy", "recover"), "predicted": int(np.sum(pred > 0)), "low": int(np.sum(low)),
            "high": int(np.sum((pred > 0) & (nat < pred))), "exact": int(np.sum((pred > 0) & (nat == pred))),
            "forced_before_natural": int(np.sum(forced)),
            "layers_cut_by_forcing": float(np.mean((nat - got)[forced])) if forced.any() else 0.0,
            "natural_exit_mean": float(nat.mean())}


def run_bench(program: Any, hw: Any, sentences: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """`bench`'s JSON-ready result (keywords: those of `bench`)."""
    return bench(program, hw, sentences, **kw)[0]


def bench(
    program: Any,
    hw: Any,
    sentences: list[dict[str, Any]],
    *,
    timing_only: bool,
    target_s: float | None,
    progress: Progress | None = None,
    task: str | None = None,
    labels: Sequence[int] | None = None,
    modes: Sequence[str] = ALL_MODES,
    reference: Mapping[str, list[SentenceRun]] | None = None,
    path_cache: bool = True,
) -> tuple[dict[str, Any], dict[str, list[SentenceRun]]]:
    """Run every sentence in `modes` (the oracle only with a target); returns the JSON-ready result and the runs per
    mode. `sentences` are `{"inputs": ..., "entropies": ...}` dicts, `labels` their classes (accuracy of full runs).
    `reference`: runs of other modes already made on the same sentences with the same exits (e.g. by a program that
    differs only in its DVFS tables), reused as they are.

    `task`: the task of a multi-task program, run with its block already resident (steady state). `path_cache`:
    timing-only replays cost one emulation per control path (`path_cache.ReplayRunner`; identical numbers).
    A program without DVFS instructions (compiled without a latency target) skips ee+dvfs, which would equal early
    exit: the result's `notes` say so. `progress`: one bar per mode, a step per sentence."""
    runner = ReplayRunner(program, hw) if path_cache else Runner(program, hw)
    runs: dict[str, list[SentenceRun]] = dict(reference or {})
    races: dict[str, int] = {}  # race detection runs on the first sentence of each mode only (speed)
    notes = []
    if "ee+dvfs" in modes and "ee+dvfs" not in runs and not has_dvfs(program):
        modes = [m for m in modes if m != "ee+dvfs"]
        notes.append("the program has no DVFS instructions (compiled without a latency target): early exit + DVFS "
                     "would equal early exit, so it is not run; compile with --latency-target to compare it")
    bars = progress_or_silent(progress)
    t0 = time.perf_counter()
    for mode in MODES:
        if mode not in modes or mode in runs:
            continue
        replay = runs.get("early-exit") if mode == "ee+dvfs" and not timing_only else None
        with bars.task(f"{MODE_TITLES[mode]}", total=len(sentences)) as bar:
            runs[mode] = run_mode(runner, sentences, mode, timing_only=timing_only, task=task, replay=replay,
                                  labels=labels, progress=bar, races=races)
    if ORACLE in modes and target_s is not None and "early-exit" in runs and ORACLE not in runs:
        with bars.task(MODE_TITLES[ORACLE], total=len(sentences)) as bar:
            runs[ORACLE] = run_oracle(program, hw, sentences, runs["early-exit"], target_s, task=task, progress=bar,
                                      path_cache=path_cache)
    order = [m for m in ALL_MODES if m in runs and m in modes]
    stats = {}
    for mode in order:
        stats[mode] = _stats(runs[mode], target_s) | {"title": MODE_TITLES[mode]}
        stats[mode]["energy_breakdown_j"] = {k: float(np.mean([r.breakdown.get(k, 0.0) for r in runs[mode]]))
                                             for k in runs[mode][0].breakdown}
    points_used: dict[str, int] = {}
    switches: dict[str, int] = {}  # ee+dvfs: sentences by number of DVFS switches
    for r in runs.get("ee+dvfs", []):
        key = str(len(r.points) - 1)
        switches[key] = switches.get(key, 0) + 1
        for p in r.points[1:]:
            points_used[str(p)] = points_used.get(str(p), 0) + 1
    per_sentence = {m: {"latency_s": [r.latency_s for r in runs[m]], "energy_j": [r.energy_j for r in runs[m]],
                        "exit_layer": [r.exit_layer for r in runs[m]], "cycles": [r.cycles for r in runs[m]]}
                    for m in order}
    if ORACLE in per_sentence:
        per_sentence[ORACLE]["point"] = [r.points[0] for r in runs[ORACLE]]
    if labels is not None and "early-exit" in runs and not timing_only:
        for m in order:
            per_sentence[m]["correct"] = [r.correct for r in runs[m]]
    result = {
        "hw": hw.name,
        "task": task,
        "sentences": len(sentences),
        "timing_only": timing_only,
        "latency_target_s": target_s,
        "modes": stats,
        "savings": savings({m: [r.energy_j for r in runs[m]] for m in order}),
        "paper_savings": PAPER_SAVINGS,
        "predictions": _prediction_stats(program, sentences, runs),
        "dvfs_switches_to_point": dict(sorted(points_used.items())),
        "dvfs_switches_per_sentence": dict(sorted(switches.items())),
        "races_first_sentence": races,
        "wall_seconds": time.perf_counter() - t0,
        "path_cache": dict(runner.stats) if path_cache else None,
        "per_sentence": per_sentence,
        "early_exit": _exit_settings(program),
        "notes": notes,
    }
    return result, runs


def has_dvfs(program: Any) -> bool:
    """Whether the program can change its operating point (a dvfs or dvfsr instruction)."""
    return any(inst.mnemonic in ("dvfs", "dvfsr") for inst in program.code)


def _exit_settings(program: Any) -> dict[str, Any] | None:
    """The program's early-exit threshold, policy and comparison (None without early exit)."""
    early = program.metadata.get("early_exit")
    if not isinstance(early, dict):
        return None
    return {k: early.get(k) for k in ("threshold", "policy", "compare", "num_layers")}


def per_sentence_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (sentence, mode) of a bench result: latency (s), energy (J), exit layer, cycles, and the oracle's
    operating point and the exit's correctness when known."""
    rows = []
    for mode, per in result["per_sentence"].items():
        for i in range(len(per["latency_s"])):
            row = {"sentence": i, "mode": mode, "latency_s": per["latency_s"][i], "energy_j": per["energy_j"][i],
                   "exit_layer": per["exit_layer"][i], "cycles": per["cycles"][i]}
            if "point" in per:
                row["operating_point"] = per["point"][i]
            if "correct" in per:
                row["correct"] = per["correct"][i]
            rows.append(row)
    return rows
