"""Train an EdgeBERT-style compressed ALBERT on a synthetic task on CPU, prune, quantize and export it to ONNX.

Example (the README's command; timings in docs/compressed_model.md):
    python examples/train_compressed.py --task sentiment --layers 4 --hidden 64 --seq-len 32 --epochs 12 \
        --prune movement --span --af8 --af8-activations --af8-attention -o out/model.pt --onnx out/model.onnx \
        --entropy-trace out/eval_entropy.txt --lookup-table out/lookup_table.csv \
        --calibration-trace out/calib_entropy.txt --eval-inputs out/eval.npz

Progress (per epoch: loss, accuracy, ETA) on a terminal; -q prints only warnings and errors.
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
from edgebert.isa.cli_common import add_verbosity, add_version
from edgebert.isa.progress import Progress, terminal_progress
from edgebert.isa.traces import write_entropy_trace, write_lookup_table


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="train_compressed", description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), default="sentiment",
                   help="synthetic task (frontend/models/synthetic_tasks.py; default sentiment)")
    training_flags.add_shape_flags(p)
    p.add_argument("--embedding", type=int, default=None, metavar="N", help="embedding size (default hidden)")
    p.add_argument("--dropout", type=float, default=0.0, metavar="P", help="dropout probability (default 0)")
    p.add_argument("--train-size", type=int, default=4000, metavar="N", help="training sentences (default 4000)")
    p.add_argument("--eval-size", type=int, default=1000, metavar="N",
                   help="sentences of the eval set and of the calibration set each (default 1000)")
    p.add_argument("--epochs", type=int, default=12, metavar="N", help="training epochs (default 12; 0: untrained)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="sentences per batch (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, initialisation and batches (default 0)")
    p.add_argument("--threshold", type=float, default=0.2, help="exit entropy threshold (metadata, report)")
    p.add_argument("--span", action="store_true", help="learn an adaptive attention span per layer and head")
    p.add_argument("--max-span", type=int, default=None, metavar="N", help="largest span (default: --seq-len)")
    p.add_argument("--ramp", type=int, default=4, metavar="N", help="length of the span's soft ramp (default 4)")
    p.add_argument("--span-penalty", type=float, default=0.05, metavar="W",
                   help="weight of the mean-span penalty in the loss (default 0.05)")
    training_flags.add_compression_flags(p, prune_epochs=4,
                                         af8_help="AdaptivFloat-8 weights (quantization-aware fine-tune)")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="torch CPU threads (default 2)")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="checkpoint path (.pt)")
    p.add_argument("--onnx", default=None, metavar="FILE", help="ONNX export path")
    p.add_argument("--entropy-trace", default=None, metavar="FILE",
                   help="write per-sentence, per-layer eval entropies here")
    p.add_argument("--lookup-table", default=None, metavar="FILE",
                   help="write the entropy-prediction table (calibration set)")
    p.add_argument("--calibration-trace", default=None, metavar="FILE",
                   help="write the calibration set's per-layer entropies (what edgebertc --calibration-entropies reads)")
    p.add_argument("--eval-inputs", default=None, metavar="FILE",
                   help="write the eval set as an .npz for edgebert-bench --inputs (input_ids, attention_mask, labels)")
    add_verbosity(p)
    add_version(p)
    return p


def _phase(name: str, model: CompressedAlbert, data, settings: TrainSettings, progress: Progress,  # noqa: ANN001
           pruner: Pruner | None = None) -> None:
    if settings.epochs == 0:  # e.g. an untrained, ALBERT-base-shaped model for the compiler
        if pruner is not None:
            pruner.apply()
        progress.note(f"[{name}] skipped (0 epochs)")
        return
    start = time.time()
    losses = train(model, data, settings, pruner, progress=progress, phase=name)
    progress.note(f"[{name}] {settings.epochs} epochs, loss {losses[0]:.4f} -> {losses[-1]:.4f} "
                  f"({time.time() - start:.0f} s)")


def _quiet(*_: object) -> None:
    """-q: results are not printed (the files are still written)."""


def main(argv: list[str] | None = None) -> int:
    """Train, compress, report and export."""
    parser = build_parser()
    args = parser.parse_args(argv)
    training_flags.check_compression_flags(parser, args)
    with terminal_progress(args.quiet) as progress:
        return _train(args, progress)


def _train(args: argparse.Namespace, progress: Progress) -> int:
    say = _quiet if args.quiet else print  # results on stdout; progress and per-epoch notes on stderr
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
    _phase("train", model, train_data, base, progress)
    if args.epochs:
        say(evaluate_exits(model, eval_data).format())
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
        _phase(f"prune {args.prune}", model, train_data, fine, progress, pruner)
        for group, entry in model.sparsity_report().items():
            say(f"  {group}: sparsity {entry['achieved']:.3f} (target {entry['target']:.2f})")
    if args.span:
        spans = model.span.freeze()
        say(f"[span] frozen spans per layer/head (ramp {args.ramp}, max {max_span}): {spans.tolist()}")
    if args.af8:
        model.compression.quantize_weights = True
        if args.af8_activations:
            model.compression.quantize_attention = args.af8_attention
            calibrate_activations(model, calib_data, progress=progress)
        qat = TrainSettings(epochs=args.qat_epochs, batch_size=args.batch_size, lr=args.lr / 4, seed=args.seed + 2)
        if args.qat_epochs:
            _phase("af8 fine-tune", model, train_data, qat, progress)
        model.freeze_weight_biases()
    report = evaluate_exits(model, eval_data)
    say("[final] per-exit accuracy and mean entropy on the eval set")
    say(report.format())
    if args.output:
        save_compressed(model, args.output)
        say(f"wrote {args.output}")
    if args.onnx:
        export_onnx(model, args.onnx, args.seq_len, threshold=args.threshold)
        say(f"wrote {args.onnx}")
    if args.entropy_trace:
        write_entropy_trace(args.entropy_trace, record_entropies(model, eval_data))
        say(f"wrote {args.entropy_trace}")
    if args.lookup_table:
        write_lookup_table(args.lookup_table, build_lookup_table(record_entropies(model, calib_data)))
        say(f"wrote {args.lookup_table}")
    if args.calibration_trace:
        write_entropy_trace(args.calibration_trace, record_entropies(model, calib_data))
        say(f"wrote {args.calibration_trace}")
    if args.eval_inputs:
        np.savez(args.eval_inputs, input_ids=eval_data.input_ids.astype(np.int64),
                 attention_mask=eval_data.attention_mask.astype(np.int64), labels=eval_data.labels.astype(np.int64))
        say(f"wrote {args.eval_inputs}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
