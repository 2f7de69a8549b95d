"""EdgeBERT's entropy predictor: layer-1 entropy bin -> predicted exit layer, from a lookup-table CSV.

The table (format of the artifact's `sst2_lookup_table.csv`, read and written by `edgebert.isa.traces`, built from
calibration entropies by `build_lookup_table`) has 100 rows; column 0 is the layer-1 entropy 0.00 .. 0.99 and
columns 1 .. L-2 the predicted entropy after layers 2 .. L-1.
Rule (the authors' code): take the row nearest the measured layer-1 entropy; the predicted exit layer is the first
layer whose predicted entropy is below the threshold, else the last layer L. Per bin (= row) this gives a table
the compiler embeds for `lut rd, f, table, nbins=100, scale=100.0, mode=nearest`. The program only consults it
after layer 1 did not exit, so bins never predict layer 1.

CLI (`edgebert-predictor`, also `python -m edgebert.frontend.predictor`):
`edgebert-predictor build --entropies FILE -o table.csv` and
`edgebert-predictor show --table FILE --threshold T --layers L [--exit-compare lt|le] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from edgebert.isa.cli_common import add_json, add_verbosity, add_version
from edgebert.isa.errors import EdgebertError, run_cli
from edgebert.isa.exit_rule import passes_threshold
from edgebert.isa.safe_io import refuse_overwrite
from edgebert.isa.table import EXIT_COMPARES
from edgebert.isa.traces import LOOKUP_ROWS, read_entropy_array, read_lookup_table, write_lookup_table

#: `lut` settings matching the table's rows: bin = clamp(rint(H * 100), 0, 99).
NBINS = LOOKUP_ROWS
LUT_SCALE = float(LOOKUP_ROWS)
LUT_MODE = "nearest"


def entropy_bin(layer1_entropy: float | np.ndarray) -> np.ndarray:
    """The table row (lut bin) of a layer-1 entropy: nearest 0.01 step, clamped to 0 .. 99."""
    return np.clip(np.rint(np.asarray(layer1_entropy, dtype=np.float64) * NBINS), 0, NBINS - 1).astype(np.int64)


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
        raise EdgebertError(f"calibration entropies must be [sentences >= 1, layers >= 2], got shape {ent.shape}")
    rows = entropy_bin(ent[:, 0])
    inner = ent[:, 1:-1]
    table = np.zeros((NBINS, ent.shape[1] - 1))
    table[:, 0] = np.arange(NBINS) * 0.01  # bit-identical to the artifact's column 0
    counts = np.bincount(rows, minlength=NBINS)
    filled = np.flatnonzero(counts)
    for col in range(inner.shape[1]):
        sums = np.bincount(rows, weights=inner[:, col], minlength=NBINS)
        means = sums[filled] / counts[filled]
        table[:, col + 1] = np.interp(np.arange(NBINS), filled, means)  # constant beyond the ends
    return table


def check_table(table: np.ndarray, what: str = "lookup table") -> None:
    """Raise EdgebertError unless `table` has 100 rows, >= 2 columns, finite values and column 0 = row/100."""
    if table.ndim != 2 or table.shape[0] != NBINS or table.shape[1] < 2:
        raise EdgebertError(f"{what}: expected {NBINS} rows x (L - 1 >= 2) columns, got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise EdgebertError(f"{what}: non-finite values")
    if not np.allclose(table[:, 0], np.arange(NBINS) / NBINS, atol=1e-6):
        raise EdgebertError(f"{what}: column 0 must be the layer-1 entropy 0.00 .. 0.99 in steps of 0.01")


def predicted_exit_layers(table: np.ndarray, threshold: float, num_layers: int, compare: str = "lt") -> np.ndarray:
    """int32 [100]: per layer-1 entropy bin, the first layer in 2 .. L-1 whose predicted entropy < threshold (or <=
    with `compare="le"`, the exit branch's comparison), else L.

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
    below = passes_threshold(table[:, 1:], threshold, compare)  # [bins, layers 2 .. L-1]
    first = np.argmax(below, axis=1) + 2
    return np.where(below.any(axis=1), first, num_layers).astype(np.int32)


def predict_exit_layer(table: np.ndarray, layer1_entropy: float, threshold: float, num_layers: int) -> int:
    """The authors' rule for one sentence: 1 if layer 1 is below the threshold, else on the nearest row the first
    layer whose predicted entropy < threshold, else L (written per sentence, as the artifact does)."""
    if layer1_entropy < threshold:
        return 1
    predicted = np.asarray(table)[int(entropy_bin(layer1_entropy)), 1:]
    below = np.flatnonzero(predicted < threshold)
    return int(below[0]) + 2 if below.size else num_layers


def build_parser() -> argparse.ArgumentParser:
    """`edgebert-predictor build | show`."""
    p = argparse.ArgumentParser(prog="edgebert-predictor", description=__doc__.split("\n")[0])
    add_version(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="{build,show}")
    b = sub.add_parser("build", help="build a lookup table CSV from calibration entropies",
                       description="Build EdgeBERT's lookup table (100 layer-1 entropy bins x predicted entropies of "
                       "layers 2..L-1) from calibration entropies.")
    b.add_argument("--entropies", required=True, metavar="FILE",
                   help="calibration entropy trace (the format of EdgeBERT's sst2_eval_entropy.txt)")
    b.add_argument("-o", "--output", required=True, metavar="FILE", help="lookup table CSV to write")
    add_verbosity(b)
    s = sub.add_parser("show", help="print the predicted exit layer per entropy bin",
                       description="Print the exit layer the table predicts for each layer-1 entropy bin.")
    s.add_argument("--table", required=True, metavar="FILE", help="lookup table CSV (sst2_lookup_table.csv format)")
    s.add_argument("--threshold", type=float, required=True, metavar="T", help="exit entropy threshold")
    s.add_argument("--layers", type=int, required=True, metavar="L", help="layers (exits) of the model")
    s.add_argument("--exit-compare", choices=EXIT_COMPARES, default="lt",
                   help="exit when entropy < threshold (lt, EdgeBERT's software; default) or <= (le, its hardware)")
    add_json(s, "the predicted exit layer of each of the 100 bins")
    add_verbosity(s)
    return p


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "build":
        refuse_overwrite([args.entropies], args.output)
        entropies = read_entropy_array(args.entropies)
        table = build_lookup_table(entropies)
        try:
            write_lookup_table(args.output, table)
        except OSError as exc:
            raise EdgebertError(f"{args.output}: cannot write: {exc.strerror}") from None
        if not args.quiet:
            print(f"{args.output}: {table.shape[0]} rows x {table.shape[1]} columns from {len(entropies)} sentences")
        return 0
    refuse_overwrite([args.table], args.json)
    layers = predicted_exit_layers(read_lookup_table(args.table), args.threshold, args.layers, args.exit_compare)
    if args.json:
        from edgebert.isa.safe_io import write_json

        write_json(args.json, {"table": str(args.table), "threshold": args.threshold, "layers": args.layers,
                               "compare": args.exit_compare, "entropy_scale": LUT_SCALE,
                               "predicted_exit_layer": [int(x) for x in layers]})
    if args.quiet:
        return 0
    print("bin    layer-1 entropy  predicted exit layer")
    start = 0
    for i in range(1, NBINS + 1):  # one line per run of equal predictions
        if i == NBINS or layers[i] != layers[start]:
            print(f"{start:2d}-{i - 1:2d}  {start / NBINS:.2f}-{(i - 1) / NBINS:.2f}        {layers[start]}")
            start = i
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 on an edgebert error)."""
    return run_cli("edgebert-predictor", lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
