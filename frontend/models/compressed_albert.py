"""The compressed ALBERT of EdgeBERT in PyTorch: exit heads after every layer, adaptive attention span, pruning masks
and AdaptivFloat-8 fake quantization, built on transformers' ALBERT modules (same parameter names as AlbertModel)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AlbertConfig
from transformers.models.albert.modeling_albert import AlbertEmbeddings, AlbertTransformer

from edgebert.frontend.models.af8_fake_quant import ActivationQuantizer, af8_bias, af8_fake_quant
from edgebert.frontend.models.attention_span import AdaptiveSpan, masked_softmax

ATTENTION_MASK_VALUE = -10000.0  # added to the scores of padded keys (exp underflows to exactly 0 in fp32)
WEIGHT_GROUPS = ("embedding", "encoder", "exits")


@dataclass
class CompressionConfig:
    """EdgeBERT settings on top of the ALBERT config (all compression off by default)."""

    task: str = "sentiment"
    num_labels: int = 2
    label_names: list[str] = field(default_factory=list)
    entropy_threshold: float = 0.2
    span_enabled: bool = False
    max_span: int = 128
    span_ramp: int = 32
    span_init: float | None = None  # None: start at max_span
    quantize_weights: bool = False
    quantize_embeddings: bool = True  # with quantize_weights: also the embedding tables
    quantize_activations: bool = False  # AF8 at the inputs of every weight matmul (calibrated biases)
    quantize_attention: bool = False  # also AF8 q, k, v and the probabilities at the attention's two matmuls
    pruning_method: str = "none"  # "none", "magnitude" or "movement"
    sparsity_targets: dict[str, float] = field(default_factory=dict)  # weight group -> fraction of zeros


@dataclass
class CompressedOutput:
    """Exit logits after each layer (tuple of [B, num_labels]), hidden states after each layer ([B, S, H])."""

    exit_logits: tuple[torch.Tensor, ...]
    hidden_states: tuple[torch.Tensor, ...]

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self.hidden_states[-1]


class ExitHead(nn.Module):
    """DeeBERT/EdgeBERT off-ramp: dense + tanh on the first token (pooler), dropout, linear classifier."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)


def exit_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (natural log) of softmax(logits) over the last axis, in the ISA entropy unit's formulation."""
    x = logits - logits.amax(dim=-1, keepdim=True)
    e = torch.exp(x)
    s = e.sum(dim=-1)
    return torch.log(s) - (x * e).sum(dim=-1) / s


def exit_entropy_np(logits: np.ndarray) -> np.ndarray:
    """numpy twin of exit_entropy (for onnxruntime outputs), computed in float32."""
    x = np.asarray(logits, dtype=np.float32)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    s = e.sum(axis=-1)
    return (np.log(s) - (x * e).sum(axis=-1) / s).astype(np.float32)


def early_exit_layer(entropies: np.ndarray, threshold: float) -> np.ndarray:
    """1-based exit layer per sentence from entropies [num_layers, batch]: first entropy < threshold, else last."""
    ent = np.asarray(entropies)
    below = ent < threshold
    below[-1] = True  # the last layer always exits
    return np.argmax(below, axis=0) + 1


