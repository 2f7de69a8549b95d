"""A model over latency targets x entropy thresholds x exit policies: one compile per (threshold, policy) (cached), the
DVFS plan made again per target (`compiler.early_exit.retarget`: only the tables change), the modes run per target.

No-exit and early-exit do not depend on the target (DVFS is off in both): they run once per (threshold, policy) and
are reused for every target; ee+dvfs and the oracle run per target. Savings per run (emulator/bench/savings.py):
mean and up-to against no exit and early exit, ee+dvfs / oracle; and per policy the best (target, threshold) mean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert.emulator.bench.modes import PAPER_SAVINGS, bench
from edgebert.emulator.bench.program_cache import compiled
from edgebert.emulator.bench.savings import best_means
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.progress import Progress, progress_or_silent
from edgebert.isa.units import format_time, parse_duration

#: The latency target the first compile of each (threshold, policy) plans for (it is planned again per target).
PROBE_TARGET_S = 1.0
_RELATIVE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*x\s*$")


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep. `targets`: durations ("50ms") or multiples of the all-fastest latency of all L layers
    ("1.5x"); `base`: the other early-exit options (predictor, calibration, comparison, planner, layer-1 point)."""

    thresholds: Sequence[float]
    targets: Sequence[str]
    base: Any  # compiler.options.EarlyExitOptions
    policies: Sequence[str] = ("recover", "forced")
    cache_dir: str | Path | None = None
    per_sentence: bool = False  # keep every run's per-sentence energies and exits in the result
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the result as is


def resolve_target(spec: str, program: Any, hw: HardwareConfig) -> float:
    """Seconds of a target: a duration, or `<k>x` times the program's all-fastest latency of all its layers."""
    m = _RELATIVE.match(str(spec))
    if not m:
        return parse_duration(str(spec))
    from edgebert.compiler.dvfs_model import LayerCycles, all_fastest_s

    plan = program.metadata["dvfs_table"]
    return float(m.group(1)) * all_fastest_s(hw, LayerCycles(**plan["cycles"]), plan["fastest"], plan["num_layers"])


def parse_targets(specs: Sequence[str]) -> list[str]:
    """Target specs from repeated and/or comma-separated options, checked (EdgebertError naming a bad one)."""
    out = [t.strip() for spec in specs for t in str(spec).split(",") if t.strip()]
    for t in out:
        if not _RELATIVE.match(t):
            parse_duration(t)
        elif float(_RELATIVE.match(t).group(1)) <= 0:
            raise EdgebertError(f"bad latency target '{t}': the factor must be positive")
    if not out:
        raise EdgebertError("no latency target given")
    return out


def _entry(res: dict[str, Any], program: Any, threshold: float, policy: str, spec: str, target: float,
           keep: bool) -> dict[str, Any]:
    plan = program.metadata["dvfs_table"]
    out = {"threshold": threshold, "policy": policy, "target": spec, "target_s": target,
           "planner": plan["planner"], "compare": program.metadata["early_exit"].get("compare", "lt"),
           "layer1_point": plan["layer1_point"], "layer1_mode": plan["layer1_mode"],
           "modes": res["modes"], "savings": res["savings"], "predictions": res["predictions"],
           "dvfs_switches_per_sentence": res["dvfs_switches_per_sentence"],
           "races_first_sentence": res["races_first_sentence"],
           "plan": {"point_table": plan["point_table"], "recovery_table": plan["recovery_table"],
                    "class_points": (plan.get("bins") or {}).get("class_points"),
                    "modelled_energy_j": (plan.get("calibration") or {}).get("modelled_energy_j")}}
    if keep:
        out["per_sentence"] = {m: {k: v[k] for k in ("energy_j", "exit_layer", "latency_s")}
                               for m, v in res["per_sentence"].items()}
    return out


@contextlib.contextmanager
def worker_pool(jobs: int) -> Iterator[Executor | None]:
    """`jobs` worker processes for `run_sweep(executor=...)` (None when 1: the sweep runs in this process). Spawned,
    not forked: TVM's thread pool does not survive a fork."""
    if jobs < 1:
        raise EdgebertError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1:
        yield None
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            yield pool
        except BaseException:  # an error (or Ctrl-C): the queued pairs are not started, the error shows at once
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def in_worker(fn: Any, *args: Any) -> Any:
    """`fn(*args)` in a worker process: an edgebert error comes back as a plain EdgebertError with its message (a
    subclass with its own constructor, e.g. SramTooSmall, would not unpickle in the parent: the pool would break)."""
    try:
        return fn(*args)
    except EdgebertError as exc:
        raise EdgebertError(str(exc)) from None


