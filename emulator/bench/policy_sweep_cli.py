"""`edgebert-bench model.onnx ...`: a sweep of latency targets x thresholds x exit policies (policy_sweep.py) from the
command line, its markdown tables, and the sentence loading both forms of edgebert-bench share."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.isa.errors import EdgebertError
from edgebert.isa.progress import terminal_progress

#: Compile options of a sweep: (flag, attribute, default), errors with an .ebin (its options are compiled in).
_SWEEP_FLAGS = (("--threshold", "threshold", None), ("--exit-policy", "exit_policy", None),
                ("--predictor-table", "predictor_table", None), ("--calibration-entropies", "calibration_entropies",
                                                                 None),
                ("--exit-compare", "exit_compare", "lt"), ("--dvfs-planner", "dvfs_planner", "table"),
                ("--layer1-point", "layer1_point", "planned"), ("--dvfs-bins-scale", "dvfs_bins_scale", None),
                ("--dvfs-margin", "dvfs_margin", 0.0), ("--cache", "cache", None),
                ("--per-sentence", "per_sentence", False), ("--jobs", "jobs", 1))


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a sweep (the program argument an ONNX model)."""
    from edgebert.compiler.options import DVFS_PLANNERS, EXIT_POLICIES, LAYER1_POINTS, early_exit_flag
    from edgebert.isa.table import EXIT_COMPARES

    several = "a sweep takes several (repeat or comma-separate)"
    g = p.add_argument_group("sweep (an ONNX model: compiled per threshold, exit policy and latency target, cached)")
    g.add_argument("--threshold", action="append", **early_exit_flag(
        "--threshold", f"default: the model's edgebert.entropy_threshold; {several}"))
    g.add_argument("--exit-policy", action="append", **early_exit_flag("--exit-policy", f"{several}; forced needs a "
                                                                      f"predictor ({', '.join(EXIT_POLICIES)})"))
    g.add_argument("--predictor-table", **early_exit_flag("--predictor-table"))
    g.add_argument("--calibration-entropies", **early_exit_flag("--calibration-entropies"))
    g.add_argument("--exit-compare", choices=EXIT_COMPARES, default="lt", **early_exit_flag("--exit-compare"))
    g.add_argument("--dvfs-planner", choices=DVFS_PLANNERS, default="table", **early_exit_flag("--dvfs-planner"))
    g.add_argument("--layer1-point", choices=LAYER1_POINTS, default="planned", **early_exit_flag("--layer1-point"))
    g.add_argument("--dvfs-bins-scale", type=float, **early_exit_flag("--dvfs-bins-scale"))
    g.add_argument("--dvfs-margin", type=float, default=0.0, **early_exit_flag("--dvfs-margin"))
    g.add_argument("--cache", metavar="DIR", help="compiled programs cache (default: $XDG_CACHE_HOME/edgebert/programs "
                   "or ~/.cache/edgebert/programs)")
    g.add_argument("--per-sentence", action="store_true", help="keep every run's per-sentence energies in --json")
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes for the (threshold, policy) "
                   "pairs (default 1; the same results)")


def is_model(path: str) -> bool:
    """Whether edgebert-bench's program argument is an ONNX model (a sweep) rather than an .ebin."""
    return Path(path).suffix.lower() == ".onnx"


def check_no_sweep_arguments(args: argparse.Namespace) -> None:
    """Compile options with an .ebin are an error naming the option (the program has its own compiled in)."""
    for flag, attr, default in _SWEEP_FLAGS:
        if getattr(args, attr) != default:
            what = "runs a sweep in parallel" if flag == "--jobs" else "is a compile option"
            raise EdgebertError(f"{flag} {what}: give the ONNX model instead of {args.program} (a sweep)")


def _split(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for spec in values or [] for v in str(spec).split(",") if v.strip()]


