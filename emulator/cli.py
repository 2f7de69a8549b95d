"""edgebert-emu: run an `.ebin` program on the emulated accelerator and report its costs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.emulator.run_files import load_inputs, load_sentence_inputs
from edgebert.isa.cli_common import (
    PLOT_SUFFIXES,
    add_csv,
    add_deprecated_alias,
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


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/packaging/test_cli_flags.py reads it)."""
    p = argparse.ArgumentParser(prog="edgebert-emu", description=__doc__)
    p.add_argument("program", help="program to run (.ebin, or .s assembly)")
    add_inputs(p, "one sentence, or with --row several stacked on axis 0")
    p.add_argument("--outputs", metavar="NPZ", help="write the outputs here (.npz keyed by output names)")
    add_json(p, "the run's report (cycles, time, energy per component, per op class and per layer, roofline, "
                "traffic, DVFS timeline; written even when the program traps)")
    add_deprecated_alias(p, "--report", "--json", "json", "edgebert-emu", metavar="FILE")
    add_csv(p, "the per-op-class and per-layer breakdown (cycles, bytes, energy per component; one row each)")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace-event JSON of the units' timelines")
    add_plot(p, "the energy per component, per op class (with the roofline bound each hits) and per layer")
    add_hw(p, "the config the program was compiled for")
    p.add_argument("--max-cycles", type=int, default=None, metavar="N",
                   help="trap when the run exceeds N cycles (default 1e9)")
    p.add_argument("--max-instructions", type=int, default=None, metavar="N",
                   help="trap after N executed instructions (default: 1e6 + 100 per instruction of the program; "
                   "0: no limit)")
    add_entropy_trace(p, "with --row: the sentence to replay (needs --timing-only, or --inputs for full numerics)")
    p.add_argument("--row", type=int, metavar="K", help="the sentence to run: 0-based line of --entropy-trace, or "
                   "index on axis 0 of an --inputs .npz that stacks several sentences")
    p.add_argument("--check-uninit", action="store_true", help="trap on a read of memory never written")
    p.add_argument("--race-trap", action="store_true", help="treat a detected race as an error (exit code 2)")
    p.add_argument("--timing-only", action="store_true",
                   help="skip data-path numerics, same costs (needs --entropy-trace; see docs/emulator.md)")
    p.add_argument("--no-early-exit", action="store_true", help="never take bexit/bexitr/bexitp (run every layer)")
    p.add_argument("--no-dvfs", action="store_true", help="ignore dvfs/dvfsr (stay at the initial point)")
    add_task(p, "run (docs/multitask.md)")
    p.add_argument("--resident-task", metavar="NAME",
                   help="multi-task program: the task whose weights the SRAM task region already holds")
    add_verbosity(p, "the per-layer table and every output's values")
    add_version(p)
    return p


PLOT_FORMATS = PLOT_SUFFIXES


def _warn(msg: str) -> None:
    print(f"edgebert-emu: warning: {msg}", file=sys.stderr)


def _check_paths(args: argparse.Namespace) -> None:
    """Before running: no output overwrites an input or another output, and each can be written."""
    from edgebert.isa.safe_io import refuse_overwrite

    inputs = [args.program, args.inputs, args.hw, args.entropy_trace]
    seen: list[str] = []
    for flag in ("outputs", "json", "csv", "trace", "plot"):
        path = getattr(args, flag)
        if path is None:
            continue
        refuse_overwrite(inputs + seen, path)
        seen.append(path)
        target = Path(path)
        if target.is_dir():
            raise EdgebertError(f"--{flag} {path}: is a directory (give a file path)")
        if not target.parent.is_dir():
            raise EdgebertError(f"--{flag} {path}: folder {target.parent} does not exist")
    if args.plot is not None and Path(args.plot).suffix.lower() not in PLOT_FORMATS:
        raise EdgebertError(f"--plot {args.plot}: unknown image format (use {', '.join(PLOT_FORMATS)})")


