"""Train an EdgeBERT-style compressed ALBERT on a synthetic task on CPU, prune, quantize and export it to ONNX.

Example (about 2-3 minutes on 2 cores):
    python examples/train_compressed.py --task sentiment --layers 4 --hidden 64 --epochs 12 \
        --prune magnitude --span --af8 -o out/model.pt --onnx out/model.onnx \
        --entropy-trace out/eval_entropy.txt --lookup-table out/lookup_table.csv \
        --calibration-trace out/calib_entropy.txt --eval-inputs out/eval.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgebert.frontend.models import training_flags
from edgebert.frontend.models.compressed_albert import (
    CompressedAlbert,
    CompressionConfig,
    save_compressed,
)
from edgebert.frontend.models.compressed_export import export_onnx
from edgebert.frontend.models.compressed_training import (
    TrainSettings,
    calibrate_activations,
    evaluate_exits,
    record_entropies,
    train,
)
from edgebert.frontend.models.pruning import Pruner
from edgebert.frontend.models.synthetic_tasks import TASKS, make_dataset
from edgebert.frontend.predictor import build_lookup_table
from edgebert.isa.traces import write_entropy_trace, write_lookup_table


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="train_compressed", description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), default="sentiment")
    training_flags.add_shape_flags(p)
    p.add_argument("--embedding", type=int, default=None, help="embedding size (default hidden)")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--eval-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.2, help="exit entropy threshold (metadata, report)")
    p.add_argument("--span", action="store_true", help="learn an adaptive attention span per layer and head")
    p.add_argument("--max-span", type=int, default=None, help="default: seq-len")
    p.add_argument("--ramp", type=int, default=4)
    p.add_argument("--span-penalty", type=float, default=0.05)
    training_flags.add_compression_flags(p, prune_epochs=4,
                                         af8_help="AdaptivFloat-8 weights (quantization-aware fine-tune)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output", default=None, help="checkpoint path (.pt)")
    p.add_argument("--onnx", default=None, help="ONNX export path")
    p.add_argument("--entropy-trace", default=None, help="write per-sentence, per-layer eval entropies here")
    p.add_argument("--lookup-table", default=None, help="write the entropy-prediction table (calibration set)")
    p.add_argument("--calibration-trace", default=None,
                   help="write the calibration set's per-layer entropies (what edgebertc --calibration-entropies reads)")
    p.add_argument("--eval-inputs", default=None,
                   help="write the eval set as an .npz for edgebert-bench --inputs (input_ids, attention_mask, labels)")
    return p


def _phase(name: str, model: CompressedAlbert, data, settings: TrainSettings, pruner: Pruner | None = None) -> None:
    if settings.epochs == 0:  # e.g. an untrained, ALBERT-base-shaped model for the compiler
        if pruner is not None:
            pruner.apply()
        print(f"[{name}] skipped (0 epochs)")
        return
    start = time.time()
    losses = train(model, data, settings, pruner)
    print(f"[{name}] {settings.epochs} epochs, loss {losses[0]:.4f} -> {losses[-1]:.4f} ({time.time() - start:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    """Train, compress, report and export."""
    parser = build_parser()
    args = parser.parse_args(argv)
    training_flags.check_compression_flags(parser, args)
    for out in (args.output, args.onnx, args.entropy_trace, args.lookup_table, args.calibration_trace,
                args.eval_inputs):
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    task = TASKS[args.task]
    train_data = make_dataset(args.task, args.train_size, args.seq_len, seed=args.seed)
    calib_data = make_dataset(args.task, args.eval_size, args.seq_len, seed=args.seed + 1000)
    eval_data = make_dataset(args.task, args.eval_size, args.seq_len, seed=args.seed + 2000)
    config = training_flags.shape_config(args, embedding=args.embedding, dropout=args.dropout)
    max_span = args.max_span or args.seq_len
    compression = CompressionConfig(
        task=task.name,
        num_labels=task.num_labels,
        label_names=list(task.label_names),
        entropy_threshold=args.threshold,
        span_enabled=args.span,
        max_span=max_span,
        span_ramp=args.ramp,
    )
    torch.manual_seed(args.seed)
    model = CompressedAlbert(config, compression)
    model.reset_parameters(seed=args.seed)
    base = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        span_penalty=args.span_penalty if args.span else 0.0,
    )
    _phase("train", model, train_data, base)
    if args.epochs:
        print(evaluate_exits(model, eval_data).format())
    if args.prune != "none":
        targets = {"encoder": args.encoder_sparsity, "embedding": args.embedding_sparsity}
        pruner = Pruner(model, args.prune, targets)
        fine = TrainSettings(
            epochs=args.prune_epochs,
            batch_size=args.batch_size,
            lr=args.lr / 2,
            seed=args.seed + 1,
            span_penalty=base.span_penalty,
        )
        _phase(f"prune {args.prune}", model, train_data, fine, pruner)
        for group, entry in model.sparsity_report().items():
            print(f"  {group}: sparsity {entry['achieved']:.3f} (target {entry['target']:.2f})")
    if args.span:
        spans = model.span.freeze()
        print(f"[span] frozen spans per layer/head (ramp {args.ramp}, max {max_span}): {spans.tolist()}")
    if args.af8:
        model.compression.quantize_weights = True
        if args.af8_activations:
            model.compression.quantize_attention = args.af8_attention
            calibrate_activations(model, calib_data)
        qat = TrainSettings(epochs=args.qat_epochs, batch_size=args.batch_size, lr=args.lr / 4, seed=args.seed + 2)
        if args.qat_epochs:
            _phase("af8 fine-tune", model, train_data, qat)
        model.freeze_weight_biases()
    report = evaluate_exits(model, eval_data)
    print("[final] per-exit accuracy and mean entropy on the eval set")
    print(report.format())
    if args.output:
        save_compressed(model, args.output)
        print(f"wrote {args.output}")
    if args.onnx:
        export_onnx(model, args.onnx, args.seq_len, threshold=args.threshold)
        print(f"wrote {args.onnx}")
    if args.entropy_trace:
        write_entropy_trace(args.entropy_trace, record_entropies(model, eval_data))
        print(f"wrote {args.entropy_trace}")
    if args.lookup_table:
        write_lookup_table(args.lookup_table, build_lookup_table(record_entropies(model, calib_data)))
        print(f"wrote {args.lookup_table}")
    if args.calibration_trace:
        write_entropy_trace(args.calibration_trace, record_entropies(model, calib_data))
        print(f"wrote {args.calibration_trace}")
    if args.eval_inputs:
        np.savez(args.eval_inputs, input_ids=eval_data.input_ids.astype(np.int64),
                 attention_mask=eval_data.attention_mask.astype(np.int64), labels=eval_data.labels.astype(np.int64))
        print(f"wrote {args.eval_inputs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
