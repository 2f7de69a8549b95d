"""edgebert-emu: run an `.ebin` program on the emulated accelerator and report its costs."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.emulator.run_files import load_inputs, load_program, load_sentence_inputs, write_json
from edgebert.isa.errors import EdgebertError, run_cli


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebert-emu", description=__doc__)
    p.add_argument("program", help="program to run (.ebin)")
    p.add_argument("--inputs", help="inputs (.npz keyed by the program's input names)")
    p.add_argument("--outputs", help="write the outputs here (.npz keyed by output names)")
    p.add_argument("--report", help="write the report here (JSON); written even when the program traps")
    p.add_argument("--trace", help="write a Chrome/Perfetto trace-event JSON of the units' timelines")
    p.add_argument("--plot", help="draw the energy breakdown to this image (png, svg, pdf)")
    p.add_argument("--hw", metavar="NAME|FILE", help="hardware config: a bundled name (edgebert-cmod, ideal-256mac) "
                   "or a TOML file (default: the config the program was compiled for)")
    p.add_argument("--max-cycles", type=int, default=None, help="trap when the run exceeds N cycles (default 1e9)")
    p.add_argument("--max-instructions", type=int, default=None, metavar="N",
                   help="trap after N executed instructions (default: 1e6 + 100 per instruction of the program; "
                   "0: no limit)")
    p.add_argument("--entropy-trace", help="recorded entropies, one sentence per line (EdgeBERT's format)")
    p.add_argument("--row", type=int, help="the sentence to run: 0-based line of --entropy-trace, or index on axis 0 "
                   "of an --inputs .npz that stacks several sentences")
    p.add_argument("--check-uninit", action="store_true", help="trap on a read of memory never written")
    p.add_argument("--race-trap", action="store_true", help="treat a detected race as an error (exit code 2)")
    p.add_argument("--timing-only", action="store_true",
                   help="skip data-path numerics, same costs (needs --entropy-trace; see docs/emulator.md)")
    p.add_argument("--no-early-exit", action="store_true", help="never take bexit/bexitr/bexitp (run every layer)")
    p.add_argument("--no-dvfs", action="store_true", help="ignore dvfs/dvfsr (stay at the initial point)")
    p.add_argument("--task", help="multi-task program: the task to run (docs/multitask.md)")
    p.add_argument("--resident-task", metavar="NAME",
                   help="multi-task program: the task whose weights the SRAM task region already holds")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on the terminal")
    return p


def _warn(msg: str) -> None:
    print(f"edgebert-emu: warning: {msg}", file=sys.stderr)


PLOT_FORMATS = (".png", ".svg", ".pdf")


def _check_paths(args: argparse.Namespace) -> None:
    """Before running: no output overwrites an input or another output, and each can be written."""
    from edgebert.isa.safe_io import refuse_overwrite

    inputs = [args.program, args.inputs, args.hw, args.entropy_trace]
    seen: list[str] = []
    for flag in ("outputs", "report", "trace", "plot"):
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


def _write_outputs(path: str, outputs: dict[str, np.ndarray]) -> None:
    """The outputs as an .npz at exactly `path` (numpy.savez would append .npz to another suffix)."""
    from edgebert.isa.safe_io import write_atomic

    buf = io.BytesIO()
    np.savez(buf, **outputs)
    write_atomic(path, buf.getvalue())


def _table(title: str, columns: tuple[str, ...], rows: Any) -> Any:
    """A rich table: the first column left-aligned (names), the others right-aligned (numbers)."""
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _summary(report: dict[str, Any], outputs: dict[str, np.ndarray]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    head = Table(title=f"edgebert-emu on {report['hw']}", show_header=False)
    head.add_row("instructions", f"{report['instructions']:,}")
    head.add_row("cycles", f"{report['cycles']:,}")
    head.add_row("time", f"{report['seconds'] * 1e6:,.3f} us")
    head.add_row("energy", f"{report['energy_j'] * 1e9:,.3f} nJ")
    head.add_row("MACs", f"{report['macs']:,}")
    head.add_row("exit layer", str(report["exit_layer"]))
    head.add_row("races", str(report["race_count"]))
    console.print(head)
    total = report["energy_j"] or 1.0
    console.print(_table("energy per component", ("component", "nJ", "%"), (
        (name, f"{joules * 1e9:,.3f}", f"{100 * joules / total:.1f}")
        for name, joules in report["energy_breakdown_j"].items() if joules)))
    console.print(_table("units", ("unit", "busy cycles", "utilization"), (
        (name, f"{u['busy_cycles']:,}", f"{100 * u['utilization']:.1f} %") for name, u in report["units"].items())))
    console.print(_table("traffic (bytes)", ("level", "read", "write"), (
        (level, f"{t['read']:,}", f"{t['write']:,}") for level, t in report["traffic_bytes"].items())))
    if len(report["dvfs"]) > 1:
        console.print(_table("DVFS timeline", ("point", "V", "MHz", "start (us)", "cycles", "energy (nJ)"), (
            (str(seg["point"]), f"{seg['volts']:.2f}", f"{seg['mhz']:.0f}", f"{seg['start_s'] * 1e6:.3f}",
             f"{seg['cycles']:,}", f"{seg['energy_j'] * 1e9:,.3f}") for seg in report["dvfs"])))
    mix = ", ".join(f"{k} {v}" for k, v in report["instruction_mix"].items())
    console.print(f"instruction mix: {mix}")
    for name, value in outputs.items():
        console.print(f"output {name}: shape {tuple(value.shape)} {value.dtype}")


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
    from edgebert.emulator.runner import AUTO, DEFAULT_MAX_CYCLES, run
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
    result = run(
        program,
        inputs,
        hw,
        max_cycles=args.max_cycles if args.max_cycles is not None else DEFAULT_MAX_CYCLES,
        max_instructions=AUTO if args.max_instructions is None else args.max_instructions or None,
        entropy_values=entropies,
        trace=bool(args.trace),
        check_uninitialized=args.check_uninit,
        raise_on_trap=False,
        timing_only=args.timing_only,
        disable_early_exit=args.no_early_exit,
        disable_dvfs=args.no_dvfs,
        task=args.task,
        resident_task=args.resident_task,
    )
    report = result.report
    if args.task is not None and result.trap is None:
        from edgebert.emulator.multitask import switch_cost

        report["task_switch"] = switch_cost(program, inputs, args.task, hw, args.resident_task)
    if args.report:
        write_json(args.report, report)
    if args.trace:
        from edgebert.emulator.trace import chrome_trace

        write_json(args.trace, chrome_trace(result.machine))
    if args.plot:
        from edgebert.emulator.plot import plot_energy

        plot_energy(report, args.plot)
    if result.trap is not None:
        raise result.trap
    if args.outputs:
        _write_outputs(args.outputs, result.outputs)
    if not args.quiet:
        _summary(report, result.outputs)
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
    args = _parser().parse_args(argv)
    return run_cli("edgebert-emu", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
