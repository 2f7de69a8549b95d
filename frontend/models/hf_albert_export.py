"""Build a randomly initialised Hugging Face ALBERT from a config and export it to ONNX (never from a hub)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.isa.errors import CompileError

log = logging.getLogger(__name__)

_TINY = dict(vocab_size=100, embedding_size=32, hidden_size=64, num_attention_heads=2, intermediate_size=128,
             num_hidden_layers=3, num_hidden_groups=1, max_position_embeddings=128)
_BASE = dict(vocab_size=30000, embedding_size=128, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
             num_hidden_layers=12, num_hidden_groups=1, max_position_embeddings=512)
#: Named configurations; every field is an `AlbertConfig` keyword. `tiny` is the test workhorse.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": _TINY,
    "tiny-groups2": _TINY | dict(num_hidden_layers=4, num_hidden_groups=2),
    "small": _BASE | dict(vocab_size=1000, embedding_size=64, hidden_size=256, num_attention_heads=4,
                          intermediate_size=1024, num_hidden_layers=4),
    "albert-base": _BASE,
    "albert-large": _BASE | dict(hidden_size=1024, num_attention_heads=16, intermediate_size=4096, num_hidden_layers=24),
}

#: What the exported graph can return; `logits` needs the sequence-classification head.
OUTPUT_KINDS = ("logits", "last_hidden_state", "pooler_output")
EXPORTERS = ("legacy", "dynamo")


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """How to export: fixed sequence length, exporter, graph inputs and outputs."""

    seq_len: int = 16
    exporter: str = "legacy"
    outputs: tuple[str, ...] = ("logits",)
    token_type_ids: bool = False
    opset: int = 18
    external_data: bool = False


def albert_config(preset: str = "tiny", num_labels: int | None = None, **overrides: Any):
    """An `AlbertConfig` from a preset plus keyword overrides (eager attention, no dropout, gelu_new)."""
    from transformers import AlbertConfig

    if preset not in PRESETS:
        raise CompileError(f"unknown ALBERT preset {preset!r}; choose one of {', '.join(PRESETS)}")
    fields: dict[str, Any] = dict(PRESETS[preset])
    fields.update({k: v for k, v in overrides.items() if v is not None})
    fields["num_labels"] = num_labels or 2
    cfg = AlbertConfig(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0, **fields
    )
    cfg._attn_implementation = "eager"
    if cfg.hidden_size % cfg.num_attention_heads:
        raise CompileError(f"hidden_size {cfg.hidden_size} is not a multiple of {cfg.num_attention_heads} heads")
    return cfg


def randomize_parameters(model, seed: int = 0, scale: float = 0.1) -> None:
    """Give every parameter distinct random values (HF zero biases / unit LN weights would get merged).

    Weights ~ N(0, scale^2 * 1/fan_in-ish), biases ~ N(0, scale^2), LayerNorm weights ~ 1 + N(0, scale^2):
    activations stay O(1) through many layers so numerical comparisons stay meaningful.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if "LayerNorm" in name or "layer_norm" in name:
                p.copy_(1.0 + scale * noise if name.endswith("weight") else scale * noise)
            elif p.dim() >= 2 and "embeddings" not in name:
                p.copy_(noise / np.sqrt(p.shape[-1]))
            elif p.dim() >= 2:
                p.copy_(0.5 * noise)
            else:
                p.copy_(scale * noise)


def build_albert(config, head: str = "sequence-classification", seed: int = 0):
    """A randomly initialised, eval-mode `AlbertForSequenceClassification` (or `AlbertModel` for head='base')."""
    import torch
    from transformers import AlbertForSequenceClassification, AlbertModel

    torch.manual_seed(seed)
    if head == "sequence-classification":
        model = AlbertForSequenceClassification(config)
    elif head == "base":
        model = AlbertModel(config)
    else:
        raise CompileError(f"unknown ALBERT head {head!r}; choose 'sequence-classification' or 'base'")
    randomize_parameters(model, seed=seed)
    return model.eval()


