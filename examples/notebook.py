"""A notebook in a script: compile, emulate, bench and plot an early-exit model through edgebert's public API only.

    python examples/notebook.py                      # the model examples/train_compressed.py wrote to out/
    python examples/notebook.py --model M.onnx --sentences S.npz --out out/notebook

Run it whole or cell by cell (`# %%` markers: VS Code, Spyder, or Jupyter through jupytext). The model needs an exit
head after every layer (examples/train_compressed.py exports one); the sentences are an .npz with a leading sentence
axis per model input and optionally `labels` (train_compressed.py's --eval-inputs). Everything is written under --out.
"""

# %% Setup: the inputs, and where the figures go
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import edgebert as eb


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (each cell reads only these)."""
    p = argparse.ArgumentParser(prog="notebook", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="out/model.onnx", metavar="FILE",
                   help="ONNX model with an exit head after every layer (default: train_compressed.py's out/model.onnx)")
    p.add_argument("--sentences", default="out/eval.npz", metavar="FILE",
                   help=".npz of sentences: one array per model input with a leading sentence axis, optional labels "
                        "(default: train_compressed.py's out/eval.npz)")
    p.add_argument("--out", default="out/notebook", metavar="DIR", help="folder for the program, tables and figures")
    p.add_argument("--hw", default="ideal-256mac", metavar="NAME|FILE", help="hardware config (default ideal-256mac)")
    p.add_argument("--calibrate", type=int, default=20, metavar="N",
                   help="sentences whose entropies calibrate the DVFS plan (default 20)")
    p.add_argument("--bench", type=int, default=100, metavar="N", help="sentences to bench (default 100)")
    p.add_argument("--target", type=float, default=1.5, metavar="X",
                   help="latency target as a multiple of the all-layers latency at full speed (default 1.5)")
    p.add_argument("--format", default="pdf", choices=("pdf", "svg", "png"), help="figure format (default pdf)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Every cell in order; the numbers it prints are the ones a notebook would show."""
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hw = eb.hardware(args.hw)
    stacked = dict(np.load(args.sentences))
    names = [k for k in stacked if k != "labels"]

    def sentence(i: int) -> dict[str, np.ndarray]:
        return {k: stacked[k][i : i + 1] for k in names}

    # %% Compile with early exit (the model's own threshold) and save the program
    program = eb.compile(args.model, hw=hw, early_exit=True)
    eb.save(program, out / "early_exit.ebin")
    print(f"early exit: {len(program.code)} instructions, threshold {program.metadata['early_exit']['threshold']:g}")

    # %% Emulate one sentence: the report, its breakdown per op class and per layer, and its figure
    result = eb.emulate(out / "early_exit.ebin", sentence(0), hw=hw)
    print("one sentence:", result.report.summary())
    for op_class, row in result.report.op_classes().items():
        bound = result.report.roofline()["op_classes"].get(op_class, {}).get("bound", "-")
        print(f"  {op_class:13s} {row['unit_cycles']:>9,} cycles  {row['energy_j'] * 1e9:10.2f} nJ  bound: {bound}")
    result.report.save_csv(out / "one_sentence.csv")
    result.report.plot(out / f"one_sentence.{args.format}")

    # %% Calibrate: every layer's entropy on a few sentences (exits disabled), as EdgeBERT's predictor is built; the
    # program computes heads 1..L-1 (the last layer always exits), a calibration row has one column per layer
    calibration = [eb.emulate(program, sentence(i), hw=hw, early_exit=False, profile=False).entropies + [0.0]
                   for i in range(min(args.calibrate, len(stacked[names[0]])))]
    full = eb.emulate(program, sentence(0), hw=hw, early_exit=False, profile=False).report
    target = args.target * full.seconds
    print(f"all layers at full speed: {full.summary()}; latency target {target * 1e6:.2f} µs")

    # %% Compile again with latency-aware DVFS for that target
    program = eb.compile(args.model, hw=hw, latency_target=target, calibration_entropies=np.array(calibration))
    eb.save(program, out / "ee_dvfs.ebin")

    # %% Bench EdgeBERT's modes over many sentences and draw them
    with eb.progress_bars(args.quiet) as progress:
        bench = eb.bench(program, inputs=args.sentences, hw=hw, limit=args.bench, progress=progress,
                         name=f"{Path(args.model).name} (DVFS for {target * 1e6:.1f} µs)")
    for mode, stats in bench["modes"].items():
        accuracy = stats.get("accuracy")
        print(f"  {mode:10s} {stats['energy_j']['mean'] * 1e9:9.2f} nJ/sentence, p90 "
              f"{stats['latency_s']['p90'] * 1e6:8.2f} µs, mean exit layer {stats['exit_layer']['mean']:.2f}"
              + (f", accuracy {100 * accuracy:.1f} %" if accuracy is not None else ""))
    savings = bench["savings"]
    print(f"early exit + DVFS: {savings['vs_no_exit']['mean']:.2f}x less energy than no early exit, "
          f"{savings['vs_early_exit']['mean']:.2f}x less than early exit alone")
    bench.save_json(out / "bench.json")
    bench.save_csv(out / "bench.csv")
    bench.plot(out / f"bench.{args.format}")
    print(f"wrote {out}/: early_exit.ebin, ee_dvfs.ebin, one_sentence.{args.format}, one_sentence.csv, "
          f"bench.{args.format}, bench.json, bench.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
