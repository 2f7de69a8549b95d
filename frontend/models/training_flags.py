"""Command-line flags the training scripts share (examples/train_compressed.py, examples/train_multitask.py)."""

from __future__ import annotations

import argparse
from typing import Any

from edgebert.frontend.models.compressed_albert import albert_config
from edgebert.frontend.models.pruning import PRUNING_METHODS
from edgebert.frontend.models.synthetic_tasks import VOCAB


def add_shape_flags(p: argparse.ArgumentParser) -> None:
    """--layers --hidden --heads --intermediate --seq-len: the ALBERT's shape."""
    p.add_argument("--layers", type=int, default=4, metavar="N", help="encoder layers, each with an exit head")
    p.add_argument("--hidden", type=int, default=64, metavar="N", help="hidden size")
    p.add_argument("--heads", type=int, default=4, metavar="N", help="attention heads")
    p.add_argument("--intermediate", type=int, default=None, metavar="N", help="FFN size (default 2 x hidden)")
    p.add_argument("--seq-len", type=int, default=32, metavar="N", help="sequence length of the inputs and the export")


def shape_config(args: argparse.Namespace, **overrides: Any) -> Any:
    """The `AlbertConfig` (synthetic-task vocabulary) of the shape flags."""
    return albert_config(len(VOCAB), hidden=args.hidden, layers=args.layers, heads=args.heads,
                         intermediate=args.intermediate or 2 * args.hidden, max_positions=args.seq_len, **overrides)


def add_compression_flags(p: argparse.ArgumentParser, *, prune_epochs: int, af8_help: str) -> None:
    """--prune --encoder-sparsity --embedding-sparsity --prune-epochs --af8 --af8-activations --af8-attention
    --qat-epochs."""
    p.add_argument("--prune", choices=("none", *PRUNING_METHODS), default="none",
                   help="pruning method of the fine-tune after training (default none)")
    p.add_argument("--encoder-sparsity", type=float, default=0.5, metavar="S",
                   help="share of encoder weights pruned (default 0.5)")
    p.add_argument("--embedding-sparsity", type=float, default=0.6, metavar="S",
                   help="share of embedding weights pruned (default 0.6)")
    p.add_argument("--prune-epochs", type=int, default=prune_epochs, metavar="N",
                   help=f"epochs of the pruning fine-tune (default {prune_epochs})")
    p.add_argument("--af8", action="store_true", help=af8_help)
    p.add_argument("--af8-activations", action="store_true", help="with --af8: also AF8 activations at matmul inputs")
    p.add_argument("--af8-attention", action="store_true",
                   help="with --af8-activations: the attention's q, k, v and probabilities in AF8 too")
    p.add_argument("--qat-epochs", type=int, default=2, metavar="N",
                   help="epochs of the AF8 quantization-aware fine-tune (default 2)")


def check_compression_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error for AF8 flags that need another one."""
    if args.af8_activations and not args.af8:
        parser.error("--af8-activations needs --af8")
    if args.af8_attention and not args.af8_activations:
        parser.error("--af8-attention needs --af8 --af8-activations")