def _summary(report: dict[str, Any], outputs: dict[str, np.ndarray], verbose: bool) -> None:
    from rich.console import Console

    from edgebert.emulator.report_view import summary_tables

    console = Console()
    for table in summary_tables(report, layers=verbose or len(report.get("breakdown", {}).get("layers", [])) <= 16):
        console.print(table)
    mix = ", ".join(f"{k} {v}" for k, v in report["instruction_mix"].items())
    console.print(f"instruction mix: {mix}")
    for name, value in outputs.items():
        console.print(f"output {name}: shape {tuple(value.shape)} {value.dtype}"
                      + (f" = {np.array2string(value, precision=5, threshold=64)}" if verbose else ""))


def _sentence_inputs(args: argparse.Namespace, program: Any) -> dict[str, np.ndarray]:
    """The run's inputs: the whole --inputs file, or with --row (and no entropy trace) one sentence of an .npz that
    stacks several on axis 0 (edgebert-bench's format)."""
    if args.row is None or args.entropy_trace is not None:
        inputs = load_inputs(args.inputs) if args.inputs is not None else {}
        for entry in program.metadata.get("inputs", []):
            value, shape = inputs.get(entry["name"]), tuple(entry["shape"])
            if isinstance(value, np.ndarray) and shape and shape[0] == 1 and value.ndim == len(shape) \
                    and value.shape[0] > 1 and value.shape[1:] == shape[1:]:
                raise EdgebertError(f"{args.inputs}: input '{entry['name']}' holds {value.shape[0]} sentences "
                                    f"{value.shape}; the program runs one {shape}: pick it with --row K")
        return inputs
    sentences = load_sentence_inputs(args.inputs, program.metadata.get("inputs", []))
    if not 0 <= args.row < len(sentences):
        raise EdgebertError(f"--row {args.row}: {args.inputs} holds {len(sentences)} sentences (rows 0..{len(sentences) - 1})")
    return sentences[args.row]


def _run(args: argparse.Namespace) -> int:
    from edgebert.api import emulate
    from edgebert.emulator.run_files import load_program
    from edgebert.isa.traces import read_entropy_row

    _check_paths(args)
    if args.row is not None and args.row < 0:
        raise EdgebertError(f"--row {args.row}: rows are numbered from 0")
    if args.max_instructions is not None and args.max_instructions < 0:
        raise EdgebertError(f"--max-instructions {args.max_instructions}: give a count >= 0 (0: no limit)")
    program, hw, warning = load_program(args.program, args.hw)
    if warning:
        _warn(warning)
    if args.entropy_trace is not None and args.row is None:
        raise EdgebertError("--entropy-trace needs --row (the sentence to replay)")
    if args.row is not None and args.entropy_trace is None and args.inputs is None:
        raise EdgebertError("--row picks a sentence of --entropy-trace or of --inputs; give one of them")
    entropies = read_entropy_row(args.entropy_trace, args.row) if args.entropy_trace else None
    inputs = _sentence_inputs(args, program)
    result = emulate(program, inputs, hw=hw, entropies=entropies, timing_only=args.timing_only,
                     early_exit=not args.no_early_exit, dvfs=not args.no_dvfs, task=args.task,
                     resident_task=args.resident_task, trace=bool(args.trace), check_uninitialized=args.check_uninit,
                     max_cycles=args.max_cycles, raise_on_trap=False,
                     max_instructions="auto" if args.max_instructions is None else args.max_instructions or None)
    report = result.report
    report["program"] = args.program
    if args.json:
        report.save_json(args.json)
    if args.csv:
        report.save_csv(args.csv)
    if args.trace:
        result.save_trace(args.trace)
    if args.plot:
        report.plot(args.plot)
    if result.trap is not None:
        raise result.trap
    if args.outputs:
        result.save_outputs(args.outputs)
    if not args.quiet:
        _summary(report, result.outputs, args.verbose)
        if "multitask" in report:
            from edgebert.emulator.multitask import summary_lines

            for line in summary_lines(report):
                print(line)
    if report["race_count"]:
        first = report["races"][0]
        msg = (
            f"{report['race_count']} unguarded race(s); first: pc {first['pc']} ({first['instruction']}) "
            f"{first['access']}s {first['space']} that pc {first['other_pc']} ({first['other_instruction']}) "
            f"{first['other_access']}s concurrently"
        )
        if args.race_trap:
            raise EdgebertError(msg)
        _warn(msg)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `edgebert-emu`; returns the exit code (2 on any edgebert error or trap)."""
    args = build_parser().parse_args(argv)
    return run_cli("edgebert-emu", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