def _output_module(model, outputs: tuple[str, ...]):
    """A torch module around `model` whose forward returns exactly the requested outputs, as a tuple."""
    import torch

    has_cls = hasattr(model, "classifier")
    if "logits" in outputs and not has_cls:
        raise CompileError("output 'logits' needs the sequence-classification head (head='base' given)")
    unknown = [o for o in outputs if o not in OUTPUT_KINDS]
    if unknown or not outputs:
        raise CompileError(f"unknown outputs {unknown or outputs}; choose from {', '.join(OUTPUT_KINDS)}")

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            base = self.model.albert if has_cls else self.model
            seq, pooled = base(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                return_dict=False,
            )[:2]
            got = {"last_hidden_state": seq, "pooler_output": pooled}
            if has_cls:
                got["logits"] = self.model.classifier(pooled)
            return tuple(got[o] for o in outputs)

    return Wrapper().eval()


def export_onnx(model, path: str | Path, spec: ExportSpec = ExportSpec()) -> Path:
    """Export `model` to ONNX at `path` with fixed shapes [1, seq_len]; returns the path written."""
    import torch

    if spec.exporter not in EXPORTERS:
        raise CompileError(f"unknown exporter {spec.exporter!r}; choose one of {', '.join(EXPORTERS)}")
    max_pos = model.config.max_position_embeddings
    if not 1 <= spec.seq_len <= max_pos:
        raise CompileError(f"seq_len {spec.seq_len} outside 1..{max_pos} (max_position_embeddings)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _output_module(model, tuple(spec.outputs))
    ids = torch.zeros(1, spec.seq_len, dtype=torch.int64)
    args: tuple = (ids, torch.ones(1, spec.seq_len, dtype=torch.int64))
    input_names = ["input_ids", "attention_mask"]
    if spec.token_type_ids:
        args = (*args, torch.zeros(1, spec.seq_len, dtype=torch.int64))
        input_names.append("token_type_ids")
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        if spec.exporter == "legacy":
            torch.onnx.export(
                wrapper, args, str(path), input_names=input_names, output_names=list(spec.outputs),
                opset_version=spec.opset, dynamo=False, do_constant_folding=True,
            )
        else:
            torch.onnx.export(
                wrapper, args, str(path), input_names=input_names, output_names=list(spec.outputs),
                dynamo=True, external_data=spec.external_data, verbose=False,
            )
    log.debug("torch.onnx.export output: %s", sink.getvalue())
    if spec.external_data and spec.exporter == "legacy":
        _move_weights_to_external_file(path)
    return path


def _move_weights_to_external_file(path: Path) -> None:
    """Rewrite `path` with its initializers in `<name>.data` beside it (legacy export has no such option)."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
        location=path.name + ".data", size_threshold=0,
    )


def make_inputs(
    seq_len: int, vocab_size: int, pad: int = 0, seed: int = 0, token_type_ids: bool = False
) -> dict[str, np.ndarray]:
    """Random token ids and an attention mask (the last `pad` positions masked out), int64 [1, seq_len]."""
    if not 0 <= pad < seq_len:
        raise CompileError(f"pad {pad} must be in 0..{seq_len - 1}")
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(1, seq_len), dtype=np.int64)
    mask = np.ones((1, seq_len), dtype=np.int64)
    if pad:
        mask[:, seq_len - pad :] = 0
        ids[:, seq_len - pad :] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if token_type_ids:
        tt = np.zeros((1, seq_len), dtype=np.int64)
        tt[:, seq_len // 2 :] = 1
        inputs["token_type_ids"] = tt
    return inputs


def build_and_export(
    path: str | Path,
    preset: str = "tiny",
    spec: ExportSpec = ExportSpec(),
    seed: int = 0,
    **config_overrides: Any,
) -> tuple[Path, Any]:
    """Build, re-randomise and export an ALBERT in one call; returns (onnx path, config)."""
    cfg = albert_config(preset, **config_overrides)
    head = "sequence-classification" if "logits" in spec.outputs else "base"
    model = build_albert(cfg, head=head, seed=seed)
    return export_onnx(model, path, spec), cfg
