"""edgebert-bench: MLPerf-style SingleStream runs of a program over many sentences, in three EdgeBERT modes.

Every sentence runs the SAME binary three times: `no-exit` (bexit never taken, DVFS ignored: every layer at the
initial operating point, the fastest in the default config), `early-exit` (DVFS ignored: latency-unbounded early
exit at full speed) and `ee+dvfs` (the program as compiled: early exit and latency-aware DVFS). Inputs are either
real (`--inputs`, an .npz with one array per program input, leading sentence axis; full numerics) or recorded
entropies (`--entropy-trace`, one sentence per line; timing-only replay through the real program).

Multi-task programs: `--task NAME` benches one task in the three modes (its block resident: steady state);
`--single NAME=EBIN ... --inputs NAME=NPZ ...` compares single-task binaries with the multi-task one on the same
sentences (`multitask_bench.compare`: on-chip memory, bytes loaded, energy, mixed streams with task switches).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.emulator.multitask_bench import STREAM_KINDS
from edgebert.isa.errors import EdgebertError, run_cli
from edgebert.isa.traces import read_entropy_trace
from edgebert.isa.units import parse_duration

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


def load_sentence_inputs(path: str | Path, program_inputs: list[dict[str, Any]]) -> list[dict[str, np.ndarray]]:
    """Split an .npz of [sentences, ...] arrays (one per program input) into one input dict per sentence."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise EdgebertError(f"{path}: cannot read inputs: {exc}") from None
    names = [e["name"] for e in program_inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise EdgebertError(f"{path}: no array for input '{missing[0]}' (has {sorted(arrays)})")
    counts = {len(arrays[n]) for n in names}
    if len(counts) != 1:
        raise EdgebertError(f"{path}: inputs have different sentence counts {sorted(counts)}")
    count = counts.pop() if counts else 0
    out = []
    for i in range(count):
        sentence = {}
        for e in program_inputs:
            value = arrays[e["name"]][i]
            shape = tuple(e.get("shape", value.shape))
            if value.shape != shape and value.size == int(np.prod(shape)):
                value = value.reshape(shape)
            sentence[e["name"]] = value
        out.append(sentence)
    return out


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
) -> dict[str, Any]:
    """Run every sentence in the three modes; `sentences` are `{"inputs": ..., "entropies": ...}` dicts.

    `task`: the task of a multi-task program, run with its block already resident (steady state)."""
    from edgebert.emulator.runner import Runner

    runner = Runner(program, hw)
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
        "per_sentence": per_sentence,
    }


def print_table(result: Mapping[str, Any]) -> None:
    """The three modes side by side (rich)."""
    from rich.console import Console
    from rich.table import Table

    target = result["latency_target_s"]
    t = Table(title=f"edgebert-bench SingleStream: {result['sentences']} sentences on {result['hw']}"
              + (f", task {result['task']} (resident)" if result.get("task") else "")
              + (" (timing-only replay)" if result["timing_only"] else ""))
    t.add_column("metric")
    for mode in MODES:
        t.add_column(MODE_TITLES[mode], justify="right")
    modes = result["modes"]

    def row(name: str, fn: Callable[[dict[str, Any]], str]) -> None:
        t.add_row(name, *(fn(modes[m]) for m in MODES))

    for p in PERCENTILES:
        row(f"latency p{p} (ms)", lambda s, p=p: f"{s['latency_s'][f'p{p}'] * 1e3:.3f}")
    row("latency max (ms)", lambda s: f"{s['latency_s']['max'] * 1e3:.3f}")
    if target is not None:
        row(f"within {target * 1e3:g} ms", lambda s: f"{100 * s['within_target']:.1f} %")
    row("energy / sentence (uJ)", lambda s: f"{s['energy_j']['mean'] * 1e6:.2f}")
    row("mean exit layer", lambda s: f"{s['exit_layer']['mean']:.2f}" if s["exit_layer"]["mean"] is not None else "-")
    e_dvfs = modes["ee+dvfs"]["energy_j"]["mean"]
    row("energy vs ee+dvfs", lambda s: f"{s['energy_j']['mean'] / e_dvfs:.2f}x" if e_dvfs else "-")
    console = Console()
    console.print(t)
    hist = Table(title="exit-layer histogram (sentences)")
    hist.add_column("layer")
    for mode in MODES:
        hist.add_column(mode, justify="right")
    layers = sorted({k for m in MODES for k in modes[m]["exit_layer"]["histogram"]},
                    key=lambda k: int(k) if k != "None" else 10**9)
    for k in layers:
        hist.add_row(k, *(str(modes[m]["exit_layer"]["histogram"].get(k, 0)) for m in MODES))
    console.print(hist)
    s = result["savings"]
    console.print(
        f"energy savings of ee+dvfs: {s['vs_no_exit']:.2f}x vs no early exit (paper: 7x), "
        f"{s['vs_early_exit']:.2f}x vs early exit without DVFS (paper: 2.5x)"
    )


