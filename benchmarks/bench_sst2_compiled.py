"""The SST-2 entropy trace through a COMPILED ALBERT-base-shaped compressed model (edgebertc early exit + DVFS).

    python benchmarks/bench_sst2_compiled.py [--data ../shared/data/edgebert-sst2] [--target 50ms] [--limit N]
        [--work /tmp/edgebert-albert-base-ee] [--thresholds 0.23 0.28 0.46]

Builds (once, cached in --work) an untrained ALBERT-base-shaped compressed model with 12 exit heads
(examples/train_compressed.py --epochs 0: hidden 768, 12 heads, FFN 3072, embedding 128, seq 128), compiles it per
threshold with the SST-2 predictor table and the latency target (`edgebertc --threshold T --latency-target ...
--predictor-table ...`), writes the .ebin files to --work, and replays the trace through each program in the three
modes (`run_bench`, timing-only, as `edgebert-bench --entropy-trace` does). Prints the same markdown tables as
benchmarks/bench_sst2_replay.py.
"""

from __future__ import annotations

import argparse
import runpy
import time
from pathlib import Path

from edgebert.compiler.early_exit import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator.bench import load_entropy_trace, parse_duration, run_bench
from edgebert.isa.ebin import save_ebin
from edgebert.isa.hardware import default_config

ROOT = Path(__file__).resolve().parents[1]
ALBERT_BASE = ["--epochs", "0", "--layers", "12", "--hidden", "768", "--heads", "12", "--intermediate", "3072",
               "--embedding", "128", "--seq-len", "128", "--train-size", "64", "--eval-size", "64"]


def build_model(work: Path) -> Path:
    """The ALBERT-base-shaped compressed ONNX model (cached)."""
    onnx_path = work / "albert_base_ee.onnx"
    if not onnx_path.exists():
        work.mkdir(parents=True, exist_ok=True)
        example = runpy.run_path(str(ROOT / "examples" / "train_compressed.py"))
        example["main"]([*ALBERT_BASE, "--onnx", str(onnx_path)])
    return onnx_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "edgebert-sst2"))
    p.add_argument("--target", default="50ms")
    p.add_argument("--limit", type=int)
    p.add_argument("--work", default="/tmp/edgebert-albert-base-ee")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.23, 0.28, 0.46])
    args = p.parse_args()
    hw = default_config()
    data, work = Path(args.data), Path(args.work)
    target = parse_duration(args.target)
    t0 = time.perf_counter()
    model = build_model(work)
    print(f"model {model} ({model.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    rows = load_entropy_trace(data / "sst2_eval_entropy.txt")[: args.limit]
    results = []
    for threshold in args.thresholds:
        t0 = time.perf_counter()
        opts = EarlyExitOptions(threshold, target, data / "sst2_lookup_table.csv")
        program = compile_onnx(model, hw=hw, early_exit=opts).program
        compile_s = time.perf_counter() - t0
        save_ebin(program, work / f"albert_base_t{threshold:g}.ebin")
        if threshold == args.thresholds[0]:
            print("\n".join(program.metadata["dvfs_plan"]))
            print(f"{len(program.code)} instructions")
        t0 = time.perf_counter()
        r = run_bench(program, hw, [{"entropies": x} for x in rows], timing_only=True, target_s=target)
        results.append((threshold, r, compile_s, time.perf_counter() - t0))
    print("| threshold | mode | p50 ms | p90 ms | p99 ms | max ms | within target | energy / sentence (uJ) | mean exit layer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for threshold, r, _, _ in results:
        for mode, s in r["modes"].items():
            lat = s["latency_s"]
            print(f"| {threshold} | {mode} | {lat['p50'] * 1e3:.2f} | {lat['p90'] * 1e3:.2f} | {lat['p99'] * 1e3:.2f} "
                  f"| {lat['max'] * 1e3:.2f} | {100 * s['within_target']:.1f} % | {s['energy_j']['mean'] * 1e6:.1f} "
                  f"| {s['exit_layer']['mean']:.2f} |")
    print()
    print("| threshold | ee+dvfs vs no-exit (paper: 7x) | ee+dvfs vs early-exit (paper: 2.5x) | early-exit vs no-exit "
          "| low predictions recovered | races |")
    print("|---|---|---|---|---|---|")
    for threshold, r, _, _ in results:
        s = r["savings"]
        print(f"| {threshold} | **{s['vs_no_exit']:.2f}x** | **{s['vs_early_exit']:.2f}x** | "
              f"{s['early_exit_vs_no_exit']:.2f}x | {r['dvfs_switches_per_sentence'].get('2', 0)} / {r['sentences']} "
              f"| {r['races_first_sentence'] or 'none'} |")
    for threshold, r, compile_s, wall in results:
        print(f"threshold {threshold}: compile {compile_s:.1f} s, {r['sentences']} sentences x 3 modes in {wall:.1f} s")


if __name__ == "__main__":
    main()
