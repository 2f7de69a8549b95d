"""edgebert-bench: a program over many sentences in EdgeBERT's three modes, or single-task vs multi-task binaries.

Inputs are either real (`--inputs`, an .npz with one array per program input, leading sentence axis; full numerics)
or recorded entropies (`--entropy-trace`, one sentence per line; timing-only replay through the real program).
Multi-task programs: `--task NAME` benches one task in the three modes (its block resident: steady state);
`--single NAME=EBIN ... --inputs NAME=NPZ ...` compares single-task binaries with the multi-task one on the same
sentences (`multitask_compare.compare`: on-chip memory, bytes loaded, energy, mixed streams with task switches).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edgebert.emulator.bench.modes import MODE_SHORT, MODE_TITLES, PERCENTILES
from edgebert.emulator.bench.multitask_compare import STREAM_KINDS, compare, format_markdown, make_stream
from edgebert.emulator.bench.policy_sweep import parse_targets
from edgebert.emulator.bench.policy_sweep_cli import (
    add_sweep_arguments,
    check_no_sweep_arguments,
    is_model,
    run_sweep_cli,
)
from edgebert.emulator.multitask import task_info, task_names
from edgebert.emulator.run_files import load_program, load_sentence_inputs, write_json
from edgebert.isa.cli_common import (
    add_csv,
    add_entropy_trace,
    add_hw,
    add_inputs,
    add_json,
    add_plot,
    add_task,
    add_verbosity,
    add_version,
)
from edgebert.isa.errors import EdgebertError, run_cli
from edgebert.isa.progress import terminal_progress
from edgebert.isa.units import ENERGY_UNITS, TIME_UNITS, format_time, pick_unit


def print_table(result: Mapping[str, Any]) -> None:
    """The modes side by side (rich), the exit-layer histogram, the savings, the predictor's record and the notes."""
    from rich.console import Console
    from rich.table import Table

    target = result["latency_target_s"]
    modes = result["modes"]
    names = list(modes)
    early = result.get("early_exit") or {}
    t = Table(title=f"edgebert-bench: {result['sentences']} sentences of {result.get('program') or 'the program'} on "
              f"{result['hw']}" + (f", task {result['task']} (resident)" if result.get("task") else "")
              + (f", exit threshold {early['threshold']:g} ({early.get('policy')})" if early.get("threshold")
                 is not None else "")
              + (" (timing-only replay)" if result["timing_only"] else ""))
    t.caption = "; ".join(f"{MODE_SHORT[m]}: {MODE_TITLES[m].removeprefix(MODE_SHORT[m] + ': ')}" for m in names)
    t.add_column("metric")
    for mode in names:
        t.add_column(MODE_SHORT[mode], justify="right")

    def row(name: str, fn: Callable[[dict[str, Any]], str]) -> None:
        t.add_row(name, *(fn(modes[m]) for m in names))

    lat_unit = pick_unit([modes[m]["latency_s"]["max"] for m in names], TIME_UNITS)
    for p in PERCENTILES:
        row(f"latency p{p} ({lat_unit[0]})", lambda s, p=p: f"{s['latency_s'][f'p{p}'] / lat_unit[1]:,.4g}")
    row(f"latency max ({lat_unit[0]})", lambda s: f"{s['latency_s']['max'] / lat_unit[1]:,.4g}")
    if target is not None:
        row(f"within {format_time(target)}",
            lambda s: f"{100 * s['within_target']:.1f} %" + (f" ({s['missed']} missed)" if s["missed"] else ""))
    en_unit = pick_unit([modes[m]["energy_j"]["mean"] for m in names], ENERGY_UNITS)
    row(f"energy / sentence ({en_unit[0]})", lambda s: f"{s['energy_j']['mean'] / en_unit[1]:,.4g}")
    row("mean exit layer", lambda s: f"{s['exit_layer']['mean']:.2f}" if s["exit_layer"]["mean"] is not None else "-")
    if any(s.get("accuracy") is not None for s in modes.values()):
        row("accuracy", lambda s: f"{100 * s['accuracy']:.2f} %" if s.get("accuracy") is not None else "-")
    ref = "ee+dvfs" if "ee+dvfs" in modes else "early-exit"
    e_ref = modes[ref]["energy_j"]["mean"] if ref in modes else None
    if e_ref:
        row(f"energy vs {ref}", lambda s: f"{s['energy_j']['mean'] / e_ref:.2f}x")
    console = Console()
    console.print(t)
    hist = Table(title="sentences per exit layer")
    hist.add_column("exit layer")
    for mode in names:
        hist.add_column(MODE_SHORT[mode], justify="right")
    layers = sorted({k for m in names for k in modes[m]["exit_layer"]["histogram"]},
                    key=lambda k: int(k) if k != "None" else 10**9)
    for k in layers:
        hist.add_row(k, *(str(modes[m]["exit_layer"]["histogram"].get(k, 0)) for m in names))
    console.print(hist)
    for line in savings_lines(result):
        console.print(line)
    for note in result.get("notes", []):
        console.print(f"note: {note}")


