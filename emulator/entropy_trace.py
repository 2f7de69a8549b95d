"""Recorded per-exit entropies (EdgeBERT's `sst2_eval_entropy.txt` format) for entropy injection."""

from __future__ import annotations

from pathlib import Path

from edgebert.isa.errors import EdgebertError


def load_entropy_row(path: str | Path, row: int) -> list[float]:
    """Row `row` (0-based) of a file with one sentence per line and one comma-separated entropy per exit."""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise EdgebertError(f"{path}: cannot read entropy trace: {exc.strerror}") from None
    if not 0 <= row < len(lines):
        raise EdgebertError(f"{path}: row {row} out of range (the trace has rows 0..{len(lines) - 1})")
    try:
        return [float(x) for x in lines[row].split(",") if x.strip()]
    except ValueError as exc:
        raise EdgebertError(f"{path}: line {row + 1}: {exc}") from None
