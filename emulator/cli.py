"""edgebert-emu: run an `.ebin` program (not implemented yet)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("edgebert-emu: not implemented yet (see issue 3)", file=sys.stderr)
    return 2
