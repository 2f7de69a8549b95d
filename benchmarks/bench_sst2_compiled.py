"""The SST-2 entropy trace through a COMPILED ALBERT-base-shaped model with 12 exit heads (edgebertc early exit + DVFS).

    python benchmarks/bench_sst2_compiled.py [--compressed] [--data ../shared/data/edgebert-sst2] [--target 50ms]
        [--limit N] [--work /tmp/edgebert-albert-base-ee] [--thresholds 0.23 0.28 0.46] [--run-hw TOML]

Builds (once, cached in --work) an untrained ALBERT-base-shaped model (hidden 768, 12 heads, FFN 3072, embedding
128, seq 128): by default fp32 and dense (examples/train_compressed.py --epochs 0); with --compressed, compressed
like EdgeBERT without training (`build_compressed`: magnitude pruning, AF8 weights and calibrated AF8
activations). Compiles it per threshold with the SST-2 predictor table and the latency target (`edgebertc
--threshold T --latency-target ... --predictor-table ...`), writes the .ebin files to --work, prints the layout
(looped or unrolled) and instruction count, and replays the trace through each program in the three modes
(`run_bench`, timing-only, as `edgebert-bench --entropy-trace` does) on the default hardware config, or with
`--run-hw` on another one (the ablations of docs/bench.md: e.g. the default config with `leakage_mw = 0`; the
programs stay compiled for the default). Prints markdown tables (latency, energy, exit layer per threshold and
mode; savings) and the energy per component. Measured numbers: docs/bench.md.
"""

from __future__ import annotations

import argparse
import re
import runpy
import time
from pathlib import Path

from edgebert.compiler.early_exit import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator.bench import run_bench
from edgebert.isa.ebin import save_ebin
from edgebert.isa.hardware import default_config, load_config
from edgebert.isa.traces import read_entropy_trace
from edgebert.isa.units import parse_duration

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


def _shared_per_layer(biases: dict[str, int], pattern: str) -> dict[str, int]:
    """Give every per-layer/per-head point the LARGEST bias of its kind (one bias per point keeps the layer loop)."""
    rx = re.compile(pattern)
    widest: dict[str, int] = {}
    for name, b in biases.items():
        if m := rx.match(name):
            widest[m.group(1)] = max(widest.get(m.group(1), b), b)
    return {n: (widest[m.group(1)] if (m := rx.match(n)) else b) for n, b in biases.items()}


def build_compressed(work: Path, calib_sentences: int = 8, seed: int = 0) -> tuple[Path, dict]:
    """ALBERT-base shapes compressed like EdgeBERT without training (cached): 50 % encoder / 60 % embedding
    magnitude pruning, AF8 weights, AF8 activations (attention included) calibrated on a few synthetic sentences
    (biases shared across layers and across exit heads so the early-exit layer loop still holds), no attention span
    (see docs/bench.md)."""
    onnx_path = work / "albert_base_ee_compressed_af8_attention.onnx"
    info = {"encoder_sparsity": 0.5, "embedding_sparsity": 0.6, "af8_weights": True, "af8_activations": True,
            "af8_attention": True,
            "span": False, "calib_sentences": calib_sentences}
    if onnx_path.exists():
        return onnx_path, info
    import torch

    from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, albert_config
    from edgebert.frontend.models.compressed_export import export_onnx
    from edgebert.frontend.models.compressed_training import calibrate_activations
    from edgebert.frontend.models.pruning import Pruner
    from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset

    work.mkdir(parents=True, exist_ok=True)
    seq = 128
    cfg = albert_config(len(VOCAB), hidden=768, layers=12, heads=12, intermediate=3072, embedding=128,
                        max_positions=seq)
    task = TASKS["sentiment"]
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names))
    torch.manual_seed(seed)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=seed)
    Pruner(model, "magnitude", {"encoder": 0.5, "embedding": 0.6}).apply()
    model.compression.quantize_weights = True
    model.compression.quantize_embeddings = False
    model.freeze_weight_biases()
    model.frozen_weight_biases = _shared_per_layer(model.frozen_weight_biases, r"exits\.\d+\.(.*)$")
    model.eval()
    model.compression.quantize_attention = True  # q, k, v and the probabilities in AF8 too
    calibrate_activations(model, make_dataset("sentiment", calib_sentences, seq, seed=seed + 1))
    aq = model.activation_quant
    aq.finish_calibration(tie_layers=True)  # one bias per point for every layer (and exit head): one loop body
    info["weight_biases"] = sorted(set(model.frozen_weight_biases.values()))
    info["activation_biases"] = {k: v for k, v in sorted(aq.biases.items()) if k.startswith(("layer1.", "exit1.", "emb"))}
    export_onnx(model, onnx_path, seq)
    return onnx_path, info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "edgebert-sst2"))
    p.add_argument("--target", default="50ms")
    p.add_argument("--limit", type=int)
    p.add_argument("--work", default="/tmp/edgebert-albert-base-ee")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.23, 0.28, 0.46])
    p.add_argument("--compressed", action="store_true",
                   help="EdgeBERT-style compression (50/60 %% magnitude pruning, AF8 weights + activations)")
    p.add_argument("--run-hw", help="run the programs (compiled for the default config) on this hardware config")
    args = p.parse_args()
    hw = default_config()
    run_hw = load_config(args.run_hw) if args.run_hw else hw
    data, work = Path(args.data), Path(args.work)
    target = parse_duration(args.target)
    t0 = time.perf_counter()
    if args.compressed:
        model, info = build_compressed(work)
        print(f"compression: {info}")
    else:
        model = build_model(work)
    print(f"model {model} ({model.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    rows = read_entropy_trace(data / "sst2_eval_entropy.txt")[: args.limit]
    results = []
    for threshold in args.thresholds:
        t0 = time.perf_counter()
        opts = EarlyExitOptions(threshold, target, data / "sst2_lookup_table.csv")
        program = compile_onnx(model, hw=hw, early_exit=opts).program
        compile_s = time.perf_counter() - t0
        save_ebin(program, work / f"albert_base{'_c' if args.compressed else ''}_t{threshold:g}.ebin")
        if threshold == args.thresholds[0]:
            print("\n".join(program.metadata["dvfs_plan"]))
            loops = sum(1 for i in program.code if i.mnemonic == "blt")
            print(f"{len(program.code)} instructions, {loops} backward branch(es) (blt): "
                  f"{'looped' if loops else 'unrolled'} layout")
        t0 = time.perf_counter()
        r = run_bench(program, run_hw, [{"entropies": x} for x in rows], timing_only=True, target_s=target)
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
    for threshold, r, _, _ in results:
        parts = "; ".join(f"{mode} " + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in sorted(
            s["energy_breakdown_j"].items(), key=lambda kv: -kv[1]) if v * 1e6 >= 0.05) for mode, s in r["modes"].items())
        print(f"threshold {threshold} energy per component (uJ / sentence): {parts}")
    for threshold, r, compile_s, wall in results:
        print(f"threshold {threshold}: compile {compile_s:.1f} s, {r['sentences']} sentences x 3 modes in {wall:.1f} s")


if __name__ == "__main__":
    main()