def load_sentences(args: argparse.Namespace, program: Any) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The sentences of `--entropy-trace` or `--inputs` (the latter's optional `labels` array: their classes)."""
    from edgebert.isa.traces import read_entropy_trace

    if args.entropy_trace:
        return sentences_from(program, rows=read_entropy_trace(args.entropy_trace), limit=args.limit)
    if len(args.inputs) > 1:
        raise EdgebertError("--inputs: give one .npz (NAME=NPZ, once per task, is for --single)")
    return sentences_from(program, inputs=args.inputs[0], limit=args.limit)


def sentences_from(program: Any, *, rows: Sequence[Sequence[float]] | None = None,
                   inputs: str | Path | Mapping[str, Any] | None = None, limit: int | None = None
                   ) -> tuple[list[dict[str, Any]], list[int] | None]:
    """Sentences for the bench harness: recorded entropy `rows` (a replay), or `inputs` (an .npz path or arrays by
    input name, a leading sentence axis; an extra `labels` array gives their classes); the first `limit`."""
    from edgebert.emulator.run_files import load_inputs, split_sentences

    if rows is not None:
        return [{"entropies": list(r)} for r in rows][:limit], None
    arrays = load_inputs(inputs) if isinstance(inputs, (str, Path)) else {k: np.asarray(v)
                                                                         for k, v in (inputs or {}).items()}
    where = inputs if isinstance(inputs, (str, Path)) else "inputs"
    specs = program.metadata.get("inputs", [])
    sentences = [{"inputs": x} for x in split_sentences(arrays, specs, where)]
    if not sentences:
        raise EdgebertError(f"{where}: no sentences")
    labels = None
    if "labels" in arrays and "labels" not in {e["name"] for e in specs}:
        labels = np.asarray(arrays["labels"]).astype(np.int64).ravel().tolist()
        if len(labels) != len(sentences):
            raise EdgebertError(f"{where}: {len(labels)} labels for {len(sentences)} sentences")
    return sentences[:limit], (labels[:limit] if labels is not None else None)


def default_cache() -> Path:
    """Where compiled programs are cached by default."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgebert" / "programs"


def _uj(run: Mapping[str, Any], mode: str) -> str:
    s = run["modes"].get(mode)
    if not s:
        return "-"
    uj = s["energy_j"]["mean"] * 1e6
    return f"{uj:.1f}" if uj >= 100 else f"{uj:.4g}"


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.2f} us"


def sweep_markdown(result: Mapping[str, Any]) -> list[str]:
    """One row per (threshold, policy, target) and the best per policy (markdown lines)."""
    graded = any(r["modes"]["early-exit"].get("accuracy") is not None for r in result["runs"])
    head = ["threshold", "policy", "target", "mean exit layer", "ee+dvfs within target",
            *(["accuracy: exits (all layers)"] if graded else []), "no-exit uJ", "early-exit uJ", "ee+dvfs uJ", "oracle uJ", "vs no-exit: mean (up to)",
            "vs early-exit: mean (up to)", "ee+dvfs / oracle", "forced before natural exit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["runs"]:
        m, s = r["modes"], r["savings"]
        ee = m["ee+dvfs"]
        cells = [f"{r['threshold']:g}", r["policy"], _duration(r["target_s"]) + (f" ({r['target']})" if
                 r["target"].endswith("x") else ""),
                 f"{ee['exit_layer']['mean']:.2f}", f"{100 * ee['within_target']:.1f} % ({ee['missed']} missed)"]
        if graded:
            acc, full = m["early-exit"].get("accuracy"), m["no-exit"].get("accuracy")
            cells.append(f"{100 * acc:.1f} % ({100 * full:.1f} %)" if acc is not None and full is not None else "-")
        cells += [_uj(r, "no-exit"), _uj(r, "early-exit"), _uj(r, "ee+dvfs"), _uj(r, "oracle"),
                  f"{s['vs_no_exit']['mean']:.2f}x ({s['vs_no_exit']['up_to']:.2f}x)",
                  f"{s['vs_early_exit']['mean']:.2f}x ({s['vs_early_exit']['up_to']:.2f}x)",
                  f"{s['vs_oracle']['mean']:.3f}x" if "vs_oracle" in s else "-"]
        pred = r.get("predictions") or {}
        cut = pred.get("forced_before_natural")
        cells.append(f"{cut} ({pred['layers_cut_by_forcing']:.2f} layers)" if cut else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for policy, best in result["best"].items():
        parts = []
        for key, name in (("vs_no_exit", "no exit"), ("vs_early_exit", "early exit")):
            b = best.get(key)
            if b:
                at = b["mean_at"]
                parts.append(f"vs {name}: best mean {b['mean']:.2f}x (threshold {at['threshold']:g}, "
                             f"{_duration(at['target_s'])}), up to {b['up_to']:.2f}x on one sentence")
        lines.append(f"{policy}: " + "; ".join(parts))
    return lines


def bound_lines(result: Mapping[str, Any]) -> list[str]:
    """Per policy: the largest ee+dvfs / oracle energy of the sweep and the smallest share within the target."""
    out = []
    for policy in result["policies"]:
        runs = [r for r in result["runs"] if r["policy"] == policy and "vs_oracle" in r["savings"]]
        if runs:
            worst = max(runs, key=lambda r: r["savings"]["vs_oracle"]["mean"])
            within = min(r["modes"]["ee+dvfs"]["within_target"] for r in runs)
            out.append(f"{policy}: at most {worst['savings']['vs_oracle']['mean']:.3f}x the oracle's energy "
                       f"(threshold {worst['threshold']:g}, {_duration(worst['target_s'])}); at least "
                       f"{100 * within:.1f} % of the sentences within the target at every target")
    return out


def write_outputs(result: Mapping[str, Any], json_path: str | None, plot_path: str | None,
                  title: str | None = None) -> None:
    """A sweep's `--json` and `--plot`."""
    from edgebert.emulator.run_files import write_json

    if json_path:
        write_json(json_path, result, indent=1)
    if plot_path:
        from edgebert.emulator.bench.sweep_plots import plot_sweep

        plot_sweep(result, plot_path, title=title)


def run_sweep_cli(args: argparse.Namespace) -> int:
    """`edgebert-bench model.onnx --latency-target ... [--threshold ...] [--exit-policy ...] ...`."""
    from edgebert.compiler.options import EXIT_POLICIES
    from edgebert.emulator.bench.policy_sweep import parse_targets

    if not Path(args.program).is_file():
        raise EdgebertError(f"{args.program}: no such file")
    for opt, value in (("--task", args.task), ("--single", args.single), ("--stream", args.stream)):
        if value:
            raise EdgebertError(f"{opt} applies to a compiled multi-task program, not to a sweep of {args.program}")
    if not args.latency_target:
        raise EdgebertError("a sweep needs --latency-target (one or more)")
    if args.limit is not None and args.limit < 1:
        raise EdgebertError("--limit must be at least 1")
    for path in (args.predictor_table, args.calibration_entropies):
        if path is not None and not Path(path).is_file():
            raise EdgebertError(f"{path}: no such file")
    targets = parse_targets(args.latency_target)
    try:
        thresholds = [float(t) for t in _split(args.threshold)] or [None]
    except ValueError:
        raise EdgebertError(f"--threshold expects numbers, got {args.threshold}") from None
    policies = _split(args.exit_policy) or ["recover"]
    bad = [p for p in policies if p not in EXIT_POLICIES]
    if bad:
        raise EdgebertError(f"--exit-policy: unknown policy '{bad[0]}' ({', '.join(EXIT_POLICIES)})")
    if args.inputs and len(args.inputs) > 1:
        raise EdgebertError("--inputs: give one .npz (NAME=NPZ, once per task, is for --single)")
    from edgebert.api import policy_sweep

    with terminal_progress(args.quiet) as progress:
        result = policy_sweep(
            args.program, latency_targets=targets, thresholds=None if thresholds == [None] else thresholds,
            policies=policies, inputs=args.inputs[0] if args.inputs else None, entropies=args.entropy_trace,
            hw=args.hw, predictor_table=args.predictor_table, calibration_entropies=args.calibration_entropies,
            exit_compare=args.exit_compare, dvfs_planner=args.dvfs_planner, layer1_point=args.layer1_point,
            dvfs_bins_scale=args.dvfs_bins_scale, dvfs_margin=args.dvfs_margin, limit=args.limit, cache=args.cache,
            per_sentence=args.per_sentence, progress=progress, jobs=args.jobs)
    write_outputs(result, args.json, args.plot)
    if not args.quiet:
        print("\n".join(sweep_markdown(result) + bound_lines(result)))
    return 0