def sweep_pair(model: str | Path, hw: HardwareConfig, sentences: list[dict[str, Any]], cfg: SweepConfig,
               threshold: float | None, policy: str, timing_only: bool, labels: Sequence[int] | None = None,
               say: Progress | None = None, bar: Any = None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One (threshold, policy) of the sweep: its compile (cached), no exit and early exit once, then every target
    (DVFS planned again, ee+dvfs and the oracle run). Returns the run entries and each target's seconds."""
    from edgebert.compiler.early_exit import retarget

    say = progress_or_silent(say)
    bar = bar if bar is not None else say.task("", total=None)
    opts = dataclasses.replace(cfg.base, threshold=None if threshold is None else float(threshold),
                               policy=policy, latency_target_s=PROBE_TARGET_S)
    tc = time.perf_counter()
    bar.update(description=f"threshold {threshold}, {policy}: compiling")
    program = compiled(model, opts, hw, cfg.cache_dir)
    say.note(f"threshold {threshold} {policy}: program ready in {time.perf_counter() - tc:.1f} s")
    bar.update(description=f"threshold {threshold}, {policy}: no exit, early exit")
    _, base_runs = bench(program, hw, sentences, timing_only=timing_only, target_s=None, labels=labels,
                         modes=("no-exit", "early-exit"))
    entries: list[dict[str, Any]] = []
    targets_s: dict[str, float] = {}
    for spec in cfg.targets:
        target = resolve_target(spec, program, hw)
        if not math.isfinite(target) or target <= 0:
            raise EdgebertError(f"latency target {spec}: not a positive duration")
        targets_s[spec] = target
        bar.update(description=f"threshold {threshold}, {policy}, target {spec}")
        prog_t, _ = retarget(program, hw, target, dataclasses.replace(opts, latency_target_s=target))
        res, _ = bench(prog_t, hw, sentences, timing_only=timing_only, target_s=target, labels=labels,
                       reference=base_runs)
        used = float(prog_t.metadata["early_exit"]["threshold"])  # the model's when none is given
        entries.append(_entry(res, prog_t, used, policy, spec, target, cfg.per_sentence))
        say.note(_summary(threshold, policy, entries[-1]))
        bar.advance()
    return entries, targets_s


def _summary(threshold: float | None, policy: str, e: dict[str, Any]) -> str:
    s = e["savings"]
    return (f"  threshold {threshold} {policy}, target {e['target']} ({format_time(e['target_s'])}): ee+dvfs "
            f"{s['vs_no_exit']['mean']:.2f}x vs no exit, {s['vs_early_exit']['mean']:.2f}x vs early exit, "
            f"{s['vs_oracle']['mean']:.3f}x the oracle's energy, "
            f"{100 * e['modes']['ee+dvfs']['within_target']:.1f} % within the target")


def run_sweep(model: str | Path, hw: HardwareConfig, sentences: list[dict[str, Any]], cfg: SweepConfig, *,
              timing_only: bool, labels: Sequence[int] | None = None,
              progress: Progress | None = None, executor: Executor | None = None) -> dict[str, Any]:
    """Every (threshold, policy, target) of `cfg` on `sentences` (module docstring); JSON-ready. `progress`: a bar
    over the runs and a note per run. `executor` (e.g. a ProcessPoolExecutor): the (threshold, policy) pairs run
    there concurrently (each is independent: its compile, its runs); the result is the same, in the same order."""
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    targets_s: dict[str, float] = {}
    say = progress_or_silent(progress)
    bar = say.task("sweep: threshold x policy x target", total=len(cfg.thresholds) * len(cfg.policies)
                   * len(cfg.targets))
    pairs = [(threshold, policy) for threshold in cfg.thresholds for policy in cfg.policies]
    if executor is not None:
        futures = [executor.submit(in_worker, sweep_pair, model, hw, sentences, cfg, threshold, policy, timing_only,
                                   labels) for threshold, policy in pairs]
        results = (f.result() for f in futures)
    else:
        results = (sweep_pair(model, hw, sentences, cfg, threshold, policy, timing_only, labels, say, bar)
                   for threshold, policy in pairs)
    for (threshold, policy), (entries, seconds) in zip(pairs, results, strict=True):
        runs += entries
        targets_s.update(seconds)
        if executor is not None:
            for e in entries:
                say.note(_summary(threshold, policy, e))
            bar.advance(len(entries))
    bar.close()
    return {
        "hw": hw.name,
        "model": str(model),
        "sentences": len(sentences),
        "timing_only": timing_only,
        "targets": list(cfg.targets),
        "targets_s": targets_s,
        "thresholds": sorted({r["threshold"] for r in runs}, key=[r["threshold"] for r in runs].index),
        "policies": list(cfg.policies),
        "options": {"compare": cfg.base.compare, "planner": cfg.base.planner, "layer1_point": cfg.base.layer1_point,
                    "margin": cfg.base.margin},
        "runs": runs,
        "best": best_means(runs),
        "paper_savings": PAPER_SAVINGS,
        "wall_seconds": time.perf_counter() - t0,
        **cfg.extra,
    }
