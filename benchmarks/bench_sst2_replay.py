"""Reproduce docs/bench.md: the SST-2 entropy trace through the ALBERT-base skeleton at thresholds 0.23/0.28/0.46.

    python benchmarks/bench_sst2_replay.py [--data ../shared/data/edgebert-sst2] [--target 50ms] [--limit N]

Prints one markdown row per (threshold, mode) and the savings per threshold.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgebert.emulator.albert_skeleton import SkeletonConfig, build_planned_skeleton
from edgebert.emulator.bench import run_bench
from edgebert.frontend.predictor import predicted_exit_layers
from edgebert.isa.hardware import default_config
from edgebert.isa.traces import read_entropy_trace, read_lookup_table
from edgebert.isa.units import parse_duration

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "edgebert-sst2"))
    p.add_argument("--target", default="50ms")
    p.add_argument("--limit", type=int)
    args = p.parse_args()
    hw = default_config()
    data = Path(args.data)
    table = read_lookup_table(data / "sst2_lookup_table.csv")
    rows = read_entropy_trace(data / "sst2_eval_entropy.txt")[: args.limit]
    target = parse_duration(args.target)
    print("| threshold | mode | p50 ms | p90 ms | p99 ms | within target | energy uJ | mean exit |")
    print("|---|---|---|---|---|---|---|---|")
    savings = []
    for threshold in (0.23, 0.28, 0.46):
        exits = predicted_exit_layers(table, threshold, 12)
        program, _ = build_planned_skeleton(SkeletonConfig(threshold=threshold), exits, target, hw)
        t0 = time.perf_counter()
        r = run_bench(program, hw, [{"entropies": x} for x in rows], timing_only=True, target_s=target)
        wall = time.perf_counter() - t0
        for mode, s in r["modes"].items():
            lat = s["latency_s"]
            print(f"| {threshold} | {mode} | {lat['p50'] * 1e3:.2f} | {lat['p90'] * 1e3:.2f} | {lat['p99'] * 1e3:.2f} "
                  f"| {100 * s['within_target']:.1f} % | {s['energy_j']['mean'] * 1e6:.1f} | {s['exit_layer']['mean']:.2f} |")
        savings.append((threshold, r["savings"], wall, len(rows)))
    for threshold, s, wall, n in savings:
        print(f"threshold {threshold}: ee+dvfs saves {s['vs_no_exit']:.2f}x vs no early exit (paper 7x), "
              f"{s['vs_early_exit']:.2f}x vs early exit (paper 2.5x); {n} sentences x 3 modes in {wall:.1f} s")


if __name__ == "__main__":
    main()