def savings_lines(result: Mapping[str, Any]) -> list[str]:
    """The savings of one bench result in words (mean and up to; against the paper's; the oracle)."""
    s, out = result["savings"], []
    if "vs_no_exit" not in s and "early_exit_vs_no_exit" in s and s["early_exit_vs_no_exit"]["mean"] is not None:
        a = s["early_exit_vs_no_exit"]
        out.append(f"energy savings of early exit: {a['mean']:.2f}x vs no early exit (up to {a['up_to']:.2f}x on one "
                   "sentence)")
    if "vs_no_exit" in s and "vs_early_exit" in s:
        a, b = s["vs_no_exit"], s["vs_early_exit"]
        out.append(f"energy savings of ee+dvfs: {a['mean']:.2f}x vs no early exit (up to {a['up_to']:.2f}x on one "
                   f"sentence; paper: 7x), {b['mean']:.2f}x vs early exit without DVFS (up to {b['up_to']:.2f}x; "
                   "paper: 2.5x)")
    if "vs_oracle" in s and s["vs_oracle"]["mean"] is not None:
        o = s["vs_oracle"]
        out.append(f"ee+dvfs needs {o['mean']:.3f}x the oracle's energy (worst sentence {o['max']:.3f}x)")
    pred = result.get("predictions")
    if pred:
        how = (f"{pred['low']} recovered past the prediction" if pred["policy"] == "recover" else
               f"{pred['forced_before_natural']} forced to exit before their natural exit (by "
               f"{pred['layers_cut_by_forcing']:.2f} layers on average)")
        out.append(f"predictor ({pred['policy']} policy): {pred['predicted']} predictions, {pred['exact']} exact, "
                   f"{pred['low']} low, {pred['high']} high; {how}")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/packaging/test_cli_flags.py reads it)."""
    p = argparse.ArgumentParser(prog="edgebert-bench", description=__doc__.split("\n")[0])
    p.add_argument("program", help="program to run (.ebin; a multi-task program needs --task or --single), or an "
                   "ONNX model with exit heads: compiled per threshold, exit policy and latency target (a sweep)")
    src = p.add_mutually_exclusive_group(required=True)
    add_inputs(src, "a leading sentence axis (full runs; an extra `labels` array gives the accuracy); with "
                    "--single: NAME=NPZ, once per task", metavar="NPZ|NAME=NPZ", action="append")
    add_entropy_trace(src, "a timing-only replay through the real program")
    add_task(p, "bench in the three modes (its block resident)")
    p.add_argument("--single", action="append", metavar="NAME=EBIN",
                   help="multi-task program: compare with this task's single-task binary (repeat per task)")
    p.add_argument("--stream", choices=(*STREAM_KINDS, "both"),
                   help="with --single: the mixed stream's order, round-robin (a task switch before every "
                        "sentence; default), blocked (all sentences of one task, then the next) or both")
    from edgebert.compiler.options import early_exit_flag

    p.add_argument("--latency-target", action="append", **early_exit_flag(
        "--latency-target", "or `1.5x`: times the all-fastest latency of every layer (default: the .ebin's plan); a "
        "sweep takes several (repeat or comma-separate)"))
    p.add_argument("--limit", type=int, metavar="N", help="only the first N sentences (per task with --single)")
    add_json(p, "the results (per mode: latency percentiles, energy, exit layers, accuracy; savings; per sentence)")
    add_csv(p, "one row per sentence and mode (latency, energy, exit layer, cycles)")
    add_plot(p, "latency CDFs against the target, energy per sentence and exit layers per mode (a sweep: energy "
                "against the target per threshold)")
    add_hw(p, "the config the program was compiled for")
    p.add_argument("--no-path-cache", action="store_true",
                   help="emulate every sentence of an entropy replay (default: one emulation per control path, "
                        "identical numbers; docs/bench.md)")
    add_verbosity(p)
    add_version(p)
    add_sweep_arguments(p)
    return p


def _load_program(path: str, hw_arg: str | None) -> tuple[Any, Any]:
    program, hw, warning = load_program(path, hw_arg)
    if warning:
        print(f"edgebert-bench: warning: {warning}", file=sys.stderr)
    return program, hw


def _parse_pairs(specs: Sequence[str], what: str) -> dict[str, str]:
    """['NAME=PATH', ...] -> {NAME: PATH}; a malformed or repeated NAME is an EdgebertError naming the option."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise EdgebertError(f"{what} expects NAME=PATH, got '{spec}'")
        if name in out:
            raise EdgebertError(f"{what}: task '{name}' given twice")
        out[name] = path
    return out


