"""`edgebert-as`: assemble a `.s` file into a `.ebin` binary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebert.isa.assembler import assemble_file
from edgebert.isa.cli_common import add_verbosity, add_version
from edgebert.isa.ebin import save_ebin
from edgebert.isa.errors import FileAccessError, run_cli
from edgebert.isa.safe_io import refuse_overwrite


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/packaging/test_cli_flags.py reads it)."""
    parser = argparse.ArgumentParser(prog="edgebert-as", description="Assemble edgebert assembly into a .ebin file.")
    parser.add_argument("source", type=Path, help="assembly source (.s)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="output .ebin (default: the source path with suffix .ebin)")
    add_verbosity(parser)
    add_version(parser)
    return parser


def _assemble(args: argparse.Namespace) -> int:
    """Assemble, write the .ebin and (unless -q) print one summary line."""
    if args.output is None and not args.source.name:
        raise FileAccessError(f"'{args.source}': no file name to derive the output from (give -o)")
    output = args.output or args.source.with_suffix(".ebin")
    refuse_overwrite([args.source], output)
    program = assemble_file(args.source)
    save_ebin(program, output)
    if not args.quiet:
        print(f"edgebert-as: {output}: {len(program.code):,} instructions, "
              f"{sum(len(s.data) for s in program.segments):,} bytes of data")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Assemble `source` to `-o` (default: the source path with suffix .ebin); exit 2 on an error."""
    args = build_parser().parse_args(argv)
    return run_cli("edgebert-as", lambda: _assemble(args))


if __name__ == "__main__":
    sys.exit(main())
