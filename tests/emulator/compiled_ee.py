"""Early-exit (+ latency-aware DVFS) programs compiled by `compile_onnx` from an untrained tiny compressed ALBERT
(50 % magnitude-pruned encoder, AF8 weights: sparse AF8 matmuls in one layer loop), and their onnxruntime reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from edgebert.compiler.dvfs_plan import LayerCycles, all_fastest_s
from edgebert.compiler.early_exit import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.frontend.models.compressed_albert import (
    CompressedAlbert,
    CompressionConfig,
    albert_config,
    early_exit_layer,
    exit_entropy_np,
)
from edgebert.frontend.models.compressed_export import export_onnx
from edgebert.frontend.models.pruning import Pruner
from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset
from edgebert.isa.hardware import default_config
from edgebert.isa.program import Program

SEQ = 16


def export_compressed(path: Path, layers: int, threshold: float, seed: int = 0) -> Path:
    """ONNX of an untrained compressed ALBERT (hidden 32, 2 heads, exit head per layer) with `threshold` in its
    metadata."""
    task = TASKS["sentiment"]
    cfg = albert_config(len(VOCAB), hidden=32, layers=layers, heads=2, intermediate=64, embedding=16,
                        max_positions=SEQ, dropout=0.0)
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names),
                             entropy_threshold=threshold)
    torch.manual_seed(seed)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=seed)
    model.spread_untrained(seed + 1)  # ALBERT's init gives every head ~equal logits (entropy ln 2)
    Pruner(model, "magnitude", {"encoder": 0.5}).apply()
    model.compression.quantize_weights = True
    model.compression.quantize_embeddings = False
    model.freeze_weight_biases()
    export_onnx(model.eval(), str(path), SEQ, threshold=threshold)
    return path


def predictor_for(exits: np.ndarray, layers: int) -> np.ndarray:
    """A lookup table (EdgeBERT format) whose bin b predicts exit layer exits[b] at any threshold in (0, 1]."""
    table = np.ones((100, layers - 1))
    table[:, 0] = np.arange(100) * 0.01
    for b, p in enumerate(exits):
        if p < layers:
            table[b, p - 1] = 0.0  # column j predicts layer j + 1
    return table


def compile_planned(onnx: Path, threshold: float, exits: np.ndarray, layers: int, target_over_fastest: float,
                    **options: Any) -> Program:
    """Early exit + DVFS with a latency target `target_over_fastest` times the all-fastest L-layer latency (a first
    compile measures the cycles; the plan depends on nothing else); `options`: more EarlyExitOptions fields."""
    table = predictor_for(exits, layers)
    probe = compile_onnx(onnx, early_exit=EarlyExitOptions(threshold, 1.0, table, **options)).program
    plan = probe.metadata["dvfs_table"]
    cycles = LayerCycles(**plan["cycles"])
    target = target_over_fastest * all_fastest_s(default_config(), cycles, plan["fastest"], layers)
    return compile_onnx(onnx, early_exit=EarlyExitOptions(threshold, target, table, **options)).program


def sentences(n: int, seed: int = 7) -> list[dict[str, np.ndarray]]:
    """`n` synthetic sentiment sentences as program inputs ([1, SEQ] int64 ids and mask)."""
    data = make_dataset("sentiment", n, SEQ, seed=seed)
    ids, mask = np.asarray(data.input_ids, np.int64), np.asarray(data.attention_mask, np.int64)
    return [{"input_ids": ids[i : i + 1], "attention_mask": mask[i : i + 1]} for i in range(n)]


def reference_exit_layers(onnx: Path, inputs: list[dict[str, np.ndarray]], threshold: float) -> list[int]:
    """The exit rule applied to onnxruntime's exit-head logits, per sentence."""
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    out = []
    for x in inputs:
        heads = session.run(None, x)
        ent = np.array([exit_entropy_np(h)[0] for h in heads])[:, None]
        out.append(int(early_exit_layer(ent, threshold)[0]))
    return out
