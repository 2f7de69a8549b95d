"""Sweep speed, measured in one run: (1) the SST-2 replay through compressed ALBERT-base with the per-path cache
against without it (same numbers, target >= 20x faster); (2) edgebert-sweep throughput with 2 Ray workers against 1
(target >= 1.7x on 2 cores).

    python benchmarks/bench_sweep.py [--work /tmp/edgebert-sweep-bench] [--data ../shared/data/edgebert-sst2]
        [--skip-replay] [--skip-sweep]

(1) builds (once, cached in --work) ALBERT-base with EdgeBERT's compression (`examples/sweeps/edgebert.toml`'s
model), compiles it at threshold 0.23 with a 50 ms target and the SST-2 predictor table, and replays the 872-sentence
trace in the three modes (`run_bench`, as `edgebert-bench --entropy-trace`) with and without `path_cache`; the two
results must be identical (every per-sentence latency, energy, exit layer and cycle count). (2) runs the same 16-point
sweep (PU lanes 8/16/32/64 x targets 40/50/80/120 ms on that model: a compile and a cached replay per point) with 1 and with
2 workers on one local Ray session; throughput = points / time from the first dispatch to the last row, the workers
already started (their start-up, ~5 s, is printed apart). Prints the load average around each measurement: the
machine is shared, wall times are noisy, and with Linux's autogroup scheduling a busy machine gives the whole sweep
(one session) one share of the CPUs whatever the number of workers: measure (2) on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"preset": "albert-base", "encoder_sparsity": 0.5, "embedding_sparsity": 0.6, "af8": True,
         "af8_activations": True, "sentences": 4}


def load() -> str:
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())


def scheduler_note() -> str:
    """Linux's autogroup scheduling gives every session one share of the CPUs: on a machine other sessions keep
    busy, the sweep's workers (one session) then split one share, and more workers cannot go faster."""
    try:
        on = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return "autogroup scheduling: unknown"
    return ("autogroup scheduling on: with other sessions busy, this session's processes share one CPU share"
            if on else "autogroup scheduling off")


def replay(work: Path, data: Path) -> None:
    from edgebert.compiler.options import CompileOptions, EarlyExitOptions
    from edgebert.compiler.pipeline import compile_model
    from edgebert.emulator.bench import run_bench
    from edgebert.emulator.sweep.model_builder import BuildOptions, build
    from edgebert.isa.hardware import default_config
    from edgebert.isa.traces import read_entropy_trace

    t0 = time.perf_counter()
    model = build(BuildOptions.from_table(MODEL), work)
    print(f"model {model.onnx.name} ready in {time.perf_counter() - t0:.0f} s")
    hw = default_config()
    opts = CompileOptions(early_exit=EarlyExitOptions(0.23, 0.05, data / "sst2_lookup_table.csv"))
    program = compile_model(str(model.onnx), opts, hw).program
    sentences = [{"entropies": r} for r in read_entropy_trace(data / "sst2_eval_entropy.txt")]
    results, walls = {}, {}
    for cached in (False, True):
        before = load()
        t0 = time.perf_counter()
        results[cached] = run_bench(program, hw, sentences, timing_only=True, target_s=0.05, path_cache=cached)
        walls[cached] = time.perf_counter() - t0
        print(f"replay {'with' if cached else 'without'} the path cache: {len(sentences)} sentences x 3 modes in "
              f"{walls[cached]:.2f} s ({before}; after: {load()})")
    strip = ("wall_seconds", "path_cache")
    same = all(json.dumps({k: v for k, v in results[c].items() if k not in strip}, sort_keys=True)
               == json.dumps({k: v for k, v in results[False].items() if k not in strip}, sort_keys=True)
               for c in (True,))
    stats = results[True]["path_cache"]
    print(f"path cache: {stats['emulated']} emulations for {stats['emulated'] + stats['cached']} runs "
          f"({stats['paths']} paths), identical results: {same}")
    print(f"RESULT replay speed-up (cached vs uncached, same run): {walls[False] / walls[True]:.1f}x (target >= 20x)")
    if not same:
        raise SystemExit("bench_sweep: the cached replay differs from the uncached one")


SWEEP = """
[sweep]
name = "bench"
strategy = "grid"
[hardware]
base = "ideal-256mac"
[hardware.params]
"pu.lanes" = [8, 16, 32, 64]
[compiler.params]
latency_target = ["40ms", "50ms", "80ms", "120ms"]
[[workloads]]
name = "albert-base"
model = "{model}"
entropy_trace = "{trace}"
predictor_table = "{table}"
threshold = 0.23
"""


def sweep(work: Path, data: Path) -> None:
    import ray

    from edgebert.emulator.sweep import load_spec, run_sweep
    from edgebert.emulator.sweep.engine import WORKER_ENV
    from edgebert.emulator.sweep.model_builder import BuildOptions, build

    model = build(BuildOptions.from_table(MODEL), work)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    spec_path = tmp / "bench.toml"
    spec_path.write_text(SWEEP.format(model=model.onnx, trace=data / "sst2_eval_entropy.txt",
                                      table=data / "sst2_lookup_table.csv"))
    spec = load_spec(spec_path)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": WORKER_ENV})
    print(f"local Ray started in {time.perf_counter() - t0:.1f} s")
    rate = {}
    try:
        for workers in (1, 2):
            before = load()
            s = run_sweep(spec, tmp / f"w{workers}", workers=workers)
            rate[workers] = s.evaluated / s.eval_s
            print(f"{workers} worker(s): {s.evaluated} points ({s.counts}) in {s.eval_s:.1f} s after the workers "
                  f"started ({s.wall_s:.1f} s in all): {rate[workers]:.3f} points/s ({before}; after: {load()})")
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"RESULT sweep throughput, 2 Ray workers vs 1 (same run): {rate[2] / rate[1]:.2f}x (target >= 1.7x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="/tmp/edgebert-sweep-bench", help="where the model is built (cached)")
    p.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "edgebert-sst2"),
                   help="folder of the EdgeBERT artifact's SST-2 trace")
    p.add_argument("--skip-replay", action="store_true", help="skip the path-cache replay measurement")
    p.add_argument("--skip-sweep", action="store_true", help="skip the Ray workers measurement")
    args = p.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(f"{os.cpu_count()} cores, {load()}; {scheduler_note()}")
    work, data = Path(args.work), Path(args.data)
    if not args.skip_replay:
        replay(work, data)
    if not args.skip_sweep:
        sweep(work, data)


if __name__ == "__main__":
    main()
