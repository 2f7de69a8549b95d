"""edgebertc: compile an ONNX model to an `.ebin` program (or assembly with -S)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from edgebert.compiler.options import CompileOptions, EarlyExitOptions
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.units import parse_duration


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgebertc", description="Compile an ONNX ALBERT model for the edgebert accelerator."
    )
    p.add_argument("model", nargs="*",
                   help="ONNX model (external weight files next to it are read too); several task models of one "
                   "backbone compile into one multi-task program (docs/multitask.md)")
    mt = p.add_argument_group("multi-task (docs/multitask.md)")
    mt.add_argument("--task", action="append", default=[], metavar="NAME=PATH", help="a task model under a name")
    mt.add_argument("--task-threshold", action="append", default=[], metavar="NAME=T",
                    help="exit entropy threshold of one task (default: its model's metadata)")
    mt.add_argument("--task-calibration", action="append", default=[], metavar="NAME=FILE",
                    help="with --latency-target: one task's calibration entropies (its own DVFS lookup table)")
    mt.add_argument("--task-placement", choices=("auto", "sram", "envm"), default="auto",
                    help="task weights: SRAM region loaded at task switch (auto: when it fits) or read from eNVM")
    p.add_argument("-o", "--output", help="output file (default: the model name with .ebin, or .s with -S)")
    p.add_argument("--seq-len", type=int, default=None, help="fix the sequence length of [batch, seq] inputs")
    p.add_argument("--hw", default=None, metavar="NAME|FILE",
                   help="hardware config: a bundled name (ideal-256mac, edgebert-cmod) or a TOML file (default: "
                   "ideal-256mac)")
    p.add_argument("-S", dest="assembly", action="store_true", help="write assembly instead of a binary")
    p.add_argument("--dump-ir", metavar="DIR", default=None, help="write the IR after each pass into DIR")
    p.add_argument("-v", "--verbose", action="store_true", help="print each pass's wall time")
    ee = p.add_argument_group("early exit and latency-aware DVFS (models with exit heads; docs/compiler.md)")
    ee.add_argument("--early-exit", action="store_true",
                    help="compile the exit heads as entropy + early-exit branches (implied by the options below)")
    ee.add_argument("--threshold", type=float, default=None,
                    help="exit entropy threshold (default: the model's edgebert.entropy_threshold)")
    ee.add_argument("--latency-target", metavar="DURATION", default=None,
                    help="per-sentence latency target for DVFS, e.g. 50ms, 0.05s, 50000us")
    ee.add_argument("--predictor-table", metavar="CSV", default=None,
                    help="entropy lookup table (EdgeBERT's sst2_lookup_table.csv format)")
    ee.add_argument("--calibration-entropies", metavar="FILE", default=None,
                    help="per-sentence, per-layer entropies (sst2_eval_entropy.txt format) to build the table from")
    ee.add_argument("--dvfs-margin", type=float, default=0.0, help="fraction of the target the plan keeps in reserve")
    return p


def early_exit_options(args: argparse.Namespace) -> EarlyExitOptions | None:
    """The `EarlyExitOptions` the flags ask for, or None (no early exit)."""
    wanted = (args.early_exit or args.threshold is not None or args.latency_target is not None
              or args.predictor_table is not None or args.calibration_entropies is not None)
    if not wanted:
        return None
    target = parse_duration(args.latency_target) if args.latency_target is not None else None
    for path in (args.predictor_table, args.calibration_entropies):
        if path is not None and not Path(path).is_file():
            raise EdgebertError(f"{path}: no such file")
    return EarlyExitOptions(args.threshold, target, args.predictor_table, args.calibration_entropies, args.dvfs_margin)


def _pairs(specs: list[str], flag: str, what: str) -> list[tuple[str, str]]:
    """NAME=VALUE flags as (name, value) pairs."""
    out = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value:
            raise EdgebertError(f"{flag} expects NAME={what}, got '{spec}'")
        out.append((name, value))
    return out


def compile_multitask_cli(args: argparse.Namespace, hw: HardwareConfig):
    """`edgebertc a.onnx b.onnx [--task NAME=PATH] ...`: the multi-task compile the flags ask for."""
    from edgebert.compiler.multitask import compile_multitask, load_task

    models: list[str] = list(args.model)
    names: list[str | None] = [None] * len(models)
    for name, path in _pairs(args.task, "--task", "PATH"):
        models.append(path)
        names.append(name)
    if not models:
        raise EdgebertError("no model given")
    for m in models:
        if not Path(m).is_file():
            raise EdgebertError(f"{m}: no such file")
    if args.dump_ir is not None:
        raise EdgebertError("multi-task programs do not support --dump-ir")
    dvfs = None
    if args.latency_target is not None:
        base = early_exit_options(args)
        calib = {}
        for name, path in _pairs(args.task_calibration, "--task-calibration", "FILE"):
            if not Path(path).is_file():
                raise EdgebertError(f"--task-calibration expects NAME=FILE (an existing file), got '{name}={path}'")
            calib[name] = path
        all_names = [n or load_task(m).name for m, n in zip(models, names, strict=True)]
        dvfs = {n: dataclasses.replace(base, calibration_entropies=calib[n], predictor_table=None)
                if n in calib else base for n in all_names}
    elif args.task_calibration:
        raise EdgebertError("--task-calibration needs --latency-target")
    thresholds = {}
    for name, value in _pairs(args.task_threshold, "--task-threshold", "T"):
        try:
            thresholds[name] = float(value)
        except ValueError:
            raise EdgebertError(f"--task-threshold expects NAME=T, got '{name}={value}'") from None
    if args.threshold is not None:
        thresholds = {**{t: args.threshold for t in names if t}, **thresholds, "*": args.threshold}
    return compile_multitask(models, hw, names=names, thresholds=thresholds, placement=args.task_placement,
                             seq_len=args.seq_len, dvfs=dvfs)


def memory_lines(result: object) -> list[str]:
    """-v: the memory-hierarchy plan (compiler/hierarchy/plan_report.py), or that every tensor stays in SRAM."""
    plan = getattr(result, "memory_plan", None)
    if plan is None:
        return ["memory plan: every tensor in SRAM"] if hasattr(result, "memory_plan") else []
    from edgebert.compiler.hierarchy.plan_report import format_plan

    return format_plan(plan, result.tile_program)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    timings: dict[str, float] = {}
    try:
        from edgebert.compiler.pipeline import compile_model, format_timings
        from edgebert.isa.hardware import load_config

        hw = load_config(args.hw)
        if args.seq_len is not None and args.seq_len <= 0:
            raise EdgebertError(f"--seq-len must be positive, got {args.seq_len}")
        if len(args.model) + len(args.task) != 1:
            result = compile_multitask_cli(args, hw)
            for note in result.notes:
                print(f"edgebertc: note: {note}", file=sys.stderr)
            source = str(Path((args.model or [args.task[0].partition("=")[2]])[0]).with_name("multitask.onnx"))
        else:
            source = args.model[0] if args.model else args.task[0].partition("=")[2]
            if not Path(source).is_file():
                raise EdgebertError(f"{source}: no such file")
            options = CompileOptions(args.seq_len, early_exit=early_exit_options(args),
                                     dump_dir=Path(args.dump_ir) if args.dump_ir is not None else None)
            result = compile_model(source, options, hw, timings)
        late = result.program.metadata.get("dvfs_infeasible_exits")
        if late:
            print(f"edgebertc: warning: the latency target is below the all-fastest latency of sentences exiting "
                  f"after layer {late[0]} or later (layers {late[0]}..{late[-1]}): those will miss it",
                  file=sys.stderr)
        out = args.output or str(Path(source).with_suffix(".s" if args.assembly else ".ebin"))
        if args.assembly:
            from edgebert.isa.disassembler import disassemble

            if out.endswith(".ebin"):
                print(f"edgebertc: warning: -S writes assembly text into {out}", file=sys.stderr)

            Path(out).write_text(disassemble(result.program))
        else:
            from edgebert.isa.ebin import save_ebin

            save_ebin(result.program, out)
    except EdgebertError as exc:
        print(f"edgebertc: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"edgebertc: error: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        for line in format_timings(timings):
            print(line, file=sys.stderr)
        print(
            f"{len(result.program.code)} instructions, SRAM peak {result.sram_peak_bytes} bytes, "
            f"{result.token_pairs} token pairs -> {out}",
            file=sys.stderr,
        )
        for line in memory_lines(result):
            print(line, file=sys.stderr)
        if "early_exit" in result.program.metadata:
            print(f"early exit: {result.program.metadata['early_exit'].get('layout')}", file=sys.stderr)
        for line in result.program.metadata.get("dvfs_plan", []):
            print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
