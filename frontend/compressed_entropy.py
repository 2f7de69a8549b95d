"""Per-sentence exit entropy traces and the entropy-prediction lookup table, in the EdgeBERT artifact's file formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LOOKUP_ROWS = 100  # layer-1 entropy 0.00, 0.01, ..., 0.99


def write_entropy_trace(path: str | Path, entropies: np.ndarray) -> None:
    """One line per sentence, one column per layer, like sst2_eval_entropy.txt (" a,  b,  c" float32 reprs)."""
    ent = np.asarray(entropies, dtype=np.float32)
    if ent.ndim != 2:
        raise ValueError(f"entropies must be [sentences, layers], got shape {ent.shape}")
    lines = (", ".join(f" {float(v)!r}" for v in row) for row in ent)
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_entropy_trace(path: str | Path) -> np.ndarray:
    """[sentences, layers] float64 array from an entropy trace file."""
    rows = [[float(v) for v in line.split(",")] for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float64)


def lookup_row(layer1_entropy: np.ndarray | float) -> np.ndarray:
    """Row of the lookup table nearest a layer-1 entropy (0.01 steps, clamped to 0..99)."""
    return np.clip(np.rint(np.asarray(layer1_entropy, dtype=np.float64) * 100), 0, LOOKUP_ROWS - 1).astype(np.int64)


def build_lookup_table(entropies: np.ndarray) -> np.ndarray:
    """EdgeBERT prediction table from calibration entropies [sentences, L] -> [100, L - 1].

    Column 0 is the layer-1 entropy of the row (0.00 .. 0.99); columns 1 .. L-2 the mean entropy of layers
    2 .. L-1 over the calibration sentences whose layer-1 entropy is nearest that row. Rows no sentence falls in
    are filled per column by linear interpolation between the nearest filled rows below and above, and by copying
    the nearest filled row beyond the first/last filled row (constant extrapolation). No calibration data at all
    is an error.
    """
    ent = np.asarray(entropies, dtype=np.float64)
    if ent.ndim != 2 or ent.shape[0] == 0 or ent.shape[1] < 2:
        raise ValueError(f"calibration entropies must be [sentences >= 1, layers >= 2], got shape {ent.shape}")
    rows = lookup_row(ent[:, 0])
    inner = ent[:, 1:-1]
    table = np.zeros((LOOKUP_ROWS, ent.shape[1] - 1))
    table[:, 0] = np.arange(LOOKUP_ROWS) * 0.01  # bit-identical to the artifact's column 0
    counts = np.bincount(rows, minlength=LOOKUP_ROWS)
    filled = np.flatnonzero(counts)
    for col in range(inner.shape[1]):
        sums = np.bincount(rows, weights=inner[:, col], minlength=LOOKUP_ROWS)
        means = sums[filled] / counts[filled]
        table[:, col + 1] = np.interp(np.arange(LOOKUP_ROWS), filled, means)  # constant beyond the ends
    return table


def write_lookup_table(path: str | Path, table: np.ndarray) -> None:
    """CSV like sst2_lookup_table.csv (no header, '%.18e', comma-separated)."""
    np.savetxt(path, np.asarray(table, dtype=np.float64), fmt="%.18e", delimiter=",")


def read_lookup_table(path: str | Path) -> np.ndarray:
    """[100, L - 1] table from a lookup-table CSV."""
    return np.loadtxt(path, delimiter=",", ndmin=2)


def predict_exit_layer(table: np.ndarray, layer1_entropy: float, threshold: float, num_layers: int) -> int:
    """The authors' rule: nearest row; first layer (1 if layer 1 itself is below) whose entropy < threshold, else L."""
    if layer1_entropy < threshold:
        return 1
    predicted = np.asarray(table)[int(lookup_row(layer1_entropy)), 1:]
    below = np.flatnonzero(predicted < threshold)
    return int(below[0]) + 2 if below.size else num_layers