class _ExactMatmul(torch.autograd.Function):
    """a @ b computed in float64 and rounded once to float32 (exact for AF8 operands); plain float32 gradients."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(a, b)
        return torch.matmul(a.double(), b.double()).to(a.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        a, b = ctx.saved_tensors
        return torch.matmul(grad, b.transpose(-1, -2)), torch.matmul(a.transpose(-1, -2), grad)


def _exact_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _ExactMatmul.apply(a, b)


class CompressedAlbert(nn.Module):
    """ALBERT encoder (AlbertEmbeddings + AlbertTransformer) with EdgeBERT's exits and compression."""

    def __init__(self, config: AlbertConfig, compression: CompressionConfig | None = None) -> None:
        super().__init__()
        if config.inner_group_num != 1:
            raise ValueError("CompressedAlbert supports inner_group_num == 1 (one exit per ALBERT layer)")
        self.config = config
        self.compression = compression = compression or CompressionConfig()
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        n_layers, n_heads = config.num_hidden_layers, config.num_attention_heads
        self.exits = nn.ModuleList(
            ExitHead(config.hidden_size, compression.num_labels, config.classifier_dropout_prob or 0.0)
            for _ in range(n_layers)
        )
        init = compression.max_span if compression.span_init is None else compression.span_init
        self.span = AdaptiveSpan(n_layers, n_heads, compression.max_span, compression.span_ramp, init)
        self.prune_masks: dict[str, torch.Tensor] = {}
        self.frozen_weight_biases: dict[str, int] = {}  # AF8 biases fixed at export (else chosen per forward)
        self.activation_quant = ActivationQuantizer()
        self.reset_parameters()

    # ---- parameters ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """ALBERT's initialisation: normal(0, initializer_range) matrices, zero biases, unit LayerNorm."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                module.weight.normal_(0.0, std, generator=gen)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()

    @torch.no_grad()
    def spread_untrained(self, seed: int) -> None:
        """After `reset_parameters`, an untrained model's exit heads give ~equal logits (entropy ln 2): draw the heads'
        classifier weights from normal(0, 2) and LayerNorm weights / biases from U(0.5, 1.5) / normal(0, 0.1)
        (generator seeded with `seed`), so exits differ and the norms are not trivial."""
        gen = torch.Generator().manual_seed(seed)
        for head in self.exits:
            head.classifier.weight.normal_(0.0, 2.0, generator=gen)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0.0, 0.1, generator=gen)

    def weight_groups(self) -> dict[str, str]:
        """Prunable weight name -> group ("embedding": word embeddings, "encoder", "exits": matmul weights)."""
        groups = {"embeddings.word_embeddings.weight": "embedding"}
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                groups[f"{name}.weight"] = "encoder" if name.startswith("encoder.") else "exits"
        return groups

    def quantized_weight_names(self) -> list[str]:
        """Names of the weights stored in AF8 when quantize_weights is on."""
        names = [n for n in self.weight_groups() if n != "embeddings.word_embeddings.weight"]
        if self.compression.quantize_embeddings:
            names += [
                f"embeddings.{t}.weight" for t in ("word_embeddings", "position_embeddings", "token_type_embeddings")
            ]
        return sorted(names)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        """Weights as the hardware sees them: pruned (masked) and, if enabled, AF8 fake-quantized."""
        params = dict(self.named_parameters())
        quantized = set(self.quantized_weight_names()) if self.compression.quantize_weights else set()
        out = {}
        for name in set(self.prune_masks) | quantized:
            w = params[name]
            if name in self.prune_masks:
                w = w * self.prune_masks[name]
            if name in quantized:
                w = af8_fake_quant(w, self.frozen_weight_biases.get(name))
            out[name] = w
        return out

    def weight_biases(self) -> dict[str, int]:
        """AF8 exponent bias of every quantized weight (per tensor, of the pruned weight)."""
        params = dict(self.named_parameters())
        biases = {}
        for name in self.quantized_weight_names():
            w = params[name].detach()
            if name in self.prune_masks:
                w = w * self.prune_masks[name]
            biases[name] = self.frozen_weight_biases.get(name, af8_bias(w))
        return biases

    # ---- forward --------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        span_masks: torch.Tensor | None = None,
    ) -> CompressedOutput:
        """All exit heads' logits and every layer's hidden states. span_masks [L, H, S, S] overrides the spans."""
        cfg = self.config
        batch, seq_len = input_ids.shape
        params = dict(self.named_parameters())
        eff = self.effective_weights()

        def w(name: str) -> torch.Tensor:
            return eff.get(name, params[name])

        def linear(x: torch.Tensor, prefix: str, point: str) -> torch.Tensor:
            return F.linear(self.activation_quant(point, x), w(f"{prefix}.weight"), params[f"{prefix}.bias"])

        emb = self.embeddings
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(seq_len, device=input_ids.device)[None, :]
        x = F.embedding(input_ids, w("embeddings.word_embeddings.weight"))
        x = x + F.embedding(token_type_ids, w("embeddings.token_type_embeddings.weight"))
        x = x + F.embedding(positions, w("embeddings.position_embeddings.weight"))
        x = F.dropout(emb.LayerNorm(x), cfg.hidden_dropout_prob, self.training)
        x = linear(x, "encoder.embedding_hidden_mapping_in", "embedding_proj_in")

        if attention_mask is None:
            additive = None
        else:
            additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * ATTENTION_MASK_VALUE
        if span_masks is None and self.compression.span_enabled:
            span_masks = self.span.masks(seq_len)

        hidden_states, exit_logits = [], []
        n_layers, n_groups = cfg.num_hidden_layers, cfg.num_hidden_groups
        for i in range(n_layers):
            group = int(i / (n_layers / n_groups))
            prefix = f"encoder.albert_layer_groups.{group}.albert_layers.0"
            layer = self.encoder.albert_layer_groups[group].albert_layers[0]
            mask_i = None if span_masks is None else span_masks[i]
            x = self._layer(x, additive, mask_i, layer, prefix, i + 1, linear)
            hidden_states.append(x)
            exit_logits.append(self._exit(x, i, linear))
        return CompressedOutput(tuple(exit_logits), tuple(hidden_states))

    def _layer(self, x, additive, span_mask, layer, prefix, index, linear):  # noqa: ANN001, ANN202
        cfg = self.config
        batch, seq_len, _ = x.shape
        hidden, heads = cfg.hidden_size, cfg.num_attention_heads
        head_dim = hidden // heads  # python ints: the scale stays one constant in the exported graph
        att = f"{prefix}.attention"

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq_len, heads, head_dim).transpose(1, 2)

        q = split(linear(x, f"{att}.query", f"layer{index}.qkv_in"))
        k = split(linear(x, f"{att}.key", f"layer{index}.qkv_in"))
        v = split(linear(x, f"{att}.value", f"layer{index}.qkv_in"))
        matmul = torch.matmul
        af8_attention = self.compression.quantize_attention and self.activation_quant.mode != "off"
        if af8_attention:  # AF8 operands: products exact, summed in float64 and rounded once (as the accelerator)
            aq = self.activation_quant
            q, k, v = aq(f"layer{index}.attn_q_in", q), aq(f"layer{index}.attn_k_in", k), aq(f"layer{index}.attn_v_in", v)

            def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
                return _exact_matmul(a, b)

        scores = matmul(q, k.transpose(2, 3)) * (head_dim**-0.5)
        if additive is not None:
            scores = scores + additive
        probs = masked_softmax(scores, span_mask)
        probs = F.dropout(probs, cfg.attention_probs_dropout_prob, self.training)
        if af8_attention:
            probs = self.activation_quant(f"layer{index}.attn_probs_in", probs)
        ctx = matmul(probs, v).transpose(1, 2).reshape(batch, seq_len, hidden)
        out = linear(ctx, f"{att}.dense", f"layer{index}.attention_dense_in")
        out = F.dropout(out, cfg.hidden_dropout_prob, self.training)
        out = self._adapt(out, "attention", index - 1, linear)
        attention_output = layer.attention.LayerNorm(x + out)
        ffn = layer.activation(linear(attention_output, f"{prefix}.ffn", f"layer{index}.ffn_in"))
        ffn = linear(ffn, f"{prefix}.ffn_output", f"layer{index}.ffn_output_in")
        ffn = self._adapt(ffn, "ffn", index - 1, linear)
        return layer.full_layer_layer_norm(ffn + attention_output)

    def _adapt(self, h: torch.Tensor, site: str, depth: int, linear) -> torch.Tensor:  # noqa: ANN001
        """Hook before each residual add ("attention", "ffn"): identity here, adapters in AdapterAlbert."""
        return h

    def _exit(self, x, i, linear):  # noqa: ANN001, ANN202
        head = self.exits[i]
        pooled = torch.tanh(linear(x[:, 0], f"exits.{i}.dense", f"exit{i + 1}.dense_in"))
        return linear(head.dropout(pooled), f"exits.{i}.classifier", f"exit{i + 1}.classifier_in")

    # ---- inference ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_early_exit(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, threshold: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, exit_layer 1-based, entropies [L, B]) under the early-exit rule (threshold from the config)."""
        thr = self.compression.entropy_threshold if threshold is None else threshold
        out = self.forward(input_ids, attention_mask)
        ent = torch.stack([exit_entropy(lg) for lg in out.exit_logits]).numpy()
        layer = early_exit_layer(ent, thr)
        logits = torch.stack(out.exit_logits).numpy()
        labels = logits[layer - 1, np.arange(len(layer))].argmax(-1)
        return labels, layer, ent

    # ---- freezing for export ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def freeze_weight_biases(self) -> dict[str, int]:
        """Fix every quantized weight's AF8 bias (the values the export and the compiler use)."""
        self.frozen_weight_biases = self.weight_biases()
        return dict(self.frozen_weight_biases)

    def sparsity_report(self) -> dict[str, dict]:
        """Per group: target, achieved fraction of zeros (over masked tensors) and per-tensor sparsity."""
        params = dict(self.named_parameters())
        report: dict[str, dict] = {}
        for name, group in self.weight_groups().items():
            if name not in self.prune_masks:
                continue
            entry = report.setdefault(
                group,
                {"target": self.compression.sparsity_targets.get(group, 0.0), "zeros": 0, "numel": 0, "tensors": {}},
            )
            zeros = int((self.prune_masks[name] == 0).sum())
            entry["zeros"] += zeros
            entry["numel"] += params[name].numel()
            entry["tensors"][name] = zeros / params[name].numel()
        for entry in report.values():
            entry["achieved"] = entry.pop("zeros") / max(entry.pop("numel"), 1)
        return report


