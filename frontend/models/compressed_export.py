"""ONNX export of CompressedAlbert: every exit head as an output, compression baked into the graph, EdgeBERT
settings as JSON-valued metadata_props (schema in docs/compressed_model.md)."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edgebert.frontend.models.attention_span import span_mask
from edgebert.frontend.models.compressed_albert import ATTENTION_MASK_VALUE, CompressedAlbert
from edgebert.isa import adaptivfloat

METADATA_VERSION = 1
INPUT_NAMES = ("input_ids", "attention_mask")


def exit_output_names(num_layers: int) -> list[str]:
    """ONNX output names of the exit heads: exit_1_logits .. exit_L_logits."""
    return [f"exit_{i}_logits" for i in range(1, num_layers + 1)]


@torch.no_grad()
def materialize(model: CompressedAlbert) -> CompressedAlbert:
    """A copy whose parameters hold the effective weights (pruned, AF8-quantized), with masks and weight
    quantization switched off and spans frozen to integers: its plain forward is the compressed model."""
    model = copy.deepcopy(model).eval()
    if model.compression.span_enabled and not model.span.frozen:
        model.span.freeze()
    params = dict(model.named_parameters())
    for name, value in model.effective_weights().items():
        params[name].copy_(value)
    model.prune_masks = {}
    model.compression.quantize_weights = False
    model.activation_quant.mode = "off"
    return model


class _ExitGraph(nn.Module):
    """input_ids, attention_mask -> every exit's logits; span masks as constant buffers (one per layer)."""

    def __init__(self, model: CompressedAlbert, seq_len: int) -> None:
        super().__init__()
        self.model = model
        self.num_layers = model.config.num_hidden_layers
        self.has_spans = model.compression.span_enabled
        if self.has_spans:
            masks = span_mask(model.span.spans().detach(), seq_len, model.span.ramp)
            for i in range(self.num_layers):
                self.register_buffer(f"span_mask_layer{i + 1}", masks[i].clone())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        spans = None
        if self.has_spans:
            spans = [getattr(self, f"span_mask_layer{i + 1}") for i in range(self.num_layers)]
        return self.model(input_ids, attention_mask, span_masks=spans).exit_logits


def _initializer_locations(graph: onnx.GraphProto, tensors: dict[str, np.ndarray]) -> dict[str, dict]:
    """torch weight name -> {"initializer": ONNX name, "transposed": bool} by exact value match (None if absent)."""
    inits = [(t.name, numpy_helper.to_array(t)) for t in graph.initializer]
    found = {}
    for name, value in tensors.items():
        hit = None
        for init_name, arr in inits:
            if arr.shape == value.shape and np.array_equal(arr, value):
                hit = {"initializer": init_name, "transposed": False}
                break
            if value.ndim == 2 and arr.shape == value.T.shape and np.array_equal(arr, value.T):
                hit = {"initializer": init_name, "transposed": True}
                break
        found[name] = hit or {"initializer": None, "transposed": False}
    return found


