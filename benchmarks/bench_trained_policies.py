"""Energy AND accuracy of the exit policies on a compressed ALBERT the project trains (real inputs with labels).

    python benchmarks/bench_trained_policies.py [--work /tmp/edgebert-trained-policies] [--limit 500]
        [--targets 1.25x 1.5x 2x 3x] [--thresholds 0.23 0.28 0.46 0.09 0.16] [--json out.json] [--plot fig.svg]

Trains once (cached in --work) a small EdgeBERT-style model with examples/train_compressed.py (6 layers, hidden 64,
seq 32, synthetic sentiment task, movement pruning, adaptive span, AF8 weights, activations and attention; about
10 minutes on the loaded shared 2-core machine, 3 minutes of CPU), with its calibration-set entropies and lookup
table and its eval set with labels. Then the same sweep as benchmarks/bench_sst2_compiled.py, on real inputs: one compile per (threshold, exit
policy) with the model's own predictor table and the DVFS plan optimised for the calibration set, planned again per
latency target (multiples of the all-fastest latency of all 6 layers: the model runs in microseconds), every eval
sentence in every mode with full numerics for no-exit and early-exit (ee+dvfs and the oracle replay them
timing-only): energy, latency, exit layers and the accuracy of the exits. Numbers: docs/bench.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import runpy
import sys
import time
from pathlib import Path

import numpy as np

from edgebert.compiler.options import EarlyExitOptions
from edgebert.emulator.bench import SweepConfig, run_sweep
from edgebert.emulator.bench.policy_sweep import PROBE_TARGET_S
from edgebert.emulator.bench.policy_sweep_cli import bound_lines, sweep_markdown, write_outputs
from edgebert.emulator.bench.program_cache import compiled
from edgebert.emulator.run_files import load_sentence_inputs
from edgebert.isa.hardware import load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ["--task", "sentiment", "--layers", "6", "--hidden", "64", "--seq-len", "32", "--epochs", "10",
          "--prune", "movement", "--span", "--af8", "--af8-activations", "--af8-attention", "--threads", "1"]


def train(work: Path) -> dict[str, Path]:
    """The trained model and its files (cached in `work`)."""
    files = {"onnx": work / "model.onnx", "table": work / "lookup_table.csv", "calib": work / "calib_entropy.txt",
             "eval_trace": work / "eval_entropy.txt", "eval": work / "eval.npz"}
    if not all(p.exists() for p in files.values()):
        work.mkdir(parents=True, exist_ok=True)
        example = runpy.run_path(str(ROOT / "examples" / "train_compressed.py"))
        example["main"]([*RECIPE, "--onnx", str(files["onnx"]), "--lookup-table", str(files["table"]),
                         "--calibration-trace", str(files["calib"]), "--entropy-trace", str(files["eval_trace"]),
                         "--eval-inputs", str(files["eval"])])
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="/tmp/edgebert-trained-policies", help="where the model is trained and cached")
    p.add_argument("--limit", type=int, default=500, help="eval sentences (of 1000)")
    p.add_argument("--targets", nargs="+", default=["1.25x", "1.5x", "2x", "3x"],
                   help="latency targets: durations or multiples of the all-fastest latency")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.23, 0.28, 0.46, 0.09, 0.16],
                   help="exit entropy thresholds (default: both of the authors' sets)")
    p.add_argument("--policies", nargs="+", default=["recover", "forced"], choices=["recover", "forced"],
                   help="exit policies (default both)")
    p.add_argument("--hw", default=None, metavar="NAME|FILE", help="hardware config (default: edgebert-cmod)")
    p.add_argument("--json", metavar="FILE", help="write the sweep's results here (JSON)")
    p.add_argument("--plot", metavar="FILE", help="the figure (.png; .svg/.pdf: vector)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    files = train(work)
    print(f"model {files['onnx']} ready in {time.perf_counter() - t0:.0f} s", flush=True)
    hw = load_config(args.hw)
    base = EarlyExitOptions(predictor_table=files["table"], calibration_entropies=files["calib"])
    probe = compiled(files["onnx"], dataclasses.replace(base, threshold=args.thresholds[0], policy=args.policies[0],
                                                        latency_target_s=PROBE_TARGET_S), hw, work / "programs")
    sentences = [{"inputs": x} for x in load_sentence_inputs(files["eval"], probe.metadata["inputs"])][: args.limit]
    with np.load(files["eval"]) as data:
        labels = data["labels"].astype(np.int64).tolist()[: args.limit]
    cfg = SweepConfig(args.thresholds, args.targets, base, args.policies, work / "programs",
                      extra={"model_recipe": " ".join(RECIPE), "labels": "synthetic sentiment eval set"})
    result = run_sweep(files["onnx"], hw, sentences, cfg, timing_only=False, labels=labels,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    print("\n".join([*sweep_markdown(result), "", *bound_lines(result)]))
    write_outputs(result, args.json, args.plot, f"trained compressed ALBERT (6 layers, hidden 64), {len(sentences)} "
                  f"eval sentences on {hw.name}: energy per sentence vs latency target")
    print(f"{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