def plot_bench(result: Mapping[str, Any], path: str) -> None:
    """Latency CDFs with the target, mean energy per sentence and exit-layer histograms of the three modes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_en, ax_ex) = plt.subplots(1, 3, figsize=(15, 4.5))
    per = result["per_sentence"]
    for mode in MODES:
        lat = np.sort(np.array(per[mode]["latency_s"])) * 1e3
        ax_lat.step(lat, np.arange(1, len(lat) + 1) / len(lat), where="post", label=MODE_TITLES[mode])
    if result["latency_target_s"] is not None:
        ax_lat.axvline(result["latency_target_s"] * 1e3, color="k", ls="--", lw=1, label="target")
    ax_lat.set_xlabel("latency (ms)")
    ax_lat.set_ylabel("share of sentences")
    ax_lat.legend(fontsize=8)
    ax_lat.set_title("latency CDF")
    energies = [result["modes"][m]["energy_j"]["mean"] * 1e6 for m in MODES]
    ax_en.bar(range(len(MODES)), energies, color=["C0", "C1", "C2"])
    ax_en.set_xticks(range(len(MODES)), list(MODES))
    ax_en.set_ylabel("mean energy per sentence (uJ)")
    ax_en.set_title("energy")
    width = 0.27
    for j, mode in enumerate(MODES):
        hist = result["modes"][mode]["exit_layer"]["histogram"]
        keys = [k for k in hist if k != "None"]
        ax_ex.bar([int(k) + (j - 1) * width for k in keys], [hist[k] for k in keys], width, label=mode)
    ax_ex.set_xlabel("exit layer")
    ax_ex.set_ylabel("sentences")
    ax_ex.legend(fontsize=8)
    ax_ex.set_title("exit layers")
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise EdgebertError(f"{path}: cannot write plot: {exc.strerror}") from None
    finally:
        plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebert-bench", description=__doc__.split("\n")[0])
    p.add_argument("program", help="program to run (.ebin); a multi-task program needs --task or --single")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--inputs", action="append", metavar="NPZ | NAME=NPZ",
                     help=".npz with one array per program input, leading sentence axis (full runs); with --single: "
                          "NAME=NPZ, once per task")
    src.add_argument("--entropy-trace", help="recorded entropies, one sentence per line (timing-only replay)")
    p.add_argument("--task", help="multi-task program: bench this task in the three modes (its block resident)")
    p.add_argument("--single", action="append", metavar="NAME=EBIN",
                   help="multi-task program: compare with this task's single-task binary (repeat per task)")
    p.add_argument("--stream", choices=(*STREAM_KINDS, "both"),
                   help="with --single: the mixed stream's order, round-robin (a task switch before every "
                        "sentence; default), blocked (all sentences of one task, then the next) or both")
    p.add_argument("--latency-target", help="per-sentence latency target, e.g. 50ms (default: the program's plan)")
    p.add_argument("--limit", type=int, help="only the first N sentences (per task with --single)")
    p.add_argument("--json", help="write the results here (JSON)")
    p.add_argument("--plot", help="draw latency CDFs, energy and exit layers to this image")
    p.add_argument("--hw", help="hardware config TOML (default: the one the package ships)")
    p.add_argument("-q", "--quiet", action="store_true", help="no table on the terminal")
    return p


def _load_program(path: str, hw: Any, explicit_hw: bool) -> Any:
    """Load an .ebin and check it was compiled for `hw` (warn when --hw overrides, error otherwise)."""
    from edgebert.isa.ebin import load_ebin

    program = load_ebin(path)
    if any(program.hw_fingerprint) and program.hw_fingerprint != hw.fingerprint:
        msg = f"{path} was compiled for a different hardware config than {hw.name}"
        if not explicit_hw:
            raise EdgebertError(msg + "; pass --hw FILE to run it on a config of your choice anyway")
        print(f"edgebert-bench: warning: {msg}; running on --hw as requested", file=sys.stderr)
    return program


def _write_json(path: str, result: Mapping[str, Any]) -> None:
    try:
        Path(path).write_text(json.dumps(result, indent=1, default=float) + "\n")
    except OSError as exc:
        raise EdgebertError(f"{path}: cannot write: {exc.strerror}") from None


def _plan_target(program: Any, task: str | None) -> float | None:
    """The latency target the program's (or the task's) DVFS plan was made for."""
    table = program.metadata.get("dvfs_table")
    if task is not None:
        table = next(d for d in program.metadata["multitask"]["tasks"] if d["name"] == task).get("dvfs_table")
    return (table or {}).get("target_s") or (program.metadata.get("latency_target_s") if task else None)


def _run_compare(args: argparse.Namespace, multi: Any, hw: Any) -> int:
    """--single: single-task binaries vs the multi-task one (multitask_bench.compare), markdown tables."""
    from edgebert.emulator.multitask import task_info, task_names
    from edgebert.emulator.multitask_bench import compare, format_markdown, make_stream, parse_pairs

    tasks = task_names(multi)
    if not tasks:
        raise EdgebertError(f"--single: {args.program} is not a multi-task program (no multitask metadata); "
                            "bench it without --single")
    for opt, value in (("--task", args.task), ("--entropy-trace", args.entropy_trace), ("--plot", args.plot),
                       ("--latency-target", args.latency_target)):
        if value:
            raise EdgebertError(f"{opt} does not apply to the comparison with single-task binaries (--single)")
    single_paths = parse_pairs(args.single, "--single")
    input_paths = parse_pairs(args.inputs, "--inputs")
    for opt, names in (("--single", single_paths), ("--inputs", input_paths)):
        for name in names:
            if name not in tasks:
                raise EdgebertError(f"{opt}: unknown task '{name}' ({args.program} has tasks: {', '.join(tasks)})")
    for name in single_paths:
        if name not in input_paths:
            raise EdgebertError(f"--inputs: no sentences for task '{name}' (give --inputs {name}=NPZ)")
    for name in input_paths:
        if name not in single_paths:
            raise EdgebertError(f"--single: no single-task binary for task '{name}' (give --single {name}=EBIN)")
    order = [t for t in tasks if t in single_paths]  # the multi-task program's task order
    singles = {}
    for t in order:
        p = _load_program(single_paths[t], hw, bool(args.hw))
        if task_info(p) is not None:
            raise EdgebertError(f"--single {t}={single_paths[t]}: is a multi-task program, not a single-task one")
        singles[t] = p
    sentences = {}
    for t in order:
        specs = list(multi.metadata.get("inputs", []))
        names = {e["name"] for e in specs}
        specs += [e for e in singles[t].metadata.get("inputs", []) if e["name"] not in names]
        xs = load_sentence_inputs(input_paths[t], specs)[: args.limit]
        if not xs:
            raise EdgebertError(f"{input_paths[t]}: no sentences for task '{t}'")
        sentences[t] = xs
    counts = {t: len(sentences[t]) for t in order}
    kinds = list(STREAM_KINDS) if args.stream == "both" else [args.stream or "round-robin"]
    result = compare(singles, multi, sentences, hw, streams={k: make_stream(k, counts) for k in kinds})
    result |= {"program": str(args.program), "singles": {t: single_paths[t] for t in order},
               "inputs": {t: input_paths[t] for t in order}}
    if args.json:
        _write_json(args.json, result)
    if not args.quiet:
        print(f"edgebert-bench: {len(order)} single-task binaries vs {args.program} on {hw.name}, "
              + ", ".join(f"{t} {n}" for t, n in counts.items()) + " sentences")
        print(format_markdown(result))
        for kind, st in result["streams"].items():
            print(f"{kind} stream: {st['sentences']} sentences, {st['switches']} task switches (the first load "
                  f"included), {st['bytes_loaded']:,} B of task blocks loaded")
    return 0


def _run(args: argparse.Namespace) -> int:
    from edgebert.emulator.multitask import task_names
    from edgebert.isa.hardware import default_config, load_config

    hw = load_config(args.hw) if args.hw else default_config()
    program = _load_program(args.program, hw, bool(args.hw))
    if args.limit is not None and args.limit < 1:
        raise EdgebertError("--limit must be at least 1")
    if args.single:
        return _run_compare(args, program, hw)
    if args.stream:
        raise EdgebertError("--stream applies to the comparison with single-task binaries (--single)")
    tasks = task_names(program)
    if tasks and args.task is None:
        raise EdgebertError(f"{args.program} is a multi-task program (tasks: {', '.join(tasks)}): pass --task NAME "
                            "to bench one task, or --single NAME=EBIN ... --inputs NAME=NPZ ... to compare it with "
                            "single-task binaries")
    if args.task is not None and not tasks:
        raise EdgebertError(f"--task: {args.program} is not a multi-task program (no multitask metadata)")
    if args.task is not None and args.task not in tasks:
        raise EdgebertError(f"--task: unknown task '{args.task}' ({args.program} has tasks: {', '.join(tasks)})")
    if args.entropy_trace:
        sentences: list[dict[str, Any]] = [{"entropies": row} for row in read_entropy_trace(args.entropy_trace)]
    else:
        if len(args.inputs) > 1:
            raise EdgebertError("--inputs: give one .npz (NAME=NPZ, once per task, is for --single)")
        path = args.inputs[0]
        sentences = [{"inputs": x} for x in load_sentence_inputs(path, program.metadata.get("inputs", []))]
        if not sentences:
            raise EdgebertError(f"{path}: no sentences")
    sentences = sentences[: args.limit]
    target = parse_duration(args.latency_target) if args.latency_target else _plan_target(program, args.task)
    result = run_bench(program, hw, sentences, timing_only=bool(args.entropy_trace), target_s=target,
                       task=args.task)
    result["program"] = str(args.program)
    if args.json:
        _write_json(args.json, result)
    if args.plot:
        plot_bench(result, args.plot)
    if not args.quiet:
        print_table(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `edgebert-bench`; returns the exit code (2 on any edgebert error)."""
    args = _parser().parse_args(argv)
    return run_cli("edgebert-bench", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
