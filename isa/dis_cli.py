"""`edgebert-dis`: print the assembly of a `.ebin` binary (re-assembles to the same bytes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebert.isa.cli_common import add_version
from edgebert.isa.disassembler import disassemble
from edgebert.isa.ebin import load_ebin
from edgebert.isa.errors import run_cli
from edgebert.isa.safe_io import refuse_overwrite, write_atomic


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/packaging/test_cli_flags.py reads it)."""
    parser = argparse.ArgumentParser(prog="edgebert-dis", description="Disassemble a .ebin file.")
    parser.add_argument("binary", type=Path, help="program (.ebin)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the assembly here instead of stdout")
    add_version(parser)
    return parser


def _disassemble(args: argparse.Namespace) -> int:
    """Print (or with -o write) the assembly."""
    refuse_overwrite([args.binary], args.output)
    text = disassemble(load_ebin(args.binary))
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.output, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Disassemble `binary` to stdout or `-o`; exit 2 on an error."""
    args = build_parser().parse_args(argv)
    return run_cli("edgebert-dis", lambda: _disassemble(args))


if __name__ == "__main__":
    sys.exit(main())