def albert_config(
    vocab_size: int,
    hidden: int = 64,
    layers: int = 4,
    heads: int = 4,
    intermediate: int | None = None,
    embedding: int | None = None,
    max_positions: int = 128,
    dropout: float = 0.0,
    **kwargs,
) -> AlbertConfig:
    """A small AlbertConfig (gelu_new, one shared layer group) for synthetic tasks and tests."""
    return AlbertConfig(
        vocab_size=vocab_size,
        embedding_size=embedding or hidden,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        classifier_dropout_prob=dropout,
        pad_token_id=0,
        **kwargs,
    )


def save_compressed(model: CompressedAlbert, path: str, extra: dict | None = None) -> None:
    """Checkpoint: ALBERT config, compression config, state dict, pruning masks, frozen biases and spans."""
    torch.save(
        {
            "albert_config": model.config.to_dict(),
            "compression": dataclasses.asdict(model.compression),
            "state_dict": model.state_dict(),
            "prune_masks": model.prune_masks,
            "frozen_weight_biases": model.frozen_weight_biases,
            "spans_frozen": model.span.frozen,
            "activation_quant": {
                "mode": model.activation_quant.mode,
                "amax": model.activation_quant.amax,
                "biases": model.activation_quant.biases,
            },
            "extra": extra or {},
        },
        path,
    )


def load_compressed(path: str) -> CompressedAlbert:
    """Inverse of save_compressed (model in eval mode)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = CompressedAlbert(AlbertConfig.from_dict(ckpt["albert_config"]), CompressionConfig(**ckpt["compression"]))
    model.load_state_dict(ckpt["state_dict"])
    model.prune_masks = dict(ckpt["prune_masks"])
    model.frozen_weight_biases = dict(ckpt["frozen_weight_biases"])
    if ckpt["spans_frozen"]:
        model.span.frozen = True  # the integer spans came back with the state dict
        model.span.freeze()
    aq = ckpt["activation_quant"]
    model.activation_quant.mode, model.activation_quant.amax, model.activation_quant.biases = (
        aq["mode"],
        dict(aq["amax"]),
        dict(aq["biases"]),
    )
    model.extra = ckpt.get("extra", {})
    return model.eval()


def max_entropy(num_labels: int) -> float:
    """ln(num_labels): the entropy of a uniform prediction."""
    return math.log(num_labels)
