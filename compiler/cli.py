"""edgebertc: compile an ONNX model to an `.ebin` program (not implemented yet)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("edgebertc: not implemented yet (see issue 4)", file=sys.stderr)
    return 2