def edgebert_metadata(
    model: CompressedAlbert, frozen: CompressedAlbert, seq_len: int, locations: dict[str, dict], threshold: float
) -> dict[str, object]:
    """The edgebert.* metadata entries (values are JSON-serialisable objects)."""
    cfg, comp = model.config, model.compression
    n_layers = cfg.num_hidden_layers
    spans = frozen.span.spans().detach().numpy().astype(int)
    ramp = frozen.span.ramp
    quantized = comp.quantize_weights
    sparsity = model.sparsity_report()
    biases = model.weight_biases() if quantized else {}
    params = dict(frozen.named_parameters())
    # zeros in the exported tensor: the pruning mask's plus weights AF8 flushes to zero
    zero_fraction = {n: float((params[n] == 0).float().mean()) for e in sparsity.values() for n in e["tensors"]}
    return {
        "edgebert.version": METADATA_VERSION,
        "edgebert.task": {"name": comp.task, "num_labels": comp.num_labels, "label_names": list(comp.label_names)},
        "edgebert.model": {
            "num_layers": n_layers,
            "hidden_size": cfg.hidden_size,
            "num_heads": cfg.num_attention_heads,
            "intermediate_size": cfg.intermediate_size,
            "embedding_size": cfg.embedding_size,
            "vocab_size": cfg.vocab_size,
            "num_hidden_groups": cfg.num_hidden_groups,
            "hidden_act": cfg.hidden_act,
            "seq_len": seq_len,
            "inputs": list(INPUT_NAMES),
            "attention_mask_value": ATTENTION_MASK_VALUE,
        },
        "edgebert.exit_heads": {
            "count": n_layers,
            "layers": list(range(1, n_layers + 1)),
            "outputs": exit_output_names(n_layers),
            "pooling": "first_token",
            "pooler_activation": "tanh",
            "entropy": "natural_log",
            "rule": "exit at the first layer whose exit entropy < threshold, else the last",
        },
        "edgebert.entropy_threshold": float(threshold),
        "edgebert.attention_spans": {
            "enabled": bool(comp.span_enabled),
            "ramp": int(ramp),
            "max_span": int(frozen.span.max_span),
            "spans": spans.tolist() if comp.span_enabled else None,
            "full": ((spans + ramp) >= seq_len - 1).tolist() if comp.span_enabled else None,
            "mask_initializers": [
                locations.get(f"span_mask_layer{i}", {}).get("initializer") for i in range(1, n_layers + 1)
            ]
            if comp.span_enabled
            else None,
        },
        "edgebert.sparsity": {
            "method": comp.pruning_method if model.prune_masks else "none",
            "groups": {g: {"target": e["target"], "achieved": e["achieved"]} for g, e in sparsity.items()},
            "tensors": {
                n: {"group": g, "sparsity": e["tensors"][n], "zero_fraction": zero_fraction[n], **locations.get(n, {})}
                for g, e in sparsity.items()
                for n in e["tensors"]
            },
        },
        "edgebert.quantization": {
            "format": "af8" if quantized else "none",
            "exp_bits": adaptivfloat.EXP_BITS,
            "mant_bits": adaptivfloat.MANT_BITS,
            "exp_offset": adaptivfloat.OFFSET,
            "weights": {n: {"exp_bias": int(b), **locations.get(n, {})} for n, b in sorted(biases.items())},
            "activations": {
                "enabled": bool(comp.quantize_activations and model.activation_quant.biases),
                "in_graph": False,
                "exp_bias": {k: v for k, v in sorted(model.activation_quant.biases.items())
                             if comp.quantize_attention or ".attn_" not in k} if comp.quantize_activations else {},
            },
        },
    }


def export_onnx(
    model: CompressedAlbert,
    path: str | Path,
    seq_len: int,
    batch_size: int = 1,
    threshold: float | None = None,
    opset: int = 18,
    dynamic_batch: bool = False,
) -> onnx.ModelProto:
    """Export every exit head's logits (exit_i_logits) for inputs input_ids/attention_mask [batch, seq_len] int64.

    Pruned weights are exported zeroed, AF8 weights as their quantized float values, the span masks as constant
    per-layer buffers multiplying exp(x - max) inside each attention softmax; settings go to metadata_props.
    Spans are frozen to integers in the exported copy (freeze them on `model` first to compare with torch).
    """
    frozen = materialize(model)
    graph = _ExitGraph(frozen, seq_len).eval()
    n_layers = model.config.num_hidden_layers
    ids = torch.zeros(batch_size, seq_len, dtype=torch.long)
    mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    outputs = exit_output_names(n_layers)
    axes = {n: {0: "batch"} for n in (*INPUT_NAMES, *outputs)} if dynamic_batch else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the legacy exporter announces its deprecation; it is the one that works here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph,
            (ids, mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=outputs,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
            dynamic_axes=axes,
        )
    proto = onnx.load(str(path))
    params = dict(frozen.named_parameters())
    tracked = set(model.prune_masks) | (
        set(model.quantized_weight_names()) if model.compression.quantize_weights else set()
    )
    tensors = {n: params[n].detach().numpy() for n in sorted(tracked)}
    tensors.update({n: b.numpy() for n, b in graph.named_buffers() if n.startswith("span_mask_layer")})
    locations = _initializer_locations(proto.graph, tensors)
    thr = model.compression.entropy_threshold if threshold is None else threshold
    meta = edgebert_metadata(model, frozen, seq_len, locations, thr)
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(proto, str(path))
    return proto


def read_edgebert_metadata(model: onnx.ModelProto | str | Path) -> dict[str, object]:
    """The edgebert.* metadata_props of an ONNX model, JSON-decoded."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props if p.key.startswith("edgebert.")}
