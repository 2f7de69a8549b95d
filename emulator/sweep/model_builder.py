"""Workload models built for a sweep (`[workloads.build]`): an untrained compressed ALBERT with an exit head per layer,
exported to ONNX, plus synthetic sentences and the model's own exit-entropy trace (onnxruntime), cached by options.

Random weights (no download): ALBERT's initialisation, LayerNorms re-randomised, the exit heads' weights widened so
their entropies spread (ALBERT's init gives every head about ln 2). Compression as EdgeBERT's recipe without
training: magnitude pruning of the encoder / word embeddings, AF8 weights (one bias per exit-head weight, the
widest, so the layer + exit body stays one loop), calibrated AF8 activations at every matmul input including the
attention (`af8_activations`, biases tied across layers). torch is imported only when a model is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.isa.errors import EdgebertError

#: `preset` names: shapes the options start from (the other keys override them).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"layers": 4, "hidden": 32, "heads": 2, "intermediate": 64, "embedding": 16, "seq_len": 16},
    "albert-base": {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "embedding": 128, "seq_len": 128},
}
CALIBRATION_SENTENCES = 8


@dataclass(frozen=True)
class BuildOptions:
    """What to build; `[workloads.build]` keys are these field names (and `preset`)."""

    layers: int = 4
    hidden: int = 32
    heads: int = 2
    intermediate: int = 64
    embedding: int = 16
    seq_len: int = 16
    encoder_sparsity: float = 0.0  # fraction of encoder weights pruned by magnitude
    embedding_sparsity: float = 0.0  # fraction of word-embedding weights pruned
    af8: bool = False  # AF8 weights
    af8_activations: bool = False  # calibrated AF8 activations at every matmul input, the attention's too
    threshold: float = 0.3  # the entropy threshold in the model's metadata
    sentences: int = 32  # synthetic sentences (generated inputs and entropy trace)
    task: str = "sentiment"  # the synthetic task the sentences come from
    seed: int = 0

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> BuildOptions:
        """Validated options from a spec's build table (EdgebertError naming the key)."""
        data = dict(table)
        preset = data.pop("preset", None)
        if preset is not None and preset not in PRESETS:
            raise EdgebertError(f"preset '{preset}' is not one of {', '.join(PRESETS)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise EdgebertError(f"'{unknown[0]}' is not a build option (known: preset, {', '.join(fields)})")
        merged = {**(PRESETS[preset] if preset else {}), **data}
        for name, value in merged.items():
            want = fields[name].type
            ok = (isinstance(value, bool) if want == "bool" else isinstance(value, str) if want == "str"
                  else isinstance(value, (int, float)) and not isinstance(value, bool) if want == "float"
                  else isinstance(value, int) and not isinstance(value, bool) and value > 0)
            if not ok:
                raise EdgebertError(f"'{name}': expected a{'' if want == 'int' else ' ' + want} "
                                    f"{'positive integer' if want == 'int' else 'value'}, got {value!r}")
        opts = cls(**merged)
        for name in ("encoder_sparsity", "embedding_sparsity"):
            if not 0.0 <= getattr(opts, name) < 1.0:
                raise EdgebertError(f"'{name}' must be in [0, 1)")
        if opts.hidden % opts.heads:
            raise EdgebertError("'hidden' must be a multiple of 'heads'")
        return opts

    def digest(self) -> str:
        """12 hex digits naming the built files."""
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class BuiltModel:
    onnx: Path
    inputs: Path  # .npz: input_ids, attention_mask [sentences, seq_len] int64
    trace: Path  # the model's exit entropies per sentence (EdgeBERT's trace format)


def build(opts: BuildOptions, cache: Path) -> BuiltModel:
    """The model, its sentences and its entropy trace, built once into `cache` (named by the options' digest)."""
    stem = cache / f"albert-{opts.digest()}"
    out = BuiltModel(stem.with_suffix(".onnx"), stem.with_suffix(".npz"), stem.with_suffix(".trace.txt"))
    if all(p.exists() for p in (out.onnx, out.inputs, out.trace)):
        return out
    cache.mkdir(parents=True, exist_ok=True)
    model = _build_torch(opts)
    from edgebert.frontend.models.compressed_export import export_onnx
    from edgebert.frontend.models.synthetic_tasks import make_dataset

    tmp = out.onnx.with_suffix(".onnx.part")
    export_onnx(model, str(tmp), opts.seq_len, threshold=opts.threshold)
    data = make_dataset(opts.task, opts.sentences, opts.seq_len, seed=opts.seed + 2)
    ids, mask = np.asarray(data.input_ids, np.int64), np.asarray(data.attention_mask, np.int64)
    np.savez(out.inputs, input_ids=ids, attention_mask=mask)
    out.trace.write_text(_entropy_trace(tmp, ids, mask))
    tmp.replace(out.onnx)  # last: its presence means the three files are complete
    return out


def _build_torch(opts: BuildOptions) -> Any:
    import torch

    from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, albert_config
    from edgebert.frontend.models.compressed_training import calibrate_activations
    from edgebert.frontend.models.pruning import Pruner
    from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset

    if opts.task not in TASKS:
        raise EdgebertError(f"build task '{opts.task}' is not one of {', '.join(sorted(TASKS))}")
    task = TASKS[opts.task]
    cfg = albert_config(len(VOCAB), hidden=opts.hidden, layers=opts.layers, heads=opts.heads,
                        intermediate=opts.intermediate, embedding=opts.embedding, max_positions=opts.seq_len)
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names),
                             entropy_threshold=opts.threshold)
    torch.manual_seed(opts.seed)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=opts.seed)
    model.spread_untrained(opts.seed + 1)
    targets = {k: v for k, v in (("encoder", opts.encoder_sparsity), ("embedding", opts.embedding_sparsity)) if v}
    if targets:
        Pruner(model, "magnitude", targets).apply()
    if opts.af8:
        model.compression.quantize_weights = True
        model.compression.quantize_embeddings = False
        model.freeze_weight_biases()
        model.frozen_weight_biases = _widest_per_exit_weight(model.frozen_weight_biases)
    model.eval()
    if opts.af8_activations:
        model.compression.quantize_attention = True
        calibrate_activations(model, make_dataset(opts.task, CALIBRATION_SENTENCES, opts.seq_len, seed=opts.seed + 1))
        model.activation_quant.finish_calibration(tie_layers=True)
    return model


def _widest_per_exit_weight(biases: dict[str, int]) -> dict[str, int]:
    """Every exit head's weight of one kind gets the largest AF8 bias of that kind (one loop body for all heads)."""
    kind = re.compile(r"exits\.\d+\.(.*)$")
    widest: dict[str, int] = {}
    for name, b in biases.items():
        if m := kind.match(name):
            widest[m.group(1)] = max(widest.get(m.group(1), b), b)
    return {n: widest[m.group(1)] if (m := kind.match(n)) else b for n, b in biases.items()}


def _entropy_trace(onnx: Path, ids: np.ndarray, mask: np.ndarray) -> str:
    """Each sentence's exit-head entropies (onnxruntime), one line per sentence."""
    import onnxruntime as ort

    from edgebert.frontend.models.compressed_albert import exit_entropy_np

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    lines = []
    for i in range(len(ids)):
        heads = session.run(None, {"input_ids": ids[i : i + 1], "attention_mask": mask[i : i + 1]})
        lines.append(", ".join(f"{float(exit_entropy_np(h)[0]):.6f}" for h in heads))
    return "\n".join(lines) + "\n"
