"""What attention span, pruning and AdaptivFloat-8 save: one compressed ALBERT compiled with each optimization
added in turn, all run on the same sentence in the same run (MACs, bytes per memory level, eNVM footprint,
energy, cycles).

    python benchmarks/bench_compression.py [--base] [--timing-only]

Default: a small model (4 layers, hidden 64, 4 heads, seq 32). `--base`: ALBERT-base shapes (12 layers, hidden 768,
12 heads, FFN 3072, embedding 128, seq 128). Weights are random (no download); spans, 50 % magnitude pruning of the
encoder and AF8 biases are applied as the training recipe would leave them (spans per head drawn in [8, seq/2],
ramp `--ramp`). Every variant computes the same function as its ONNX export (checked against onnxruntime except
with AF8 activations, which onnxruntime does not model).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def build(base: bool, ramp: int, seed: int = 0):
    """A random compressed ALBERT with spans set, encoder pruned to 50 %, AF8 biases frozen, activations calibrated."""
    import torch

    from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, albert_config
    from edgebert.frontend.models.compressed_training import calibrate_activations
    from edgebert.frontend.models.pruning import Pruner
    from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset

    if base:
        seq, cfg = 128, albert_config(len(VOCAB), hidden=768, layers=12, heads=12, intermediate=3072, embedding=128,
                                      max_positions=128)
    else:
        seq, cfg = 32, albert_config(len(VOCAB), hidden=64, layers=4, heads=4, intermediate=128, max_positions=32)
    task = TASKS["sentiment"]
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names),
                             span_enabled=True, max_span=seq, span_ramp=ramp)
    torch.manual_seed(seed)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=seed)
    rng = np.random.default_rng(seed)
    spans = rng.integers(8, seq // 2 + 1, size=(cfg.num_hidden_layers, cfg.num_attention_heads))
    model.span.set_spans(torch.tensor(spans, dtype=torch.float32))
    model.span.freeze()
    Pruner(model, "magnitude", {"encoder": 0.5}).apply()
    model.compression.quantize_weights = True
    model.compression.quantize_embeddings = False
    model.freeze_weight_biases()
    model.eval()
    model.compression.quantize_attention = True  # calibrate the attention points too (exported only when asked)
    calibrate_activations(model, make_dataset("sentiment", 32, seq, seed=seed + 1))
    return model, seq


def export_variant(model, seq: int, path: Path, span: bool, af8: bool, act: bool, attn: bool) -> None:
    """Export the same model with the chosen optimizations visible to the compiler."""
    from edgebert.frontend.models.compressed_export import export_onnx

    model.compression.span_enabled = span
    model.compression.quantize_weights = af8
    model.compression.quantize_activations = act
    model.compression.quantize_attention = attn
    export_onnx(model, path, seq)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", action="store_true", help="ALBERT-base shapes, seq 128")
    p.add_argument("--ramp", type=int, default=4, help="adaptive span ramp length (default 4)")
    p.add_argument("--timing-only", action="store_true", help="emulate costs only (fast on --base)")
    args = p.parse_args(argv)

    import onnxruntime as ort

    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.emulator.runner import run
    from edgebert.frontend.models.synthetic_tasks import make_dataset

    model, seq = build(args.base, args.ramp)
    data = make_dataset("sentiment", 1, seq, seed=7)
    inputs = {"input_ids": data.input_ids[:1], "attention_mask": data.attention_mask[:1]}
    variants = [  # name, span, prune (sparse storage), AF8 weights, AF8 activations, AF8 attention
        ("dense fp32", False, False, False, False, False),
        ("+ attention span", True, False, False, False, False),
        ("+ pruning (sparse)", True, True, False, False, False),
        ("+ AF8 weights", True, True, True, False, False),
        ("+ AF8 activations", True, True, True, True, False),
        ("+ AF8 attention", True, True, True, True, True),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, span, prune, af8, act, attn in variants:
            path = Path(tmp) / "m.onnx"
            export_variant(model, seq, path, span, af8, act, attn)
            # ALBERT-base: the exit heads inside the layer loop (early-exit lowering, here never taken) keep the
            # 12 layers' activations from being unrolled past the SRAM
            compiled = compile_onnx(path, compress=prune or af8, early_exit=True if args.base else None)
            # timing-only needs injected entropies: +inf never exits (early exit is disabled anyway)
            entropies = [math.inf] * 64 if args.timing_only else None
            res = run(compiled.program, inputs, timing_only=args.timing_only, disable_early_exit=True,
                      entropy_values=entropies)
            rep = res.report
            err = float("nan")
            if not args.timing_only and not act and not args.base:
                sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                ref = sess.run(None, inputs)
                err = max(float(np.max(np.abs(res.outputs[n].reshape(r.shape) - r)))
                          for n, r in zip(res.outputs, ref, strict=True))
            envm_bytes = sum(b.nbytes for b in compiled.tile_program.buffers if b.kind == "const")
            rows.append((name, rep["macs"], rep["traffic_bytes"]["envm"]["read"], envm_bytes,
                         rep["traffic_bytes"]["sram"]["read"] + rep["traffic_bytes"]["sram"]["write"],
                         rep["energy_j"], rep["cycles"], err))
    shape = "ALBERT-base shapes, seq 128" if args.base else "4 layers, hidden 64, seq 32"
    print(f"compressed ALBERT ({shape}), one sentence, every exit head computed (no early exit)")
    print(f"{'variant':22s} {'MACs':>13s} {'eNVM read B':>12s} {'eNVM store B':>12s} {'SRAM B':>12s} "
          f"{'energy uJ':>10s} {'cycles':>11s} {'x energy':>8s} {'max err vs ORT':>14s}")
    base_e = rows[0][5]
    for name, macs, er, es, sram, energy, cycles, err in rows:
        print(f"{name:22s} {macs:13,d} {er:12,d} {es:12,d} {sram:12,d} {energy * 1e6:10.3f} {cycles:11,d} "
              f"{base_e / energy:8.2f} {err:14.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
