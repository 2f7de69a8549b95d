"""A tiny trained adapter-ALBERT (3 tasks, AF8 + pruned backbone) exported per task, for the multi-task tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgebert.frontend.models.adapters import AdapterConfig
from edgebert.frontend.models.compressed_albert import CompressionConfig, albert_config
from edgebert.frontend.models.compressed_training import TrainSettings
from edgebert.frontend.models.multitask_albert import MultiTaskAlbert
from edgebert.frontend.models.multitask_export import export_all_tasks
from edgebert.frontend.models.multitask_training import (
    calibrate_task_activations,
    make_backbone_pruner,
    pretrain_backbone,
    train_task_adapters,
)
from edgebert.frontend.models.synthetic_tasks import VOCAB, make_dataset
from edgebert.isa.table import SPACES

TASK_NAMES = ["sentiment", "topic", "valence"]
SEQ, LAYERS, HIDDEN, BOTTLENECK = 16, 3, 32, 8


def train_tiny(af8: bool = True, seed: int = 0, per_depth: bool = True, af8_activations: bool = False,
               af8_attention: bool = False) -> MultiTaskAlbert:
    """A few epochs of each phase (seconds on one core): pre-train, prune, AF8 QAT, adapters per task (and with
    af8_activations, one AF8 bias per activation point calibrated over every task)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = albert_config(len(VOCAB), hidden=HIDDEN, layers=LAYERS, heads=2, intermediate=64, max_positions=SEQ)
    mt = MultiTaskAlbert(cfg, TASK_NAMES, CompressionConfig(), AdapterConfig(bottleneck=BOTTLENECK, per_depth=per_depth))
    train = {t: make_dataset(t, 300, SEQ, seed=0) for t in TASK_NAMES}
    pretrain_backbone(mt, train, TrainSettings(epochs=2, lr=4e-3))
    pruner = make_backbone_pruner(mt, "magnitude", {"encoder": 0.5, "embedding": 0.6})
    pretrain_backbone(mt, train, TrainSettings(epochs=1, lr=1e-3, seed=1), pruner)
    if af8:
        mt.set_compression(quantize_weights=True)
        pretrain_backbone(mt, train, TrainSettings(epochs=1, lr=5e-4, seed=2))
        mt.freeze_backbone_weight_biases()
    for t in TASK_NAMES:
        mt.task(t).reset_task_parameters(0)
        train_task_adapters(mt, t, train[t], TrainSettings(epochs=2, lr=5e-3, seed=3), seed=0)
    if af8:
        mt.share_task_weight_biases()
    if af8_activations:
        calibrate_task_activations(mt, train, attention=af8_attention)
    return mt.eval()


def export_tiny(out_dir: str | Path, af8: bool = True, thresholds: dict[str, float] | None = None,
                per_depth: bool = True) -> dict[str, Path]:
    """Train and export; task -> ONNX path."""
    mt = train_tiny(af8, per_depth=per_depth)
    mt.eval()
    return export_all_tasks(mt, out_dir, SEQ, thresholds=thresholds)


def sentences(task: str, n: int, seed: int = 7) -> list[dict]:
    """`n` inputs (input_ids int64 [1, SEQ], attention_mask int64 [1, SEQ]) of `task`'s eval distribution."""
    data = make_dataset(task, n, SEQ, seed=seed)
    out = []
    for i in range(n):
        out.append({"input_ids": np.asarray(data.input_ids[i : i + 1]), "attention_mask": np.asarray(data.attention_mask[i : i + 1])})
    return out


def task_weight_reads(program) -> list[tuple[str, str, int, str]]:
    """(mnemonic, operand, base register, space) of every operand of the shared body that reads a task block: through
    r14, or at an address inside the SRAM task region / the task store (the looped heads' r7-indexed table)."""
    mt = program.metadata["multitask"]
    spans = [(t["block"]["space"], t["block"]["address"], t["block"]["address"] + t["block"]["bytes"])
             for t in mt["tasks"]]
    if mt["task_region"]:
        reg = mt["task_region"]
        spans.append(("sram", reg["address"], reg["address"] + reg["bytes"]))
    out = []
    for inst in program.code[mt["entry_instructions"]:]:
        for name, base in inst.values.items():
            if not name.endswith("_base") or name == "dst_base":
                continue
            op = name[: -len("_base")]
            space = SPACES[inst.values[f"{op}_space"]] if f"{op}_space" in inst.values else "sram"
            addr = inst.values[op]
            if base == 14 or any(space == sp and lo <= addr < hi for sp, lo, hi in spans):
                out.append((inst.mnemonic, op, base, space))
    return out
