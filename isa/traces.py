"""The EdgeBERT artifact's file formats: per-sentence exit-entropy traces and the entropy lookup table.

Entropy trace (`sst2_eval_entropy.txt`): one sentence per line, one comma-separated natural-log entropy per exit
layer. Lookup table (`sst2_lookup_table.csv`): 100 rows (layer-1 entropy 0.00 .. 0.99), no header; column 0 the
row's layer-1 entropy, columns 1 .. L-2 the predicted entropies of layers 2 .. L-1. Every reader here validates
and raises `EdgebertError` naming the file and line at fault.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgebert.isa.errors import EdgebertError
from edgebert.isa.safe_io import read_text_limited

LOOKUP_ROWS = 100  # layer-1 entropy 0.00, 0.01, ..., 0.99
MAX_TRACE_BYTES = 256 << 20  # a trace larger than this is not an entropy trace


def _read_text(path: str | Path, what: str) -> str:
    # Bounded by reading, not by stat(): a device such as /dev/zero has size 0 and never ends.
    return read_text_limited(path, MAX_TRACE_BYTES, what)


def _floats(line: str, path: str | Path, lineno: int) -> list[float]:
    out = []
    for cell in line.split(","):
        if not cell.strip():
            continue
        try:
            v = float(cell)
        except ValueError:
            raise EdgebertError(f"{path}: line {lineno}: '{cell.strip()[:40]}' is not a number") from None
        if not math.isfinite(v):
            raise EdgebertError(f"{path}: line {lineno}: non-finite value '{cell.strip()}'")
        out.append(v)
    return out


def read_entropy_trace(path: str | Path, *, min_columns: int = 1) -> list[list[float]]:
    """All rows of an entropy trace (blank lines skipped); every row needs at least `min_columns` values."""
    rows = []
    for i, line in enumerate(_read_text(path, "entropy trace").splitlines(), 1):
        if not line.strip():
            continue
        row = _floats(line, path, i)
        if len(row) < min_columns:
            raise EdgebertError(f"{path}: line {i}: {len(row)} entropies, at least {min_columns} needed")
        if any(v < 0 for v in row):
            raise EdgebertError(f"{path}: line {i}: negative entropy")
        rows.append(row)
    if not rows:
        raise EdgebertError(f"{path}: empty entropy trace")
    return rows


def read_entropy_array(path: str | Path) -> np.ndarray:
    """[sentences, layers] float64 array of a trace whose rows all have the same length."""
    rows = read_entropy_trace(path)
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise EdgebertError(f"{path}: rows have different numbers of entropies {sorted(widths)}")
    return np.array(rows, dtype=np.float64)


def read_entropy_row(path: str | Path, row: int) -> list[float]:
    """Row `row` (0-based) of an entropy trace."""
    rows = read_entropy_trace(path)
    if not 0 <= row < len(rows):
        raise EdgebertError(f"{path}: row {row} out of range (the trace has rows 0..{len(rows) - 1})")
    return rows[row]


def write_entropy_trace(path: str | Path, entropies: np.ndarray) -> None:
    """One line per sentence, one column per layer, like sst2_eval_entropy.txt (" a,  b,  c" float32 reprs)."""
    ent = np.asarray(entropies, dtype=np.float32)
    if ent.ndim != 2:
        raise ValueError(f"entropies must be [sentences, layers], got shape {ent.shape}")
    lines = (", ".join(f" {float(v)!r}" for v in row) for row in ent)
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_lookup_table(path: str | Path) -> np.ndarray:
    """[100, L - 1] float64 table from a lookup-table CSV (validated: 100 rows of equal width, finite, column 0 =
    0.00 .. 0.99)."""
    rows = []
    for i, line in enumerate(_read_text(path, "lookup table").splitlines(), 1):
        if line.strip():
            rows.append(_floats(line, path, i))
    if len(rows) != LOOKUP_ROWS:
        raise EdgebertError(f"{path}: {len(rows)} rows, a lookup table has {LOOKUP_ROWS}")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or 0 in widths:  # (>= 1: a 2-layer model's table is column 0 alone, it predicts no layer)
        raise EdgebertError(f"{path}: every row needs the same number (>= 1) of columns, got {sorted(widths)}")
    table = np.array(rows, dtype=np.float64)
    if not np.allclose(table[:, 0], np.arange(LOOKUP_ROWS) * 0.01, atol=1e-6):
        raise EdgebertError(f"{path}: column 0 must hold the layer-1 entropies 0.00, 0.01, ..., 0.99")
    return table


def write_lookup_table(path: str | Path, table: np.ndarray) -> None:
    """CSV like sst2_lookup_table.csv (no header, '%.18e', comma-separated)."""
    np.savetxt(path, np.asarray(table, dtype=np.float64), fmt="%.18e", delimiter=",")
