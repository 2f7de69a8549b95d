"""EdgeBERT's entropy predictor: layer-1 entropy bin -> predicted exit layer, from a lookup-table CSV.

The table (format of the artifact's `sst2_lookup_table.csv`, read and built by `compressed_entropy`) has 100 rows;
column 0 is the layer-1 entropy 0.00 .. 0.99 and columns 1 .. L-2 the predicted entropy after layers 2 .. L-1.
Rule (the authors' code): take the row nearest the measured layer-1 entropy; the predicted exit layer is the first
layer whose predicted entropy is below the threshold, else the last layer L. Per bin (= row) this gives a table
the compiler embeds for `lut rd, f, table, nbins=100, scale=100.0, mode=nearest`. The program only consults it
after layer 1 did not exit, so bins never predict layer 1.

CLI: `python -m edgebert.frontend.predictor build --entropies FILE -o table.csv` and
`python -m edgebert.frontend.predictor show --table FILE --threshold T --layers L`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgebert.frontend.compressed_entropy import (
    LOOKUP_ROWS,
    build_lookup_table,
    lookup_row,
    read_entropy_trace,
    read_lookup_table,
    write_lookup_table,
)
from edgebert.isa.errors import EdgebertError, run_cli

#: `lut` settings matching the table's rows: bin = clamp(rint(H * 100), 0, 99).
NBINS = LOOKUP_ROWS
LUT_SCALE = float(LOOKUP_ROWS)
LUT_MODE = "nearest"


def load_table(path: str | Path) -> np.ndarray:
    """Read and check a lookup-table CSV: [100, L - 1] with column 0 = 0.00 .. 0.99."""
    try:
        table = read_lookup_table(path)
    except (OSError, ValueError) as exc:
        raise EdgebertError(f"{path}: cannot read lookup table: {exc}") from None
    check_table(table, str(path))
    return table


def check_table(table: np.ndarray, what: str = "lookup table") -> None:
    """Raise EdgebertError unless `table` has 100 rows, >= 2 columns, finite values and column 0 = row/100."""
    if table.ndim != 2 or table.shape[0] != NBINS or table.shape[1] < 2:
        raise EdgebertError(f"{what}: expected {NBINS} rows x (L - 1 >= 2) columns, got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise EdgebertError(f"{what}: non-finite values")
    if not np.allclose(table[:, 0], np.arange(NBINS) / NBINS, atol=1e-6):
        raise EdgebertError(f"{what}: column 0 must be the layer-1 entropy 0.00 .. 0.99 in steps of 0.01")


def predicted_exit_layers(table: np.ndarray, threshold: float, num_layers: int) -> np.ndarray:
    """int32 [100]: per layer-1 entropy bin, the first layer in 2 .. L-1 whose predicted entropy < threshold, else L.

    The table must predict layers 2 .. L-1 (L - 1 columns); extra columns are an error, fewer too.
    """
    table = np.asarray(table, dtype=np.float64)
    check_table(table)
    if num_layers < 2:
        raise EdgebertError(f"the predictor needs at least 2 layers, got {num_layers}")
    if table.shape[1] != num_layers - 1:
        raise EdgebertError(
            f"lookup table has {table.shape[1]} columns (predicts layers 2..{table.shape[1]}), "
            f"a {num_layers}-layer model needs {num_layers - 1}"
        )
    below = table[:, 1:] < threshold  # [bins, layers 2 .. L-1]
    first = np.argmax(below, axis=1) + 2
    return np.where(below.any(axis=1), first, num_layers).astype(np.int32)


def entropy_bin(layer1_entropy: float | np.ndarray) -> np.ndarray:
    """The table row (lut bin) of a layer-1 entropy: nearest 0.01 step, clamped to 0 .. 99."""
    return lookup_row(layer1_entropy)


def predict(table: np.ndarray, layer1_entropy: float, threshold: float, num_layers: int) -> int:
    """Predicted exit layer of one sentence that did not exit at layer 1 (the bin's entry)."""
    return int(predicted_exit_layers(table, threshold, num_layers)[int(entropy_bin(layer1_entropy))])


def build_table(entropies: np.ndarray) -> np.ndarray:
    """A lookup table from calibration entropies [sentences, L] (the PyTorch side's `build_lookup_table`)."""
    try:
        return build_lookup_table(entropies)
    except ValueError as exc:
        raise EdgebertError(str(exc)) from None


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgebert.frontend.predictor", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a lookup table CSV from calibration entropies")
    b.add_argument("--entropies", required=True, help="entropy trace (format of sst2_eval_entropy.txt)")
    b.add_argument("-o", "--output", required=True, help="lookup table CSV to write")
    s = sub.add_parser("show", help="print the predicted exit layer per entropy bin")
    s.add_argument("--table", required=True, help="lookup table CSV")
    s.add_argument("--threshold", type=float, required=True)
    s.add_argument("--layers", type=int, required=True)
    args = p.parse_args(argv)
    if args.command == "build":
        try:
            entropies = read_entropy_trace(args.entropies)
        except (OSError, ValueError) as exc:
            raise EdgebertError(f"{args.entropies}: cannot read entropies: {exc}") from None
        table = build_table(entropies)
        try:
            write_lookup_table(args.output, table)
        except OSError as exc:
            raise EdgebertError(f"{args.output}: cannot write: {exc.strerror}") from None
        print(f"{args.output}: {table.shape[0]} rows x {table.shape[1]} columns from {len(entropies)} sentences")
        return 0
    layers = predicted_exit_layers(load_table(args.table), args.threshold, args.layers)
    print("bin  H1    predicted exit layer")
    start = 0
    for i in range(1, NBINS + 1):  # one line per run of equal predictions
        if i == NBINS or layers[i] != layers[start]:
            print(f"{start:2d}-{i - 1:2d} {start / NBINS:.2f}-{(i - 1) / NBINS:.2f}  {layers[start]}")
            start = i
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 on an edgebert error)."""
    return run_cli("predictor", lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
