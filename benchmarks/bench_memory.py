"""Memory hierarchy benchmark: ALBERT-base (seq 128) compiled for SRAMs of several sizes, run on the emulator.

    python benchmarks/bench_memory.py [--sizes 4M,1M,256K,128K] [--no-cmod] [--no-min] [--compressed]
        [--work /tmp/edgebert-bench-memory]

For each SRAM size of `ideal-256mac` (the rest of the config unchanged) and for `edgebert-cmod` (its own 151,808-byte
buffer set), prints, measured in the same run:
  cycles, energy, bytes per memory level, max abs error vs onnxruntime (fp32), instructions, compile wall time;
  cycles / roofline: the roofline is the max over resources of PU MACs at the config's peak rate
    (`Costs.peak_macs_per_cycle` for the operand formats the program multiplies: fp32, AF8), every memory level's
    bytes / bandwidth (DRAM and eNVM; SRAM: the bytes its DMA port carries, the PU's and SFU's operand reads being
    in their own terms) and the SFU's work (its busy cycles) - target <= 1.25x;
  DRAM + eNVM bytes / the compulsory-traffic lower bound (compiler/hierarchy/traffic_bound.py) - target <= 1.5x;
then the smallest SRAM that compiles (a search over 4 KiB steps). `--compressed`: the AF8 + pruned + span model of
bench_compression.py --base with early exit and DVFS at the same sizes: exit layers and logits of a few sentences
against the 4 MiB program (bit-identical expected). Wall times are noisy on a shared machine; cycles and bytes are
deterministic.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SIZES = {"4M": 4 << 20, "2M": 2 << 20, "1M": 1 << 20, "512K": 512 << 10, "256K": 256 << 10, "128K": 128 << 10}


def with_sram(hw, size: int):
    sram = dataclasses.replace(hw.memory.sram, size_bytes=size)
    return dataclasses.replace(hw, name=f"{hw.name}-sram{size}", memory=dataclasses.replace(hw.memory, sram=sram))


def roofline(report: dict, hw) -> tuple[float, str, dict[str, float]]:
    """(bound cycles, the resource bounding it, every resource's cycles) of one run: `emulator.roofline`."""
    from edgebert.emulator.roofline import program_roofline

    return program_roofline(report, hw)


def compile_timed(model, hw, **kw):
    from edgebert.compiler.pipeline import compile_onnx

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    result = compile_onnx(model, 128, hw, timings=timings, **kw)
    stages = sum(v for k, v in timings.items() if not k.startswith("relax:"))
    return result, time.perf_counter() - t0, stages


def row(label: str, hw, model, inputs, want) -> dict:
    from edgebert.compiler.hierarchy.traffic_bound import traffic_bound
    from edgebert.emulator import run

    res, wall, stages = compile_timed(model, hw)
    out = run(res.program, inputs, hw)
    rep = out.report
    err = max(float(np.max(np.abs(out.outputs[k].astype(np.float64) - v))) for k, v in want.items())
    bound, by, _ = roofline(rep, hw)
    t = rep["traffic_bytes"]
    offchip = sum(t[lv]["read"] + t[lv]["write"] for lv in ("dram", "envm"))
    lb = traffic_bound(res.trace, res.trace.loops, hw.memory.sram.size_bytes)
    print(f"# {label}: bounds (cycles) " + ", ".join(f"{k} {v:,.0f}" for k, v in roofline(rep, hw)[2].items()),
          flush=True)
    return {"label": label, "cycles": rep["cycles"], "bound": bound, "by": by, "energy_uj": rep["energy_j"] * 1e6,
            "dram": t["dram"]["read"] + t["dram"]["write"], "envm": t["envm"]["read"] + t["envm"]["write"],
            "sram": t["sram"]["read"] + t["sram"]["write"], "lb": lb.bytes, "offchip": offchip, "err": err,
            "insts": len(res.program.code), "compile_s": stages, "plan": res.memory_plan is not None,
            "races": rep["race_count"]}


def print_table(rows: list[dict]) -> None:
    print("| SRAM | plan | cycles | roofline (bound) | cycles / roofline | energy uJ | DRAM B | eNVM B | SRAM B "
          "| lower bound B | (DRAM+eNVM) / bound | max err | instructions | compile s (wall) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {'blocked' if r['plan'] else 'resident'} | {r['cycles']:,} | {r['bound']:,.0f} "
              f"({r['by']}) | **{r['cycles'] / r['bound']:.3f}x** | {r['energy_uj']:.0f} | {r['dram']:,} "
              f"| {r['envm']:,} | {r['sram']:,} | {r['lb']:,} | **{r['offchip'] / r['lb']:.3f}x** | {r['err']:.1e} "
              f"| {r['insts']:,} | {r['compile_s']:.2f} |")


def smallest_sram(model, hw, hi: int, step: int = 4096) -> int:
    """The smallest SRAM (a multiple of `step`) the model compiles for, below `hi` (which compiles)."""
    from edgebert.compiler.errors import SramOverflow
    from edgebert.compiler.pipeline import compile_onnx

    lo = step
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        try:
            compile_onnx(model, 128, with_sram(hw, mid))
            hi = mid
        except SramOverflow:
            lo = mid
    return hi


def compressed_rows(work: Path, sizes: list[tuple[str, int]], cmod) -> None:
    """The AF8 + pruned + span model with early exit and DVFS: exit layers and logits vs the 4 MiB program."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_compression import build, export_variant

    from edgebert.compiler.options import EarlyExitOptions
    from edgebert.emulator import run
    from edgebert.frontend.models.synthetic_tasks import make_dataset
    from edgebert.isa.hardware import load_config
    from edgebert.isa.traces import write_entropy_trace

    path = work / "albert_base_compressed.onnx"
    if not path.exists():
        model, seq = build(base=True, ramp=4)
        export_variant(model, seq, path, span=True, af8=True, act=True, attn=True)
    cal = work / "cal.txt"
    rng = np.random.default_rng(0)
    write_entropy_trace(cal, np.abs(rng.normal(0.55, 0.1, (300, 12))))
    ds = make_dataset("sentiment", 6, 128, seed=5)
    xs = [{"input_ids": ds.input_ids[i:i + 1].astype(np.int64),
           "attention_mask": ds.attention_mask[i:i + 1].astype(np.int64)} for i in range(6)]
    # the threshold: between the middle exit-1 entropies of these sentences (the all-heads program, emulated)
    heads = compile_timed(path, load_config("ideal-256mac"))[0].program
    ents = sorted(_entropy(run(heads, x).outputs["exit_1_logits"]) for x in xs)
    threshold = (ents[2] + ents[3]) / 2
    print(f"threshold {threshold:.6f} (exit-1 entropies {', '.join(f'{e:.6f}' for e in ents)})")
    opts = EarlyExitOptions(threshold=threshold, latency_target_s=0.5, calibration_entropies=cal)
    base = load_config("ideal-256mac")
    configs = [(label, with_sram(base, size) if size != base.memory.sram.size_bytes else base)
               for label, size in sizes] + ([("edgebert-cmod", cmod)] if cmod is not None else [])
    ref = None
    print("| SRAM | compile s (wall) | instructions | layout | exit layers | cycles (sentence 1) | vs the 4 MiB program |")
    print("|---|---|---|---|---|---|---|")
    for label, hw in configs:
        res, _, stages = compile_timed(path, hw, early_exit=opts)
        outs = [run(res.program, x, hw) for x in xs]
        got = [(o.exit_layer, o.outputs["logits"].copy()) for o in outs]
        if ref is None:
            ref, same = got, "reference"
        elif label == "edgebert-cmod":
            same = "exits equal" if [g[0] for g in got] == [r[0] for r in ref] else "exits DIFFER"
            same += ", logits " + ("bit-identical" if all(np.array_equal(g[1], r[1]) for g, r in zip(got, ref, strict=True))
                                   else "differ")
        else:
            same = "bit-identical" if all(g[0] == r[0] and np.array_equal(g[1], r[1]) for g, r in zip(got, ref, strict=True)) \
                else "DIFFER"
        layout = res.program.metadata.get("early_exit", {}).get("layout", "").split(":")[0]
        print(f"| {label} | {stages:.1f} | {len(res.program.code):,} | {layout} | {[g[0] for g in got]} "
              f"| {outs[0].report['cycles']:,} | {same} |")


def _entropy(logits: np.ndarray) -> float:
    z = logits.reshape(-1).astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="4M,1M,256K,128K",
                   help="SRAM sizes (K/M suffixes) to compile ideal-256mac for, comma-separated")
    p.add_argument("--no-cmod", action="store_true", help="skip the edgebert-cmod row (its buffer set)")
    p.add_argument("--no-min", action="store_true", help="skip the search for the smallest SRAM that compiles")
    p.add_argument("--compressed", action="store_true", help="also the AF8 + pruned + span early-exit model")
    p.add_argument("--no-fp32", action="store_true", help="skip the fp32 table (with --compressed)")
    p.add_argument("--work", type=Path, default=None,
                   help="where the models and programs are written (default: a temporary folder)")
    args = p.parse_args(argv)

    import onnxruntime as ort

    from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export, make_inputs
    from edgebert.isa.hardware import load_config

    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "albert-base.onnx"
    spec = ExportSpec(seq_len=128, outputs=("logits", "last_hidden_state", "pooler_output"))
    _, cfg = build_and_export(model, preset="albert-base", spec=spec, seed=0)
    inputs = make_inputs(128, cfg.vocab_size, pad=5, seed=0)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs), strict=True))

    base = load_config("ideal-256mac")
    sizes = [(s, SIZES[s]) for s in args.sizes.split(",")]
    cmod = None if args.no_cmod else load_config("edgebert-cmod")
    if args.no_fp32:
        print("AF8 + 50 % pruned + span ALBERT-base, early exit and DVFS, 6 sentences:")
        compressed_rows(work, sizes, cmod)
        return 0
    rows = []
    for label, size in sizes:
        hw = base if size == base.memory.sram.size_bytes else with_sram(base, size)
        rows.append(row(f"{label} ({base.name})", hw, model, inputs, want))
        print(f"# {rows[-1]}", flush=True)
    if cmod is not None:
        rows.append(row(f"{cmod.memory.sram.size_bytes:,} B (edgebert-cmod)", cmod, model, inputs, want))
        print(f"# {rows[-1]}", flush=True)
    print(f"\nALBERT-base (seq 128, fp32, random init), {base.name} with the SRAM size changed, and edgebert-cmod:")
    print_table(rows)
    if not args.no_min:
        hi = min(size for _, size in sizes)
        print(f"\nsmallest SRAM that compiles ({base.name}, 4 KiB steps): {smallest_sram(model, base, hi):,} bytes")
    if args.compressed:
        print("\nAF8 + 50 % pruned + span ALBERT-base, early exit and DVFS, 6 sentences:")
        compressed_rows(work, sizes, cmod)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
