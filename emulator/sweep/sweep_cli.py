"""edgebert-sweep: evaluate a design space (hardware x compiler x run parameters over workloads) on Ray.

    edgebert-sweep SPEC.toml -o DIR [--address ray://HOST:10001 | auto] [--workers N] [--resume [--retry-errors]]
                   [--json FILE] [-q]

Writes DIR/results.parquet, DIR/results.csv (one row per point), DIR/pareto.png, DIR/sweep.json; DIR/results.jsonl
is the journal rows are appended to as points finish (`--resume` runs only the points it lacks) and DIR/cache the
compiled programs and built models. docs/sweep.md describes the spec and the columns.
"""

from __future__ import annotations

import argparse
import sys

from edgebert.emulator.run_files import write_json
from edgebert.isa.cli_common import add_json, add_verbosity, add_version
from edgebert.isa.errors import run_cli
from edgebert.isa.progress import terminal_progress


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/packaging/test_cli_flags.py reads it)."""
    p = argparse.ArgumentParser(prog="edgebert-sweep", description=__doc__.split("\n")[0])
    p.add_argument("spec", help="sweep spec (TOML; docs/sweep.md)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="results directory")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to run on (ray://HOST:10001, or auto: the cluster this node belongs to); "
                        "default: a local Ray on this machine")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="points evaluated at once (Ray actors)")
    p.add_argument("--resume", action="store_true", help="continue DIR: evaluate only the points it has no row for")
    p.add_argument("--retry-errors", action="store_true",
                   help="with --resume: also evaluate again the points whose row is an error (e.g. a worker killed "
                        "when the machine ran out of memory)")
    add_json(p, "the summary (points by status, evaluated now, compiled, wall time, the output folder)")
    add_verbosity(p)
    add_version(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from edgebert.api import sweep as run_sweep
    from edgebert.emulator.sweep.spec import load_spec

    spec = load_spec(args.spec)
    try:
        with terminal_progress(args.quiet) as progress:
            summary = run_sweep(spec, args.output, workers=args.workers, address=args.address, resume=args.resume,
                                retry_errors=args.retry_errors, progress=progress)
    except KeyboardInterrupt:
        print(f"edgebert-sweep: interrupted; the finished points are in {args.output} (--resume continues)",
              file=sys.stderr)
        return 130
    c = summary.counts
    if args.json:
        write_json(args.json, {"output": str(args.output), "points": len(summary.rows), "counts": c,
                               "evaluated": summary.evaluated, "compiled": summary.compiled,
                               "wall_seconds": summary.wall_s, "complete": summary.complete})
    if not args.quiet:
        print(f"edgebert-sweep: {len(summary.rows)} points ({c.get('ok', 0)} ok, {c.get('infeasible', 0)} infeasible, "
              f"{c.get('error', 0)} errors; {summary.evaluated} evaluated now, {summary.compiled} compiled) in "
              f"{summary.wall_s:.0f} s -> {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `edgebert-sweep`; returns the exit code (2 on any edgebert error, 130 on an interrupt)."""
    args = build_parser().parse_args(argv)
    try:
        return run_cli("edgebert-sweep", lambda: _run(args))
    except OSError as exc:
        print(f"edgebert-sweep: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
