"""Train adapter-ALBERT on CPU: a shared compressed backbone, per-task adapters and exit heads; one ONNX per task.

Progress (per epoch: loss, accuracy, ETA) on a terminal; -q prints only warnings and errors.

Example (timings in docs/multitask_model.md):
    python examples/train_multitask.py --tasks sentiment topic valence --layers 4 --hidden 64 \
        --prune magnitude --af8 -o out/multitask.pt --onnx-dir out/multitask
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from edgebert.frontend.models import training_flags
from edgebert.frontend.models.adapters import PLACEMENTS, AdapterConfig
from edgebert.frontend.models.compressed_albert import CompressionConfig
from edgebert.frontend.models.compressed_training import TrainSettings
from edgebert.frontend.models.multitask_albert import MultiTaskAlbert, footprint_bytes, save_multitask
from edgebert.frontend.models.multitask_export import export_all_tasks
from edgebert.frontend.models.multitask_training import MultiTaskRecipe, run_recipe
from edgebert.frontend.models.synthetic_tasks import TASKS, make_dataset
from edgebert.isa.cli_common import add_verbosity, add_version
from edgebert.isa.progress import terminal_progress


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="train_multitask", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["sentiment", "topic", "valence"],
                   help="the tasks of the program (default all three)")
    p.add_argument(
        "--pretrain-tasks",
        nargs="+",
        choices=sorted(TASKS),
        default=None,
        help="tasks that pre-train the backbone (default: all of --tasks)",
    )
    training_flags.add_shape_flags(p)
    p.add_argument("--bottleneck", type=int, default=8, metavar="N", help="adapter bottleneck size (default 8)")
    p.add_argument("--placement", choices=sorted(PLACEMENTS), default="houlsby",
                   help="where adapters sit in a layer (default houlsby: after attention and after the FFN)")
    p.add_argument("--shared-depth", action="store_true", help="one adapter per site for all depths")
    p.add_argument("--adapter-activation", choices=("relu", "gelu_new"), default="relu",
                   help="adapter activation (default relu)")
    p.add_argument("--train-size", type=int, default=3000, help="per task")
    p.add_argument("--eval-size", type=int, default=1000, help="per task")
    p.add_argument("--pretrain-epochs", type=int, default=6, metavar="N", help="backbone pre-training epochs (default 6)")
    p.add_argument("--adapter-epochs", type=int, default=6, metavar="N", help="adapter epochs per task (default 6)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="sentences per batch (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="backbone peak learning rate (default 1e-3)")
    p.add_argument("--adapter-lr", type=float, default=3e-3, help="adapter peak learning rate (default 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and batches (default 0)")
    p.add_argument("--threshold", type=float, default=0.2, help="exit entropy threshold in the exported metadata")
    training_flags.add_compression_flags(
        p, prune_epochs=3, af8_help="AF8 weights (backbone QAT fine-tune, adapters trained in AF8; with "
        "--af8-activations one activation bias per point for all tasks)")
    p.add_argument(
        "--heads-only-baseline",
        action="store_true",
        help="also train and report heads alone on the frozen backbone (no adapters)",
    )
    p.add_argument("--threads", type=int, default=2, metavar="N", help="torch CPU threads (default 2)")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="checkpoint path (.pt)")
    p.add_argument("--onnx-dir", default=None, metavar="DIR", help="write {task}.onnx here")
    add_verbosity(p)
    add_version(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Pre-train and compress the backbone, train adapters per task, report, export."""
    parser = build_parser()
    args = parser.parse_args(argv)
    training_flags.check_compression_flags(parser, args)
    torch.set_num_threads(args.threads)
    train_sets = {t: make_dataset(t, args.train_size, args.seq_len, seed=args.seed) for t in args.tasks}
    eval_sets = {t: make_dataset(t, args.eval_size, args.seq_len, seed=args.seed + 2000) for t in args.tasks}
    config = training_flags.shape_config(args)
    adapters = AdapterConfig(
        bottleneck=args.bottleneck,
        placement=args.placement,
        per_depth=not args.shared_depth,
        activation=args.adapter_activation,
    )
    torch.manual_seed(args.seed)
    mt = MultiTaskAlbert(config, args.tasks, CompressionConfig(entropy_threshold=args.threshold), adapters)
    bs, seed = args.batch_size, args.seed
    recipe = MultiTaskRecipe(
        pretrain_tasks=args.pretrain_tasks,
        pretrain=TrainSettings(epochs=args.pretrain_epochs, batch_size=bs, lr=args.lr, seed=seed),
        prune_method=args.prune,
        sparsity_targets={"encoder": args.encoder_sparsity, "embedding": args.embedding_sparsity},
        prune=TrainSettings(epochs=args.prune_epochs, batch_size=bs, lr=args.lr / 2, seed=seed + 1),
        af8=args.af8,
        af8_activations=args.af8_activations,
        af8_attention=args.af8_attention,
        qat=TrainSettings(epochs=args.qat_epochs, batch_size=bs, lr=args.lr / 4, seed=seed + 2),
        adapters=TrainSettings(epochs=args.adapter_epochs, batch_size=bs, lr=args.adapter_lr, seed=seed + 3),
        heads_only_baseline=args.heads_only_baseline,
    )
    start = time.time()
    with terminal_progress(args.quiet) as progress:
        report = run_recipe(mt, train_sets, eval_sets, recipe, progress)
    if args.quiet:
        _write(args, mt)
        return 0
    print(f"[train] {time.time() - start:.0f} s; pre-train losses {[round(x, 4) for x in report.pretrain_losses]}")
    for t, losses in report.adapter_losses.items():
        print(f"[adapters {t}] loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    for group, entry in mt.backbone.sparsity_report().items():
        print(f"[sparsity] {group}: {entry['achieved']:.3f} (target {entry['target']:.2f})")
    print("[final] per-task, per-exit accuracy and mean entropy on the eval set (adapters on, backbone frozen)")
    print(report.format())
    print("[parameters] " + json.dumps(mt.parameter_counts()))
    print("[bytes] " + json.dumps(footprint_bytes(mt)))
    for line in _write(args, mt):
        print(line)
    return 0


def _write(args: argparse.Namespace, mt: MultiTaskAlbert) -> list[str]:
    """The checkpoint and the per-task ONNX files the flags ask for; what was written."""
    lines = []
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        save_multitask(mt, args.output)
        lines.append(f"wrote {args.output}")
    if args.onnx_dir:
        for task, path in export_all_tasks(mt, args.onnx_dir, args.seq_len).items():
            lines.append(f"wrote {path} ({task})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
