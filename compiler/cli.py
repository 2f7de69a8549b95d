"""edgebertc: compile an ONNX model to an `.ebin` program (or assembly with -S)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from edgebert.compiler.compile_summary import compile_summary, summary_line
from edgebert.compiler.options import (
    DVFS_PLANNERS,
    EXIT_POLICIES,
    LAYER1_POINTS,
    CompileOptions,
    EarlyExitOptions,
    early_exit_flag,
)
from edgebert.isa.cli_common import add_hw, add_json, add_verbosity, add_version
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import DEFAULT_CONFIG, HardwareConfig
from edgebert.isa.progress import terminal_progress
from edgebert.isa.table import EXIT_COMPARES
from edgebert.isa.units import parse_duration


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgebertc", description="Compile an ONNX ALBERT model for the edgebert accelerator."
    )
    p.add_argument("model", nargs="*", metavar="MODEL|NAME=MODEL",
                   help="ONNX model (external weight files next to it are read too); several task models of one "
                   "backbone compile into one multi-task program (docs/multitask.md), NAME=MODEL naming a task "
                   "(default: the model's task metadata)")
    mt = p.add_argument_group("multi-task (docs/multitask.md)")
    mt.add_argument("--task", action="append", default=[], metavar="NAME=MODEL",
                    help="deprecated spelling of a NAME=MODEL model argument")
    mt.add_argument("--task-threshold", action="append", default=[], metavar="NAME=T",
                    help="exit entropy threshold of one task (default: its model's metadata)")
    mt.add_argument("--task-calibration", action="append", default=[], metavar="NAME=FILE",
                    help="with --latency-target: one task's calibration entropies (its own DVFS lookup table)")
    mt.add_argument("--task-placement", choices=("auto", "sram", "envm"), default="auto",
                    help="task weights: SRAM region loaded at task switch (auto: when it fits) or read from eNVM")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (default: the model name with .ebin, or .s with -S)")
    p.add_argument("--seq-len", type=int, default=None, metavar="N",
                   help="fix the sequence length of [batch, seq] inputs (dynamic axes)")
    add_hw(p, DEFAULT_CONFIG)
    p.add_argument("-S", dest="assembly", action="store_true", help="write assembly instead of a binary")
    p.add_argument("--dump-ir", metavar="DIR", default=None, help="write the IR after each pass into DIR")
    add_json(p, "the compile summary (instructions, bytes per memory level, SRAM peak, each stage's wall time)")
    add_verbosity(p, "each stage's wall time, the memory plan, the early-exit layout and the DVFS plan")
    add_version(p)
    ee = p.add_argument_group("early exit and latency-aware DVFS (models with exit heads; docs/compiler.md)")
    ee.add_argument("--early-exit", action="store_true",
                    help="compile the exit heads as entropy + early-exit branches (implied by the options below)")
    ee.add_argument("--threshold", type=float, default=None, **early_exit_flag("--threshold", "default: the model's edgebert.entropy_threshold"))
    ee.add_argument("--latency-target", default=None, **early_exit_flag("--latency-target"))
    ee.add_argument("--predictor-table", default=None, **early_exit_flag("--predictor-table"))
    ee.add_argument("--calibration-entropies", default=None, **early_exit_flag("--calibration-entropies"))
    ee.add_argument("--dvfs-margin", type=float, default=0.0, **early_exit_flag("--dvfs-margin"))
    ee.add_argument("--exit-policy", choices=EXIT_POLICIES, default="recover",
                    **early_exit_flag("--exit-policy", "forced needs a predictor"))
    ee.add_argument("--exit-compare", choices=EXIT_COMPARES, default="lt", **early_exit_flag("--exit-compare"))
    ee.add_argument("--dvfs-planner", choices=DVFS_PLANNERS, default="table", **early_exit_flag("--dvfs-planner"))
    ee.add_argument("--layer1-point", choices=LAYER1_POINTS, default="planned", **early_exit_flag("--layer1-point"))
    ee.add_argument("--dvfs-bins-scale", type=float, default=None, **early_exit_flag("--dvfs-bins-scale"))
    return p


def early_exit_options(args: argparse.Namespace) -> EarlyExitOptions | None:
    """The `EarlyExitOptions` the flags ask for, or None (no early exit)."""
    wanted = (args.early_exit or args.threshold is not None or args.latency_target is not None
              or args.predictor_table is not None or args.calibration_entropies is not None
              or args.exit_policy != "recover" or args.exit_compare != "lt")
    if not wanted:
        return None
    target = parse_duration(args.latency_target) if args.latency_target is not None else None
    for path in (args.predictor_table, args.calibration_entropies):
        if path is not None and not Path(path).is_file():
            raise EdgebertError(f"{path}: no such file")
    return EarlyExitOptions(args.threshold, target, args.predictor_table, args.calibration_entropies, args.dvfs_margin,
                            args.exit_policy, args.exit_compare, args.dvfs_planner, args.layer1_point,
                            args.dvfs_bins_scale)


def _pairs(specs: list[str], flag: str, what: str) -> list[tuple[str, str]]:
    """NAME=VALUE flags as (name, value) pairs."""
    out = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value:
            raise EdgebertError(f"{flag} expects NAME={what}, got '{spec}'")
        out.append((name, value))
    return out


def named_models(args: argparse.Namespace) -> None:
    """NAME=MODEL model arguments (and the deprecated `--task NAME=MODEL`) become named task models (`args.task`)."""
    if args.task:
        print("edgebertc: warning: --task NAME=MODEL is deprecated: give NAME=MODEL as a model argument (--task NAME "
              "selects a task in edgebert-emu and edgebert-bench)", file=sys.stderr)
    plain = []
    for m in args.model:
        name, sep, path = m.partition("=")
        if sep and name and path and not Path(m).exists():
            args.task.append(m)
        else:
            plain.append(m)
    args.model = plain


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
    for flag, value, default in (("--exit-policy", args.exit_policy, "recover"), ("--exit-compare", args.exit_compare,
                                                                                  "lt"),
                                 ("--dvfs-planner", args.dvfs_planner, "table"),
                                 ("--dvfs-bins-scale", args.dvfs_bins_scale, None)):
        if value != default:
            raise EdgebertError(f"{flag} is not supported for multi-task programs yet (they use the defaults)")
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
    named_models(args)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        from edgebert.compiler.pipeline import compile_model, format_timings
        from edgebert.isa.hardware import load_config
        from edgebert.isa.safe_io import refuse_overwrite, write_atomic

        inputs = [*args.model, *(t.partition("=")[2] for t in args.task), args.hw, args.predictor_table,
                  args.calibration_entropies, *(c.partition("=")[2] for c in args.task_calibration)]
        refuse_overwrite(inputs, args.output)  # before any work: `-o model.onnx` must not destroy the model
        refuse_overwrite([*inputs, args.output], args.json)
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
            with terminal_progress(args.quiet) as progress, progress.task(f"compiling {source}") as bar:
                result = compile_model(source, options, hw, timings, on_stage=lambda stage: bar.update(
                    description=f"compiling {source}: {stage}"))
        widened = result.program.metadata.get("source_dtype")
        if widened:
            print(f"edgebertc: note: the model is {widened}; the accelerator computes it in "
                  f"{result.program.metadata['computed_in']} (every {widened} value is exact in it; outputs are "
                  f"{result.program.metadata['computed_in']})", file=sys.stderr)
        late = result.program.metadata.get("dvfs_infeasible_exits")
        if late:
            print(f"edgebertc: warning: the latency target is below the all-fastest latency of sentences exiting "
                  f"after layer {late[0]} or later (layers {late[0]}..{late[-1]}): those will miss it",
                  file=sys.stderr)
        out = args.output or str(Path(source).with_suffix(".s" if args.assembly else ".ebin"))
        refuse_overwrite(inputs, out)
        if args.assembly:
            from edgebert.isa.disassembler import disassemble

            if out.endswith(".ebin"):
                print(f"edgebertc: warning: -S writes assembly text into {out}", file=sys.stderr)

            write_atomic(out, disassemble(result.program))
        else:
            from edgebert.isa.ebin import save_ebin

            save_ebin(result.program, out)
        summary = compile_summary(result.program, out, hw, time.perf_counter() - started, timings)
        if args.json:
            from edgebert.emulator.run_files import write_json

            write_json(args.json, summary)
    except EdgebertError as exc:
        print(f"edgebertc: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"edgebertc: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(summary_line(summary))
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