def _run_compare(args: argparse.Namespace, multi: Any, hw: Any) -> int:
    """--single: single-task binaries vs the multi-task one (multitask_compare.compare), markdown tables."""
    tasks = task_names(multi)
    if not tasks:
        raise EdgebertError(f"--single: {args.program} is not a multi-task program (no multitask metadata); "
                            "bench it without --single")
    for opt, value in (("--task", args.task), ("--entropy-trace", args.entropy_trace), ("--plot", args.plot),
                       ("--csv", args.csv), ("--latency-target", args.latency_target)):
        if value:
            raise EdgebertError(f"{opt} does not apply to the comparison with single-task binaries (--single)")
    single_paths = _parse_pairs(args.single, "--single")
    input_paths = _parse_pairs(args.inputs, "--inputs")
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
        p, p_hw = _load_program(single_paths[t], args.hw)
        if p_hw.fingerprint != hw.fingerprint:
            raise EdgebertError(f"--single {t}={single_paths[t]}: compiled for hardware config {p_hw.name}, "
                                f"{args.program} for {hw.name}: compare programs of one config, or pass --hw")
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
        write_json(args.json, result, indent=1)
    if not args.quiet:
        print(f"edgebert-bench: {len(order)} single-task binaries vs {args.program} on {hw.name}, "
              + ", ".join(f"{t} {n}" for t, n in counts.items()) + " sentences")
        print(format_markdown(result))
        for kind, st in result["streams"].items():
            print(f"{kind} stream: {st['sentences']} sentences, {st['switches']} task switches (the first load "
                  f"included), {st['bytes_loaded']:,} B of task blocks loaded")
    return 0


def _run(args: argparse.Namespace) -> int:
    if is_model(args.program):
        return run_sweep_cli(args)
    check_no_sweep_arguments(args)
    program, hw = _load_program(args.program, args.hw)
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
    if args.inputs and len(args.inputs) > 1:
        raise EdgebertError("--inputs: give one .npz (NAME=NPZ, once per task, is for --single)")
    targets = parse_targets(args.latency_target) if args.latency_target else []
    if len(targets) > 1:
        raise EdgebertError("several --latency-target values need the ONNX model (the DVFS plan is compiled into the "
                            "program, one compile per target): give the .onnx instead of the .ebin")
    from edgebert.api import bench

    with terminal_progress(args.quiet) as progress:
        result = bench(program, inputs=args.inputs[0] if args.inputs else None, entropies=args.entropy_trace,
                       latency_target=targets[0] if targets else None, hw=hw, task=args.task, limit=args.limit,
                       path_cache=not args.no_path_cache, progress=progress)
    result["program"] = str(args.program)
    if args.json:
        result.save_json(args.json)
    if args.csv:
        result.save_csv(args.csv)
    if args.plot:
        result.plot(args.plot)
    if not args.quiet:
        print_table(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `edgebert-bench`; returns the exit code (2 on any edgebert error)."""
    args = build_parser().parse_args(argv)

    def bench() -> int:
        from edgebert.isa.safe_io import refuse_overwrite

        inputs = [args.program, args.entropy_trace, args.hw, *(spec.partition("=")[2] or spec for spec in args.inputs or []),
                  *(spec.partition("=")[2] for spec in args.single or [])]
        for output in (args.json, args.csv, args.plot):
            refuse_overwrite(inputs, output)
        return _run(args)

    return run_cli("edgebert-bench", bench)
