"""adapter-ALBERT in PyTorch: bottleneck adapters inside the shared ALBERT layer (per task, per depth) on top of
the compressed ALBERT of compressed_albert (exits per layer, pruning, AF8), with the backbone shared and frozen."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AlbertConfig

from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, ExitHead

ADAPTER_SITES = ("attention", "ffn")  # after the attention output projection, after the FFN output projection
PLACEMENTS = {"houlsby": ("attention", "ffn"), "pfeiffer": ("ffn",)}
BACKBONE_PREFIXES = ("embeddings.", "encoder.", "span.")
TASK_PREFIXES = ("adapters.", "exits.")


@dataclass
class AdapterConfig:
    """Bottleneck adapters: hidden -> bottleneck (down), activation, bottleneck -> hidden (up), residual.

    placement "houlsby": an adapter after the attention output projection and one after the FFN output projection,
    each before its residual add + LayerNorm; "pfeiffer": only the FFN one. per_depth: one adapter per (site,
    layer) (else one per site reused at every depth of the shared layer). init_std: normal init of the down
    projection; the up projection starts at up_init_std (near zero: the adapter starts close to the identity).
    """

    bottleneck: int = 8
    placement: str = "houlsby"
    per_depth: bool = True
    activation: str = "relu"  # "relu" or "gelu_new" (both are ISA sfu ops)
    init_std: float = 0.02
    up_init_std: float = 1e-3

    @property
    def sites(self) -> tuple[str, ...]:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"unknown adapter placement {self.placement!r}; choose from {sorted(PLACEMENTS)}")
        return PLACEMENTS[self.placement]


class Adapter(nn.Module):
    """x + up(act(down(x))): the Houlsby bottleneck adapter (down: hidden->r, up: r->hidden)."""

    def __init__(self, hidden_size: int, bottleneck: int, activation: str) -> None:
        super().__init__()
        if activation not in ("relu", "gelu_new"):
            raise ValueError(f"unknown adapter activation {activation!r}; choose relu or gelu_new")
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        self.activation = activation

    def act(self, x: torch.Tensor) -> torch.Tensor:
        """The non-linearity between the projections."""
        return F.relu(x) if self.activation == "relu" else F.gelu(x, approximate="tanh")


def is_backbone_parameter(name: str) -> bool:
    """True for parameters of the shared backbone (embeddings, shared ALBERT layer, attention spans)."""
    return name.startswith(BACKBONE_PREFIXES)


def is_task_parameter(name: str) -> bool:
    """True for task-specific parameters (adapters and exit heads)."""
    return name.startswith(TASK_PREFIXES)


class AdapterAlbert(CompressedAlbert):
    """One task's adapter-ALBERT: CompressedAlbert's backbone and exits plus `adapters[site][depth]`.

    Parameter names: the backbone keeps AlbertModel's names (`embeddings.*`, `encoder.*`) and `span.z`;
    task-specific ones are `adapters.{site}.{d}.{down|up}.{weight|bias}` (site in ADAPTER_SITES, d 0-based depth,
    always 0 when adapters are shared across depth) and `exits.{d}.{dense|classifier}.{weight|bias}`.
    Several task models share the backbone modules by reference (see multitask_albert.MultiTaskAlbert).
    `use_adapters = False` bypasses the adapters (backbone pre-training).
    """

    def __init__(
        self, config: AlbertConfig, compression: CompressionConfig | None = None, adapters: AdapterConfig | None = None
    ) -> None:
        super().__init__(config, compression)
        self.adapter_config = ac = adapters or AdapterConfig()
        depth = config.num_hidden_layers if ac.per_depth else 1
        self.adapters = nn.ModuleDict(
            {
                site: nn.ModuleList(Adapter(config.hidden_size, ac.bottleneck, ac.activation) for _ in range(depth))
                for site in ac.sites
            }
        )
        self.use_adapters = True
        self.reset_task_parameters()

    @torch.no_grad()
    def reset_task_parameters(self, seed: int | None = None) -> None:
        """Fresh exit heads (ALBERT init) and near-identity adapters (down ~ N(0, init_std), up ~ N(0, up_init_std))."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        std = self.config.initializer_range
        for head in self.exits:
            for lin in (head.dense, head.classifier):
                lin.weight.normal_(0.0, std, generator=gen)
                lin.bias.zero_()
        ac = getattr(self, "adapter_config", None)
        if ac is None:  # called from CompressedAlbert.__init__ before the adapters exist
            return
        for stack in self.adapters.values():
            for adapter in stack:
                adapter.down.weight.normal_(0.0, ac.init_std, generator=gen)
                adapter.down.bias.zero_()
                adapter.up.weight.normal_(0.0, ac.up_init_std, generator=gen)
                adapter.up.bias.zero_()

    def replace_exits(self, num_labels: int, label_names: list[str], task: str) -> None:
        """New exit heads for another task (num_labels outputs), freshly initialised."""
        cfg = self.config
        self.compression.task, self.compression.num_labels = task, num_labels
        self.compression.label_names = list(label_names)
        self.exits = nn.ModuleList(
            ExitHead(cfg.hidden_size, num_labels, cfg.classifier_dropout_prob or 0.0)
            for _ in range(cfg.num_hidden_layers)
        )
        self.reset_task_parameters()

    def adapter_depth(self, layer_index: int) -> int:
        """0-based adapter depth used at 0-based layer `layer_index` (0 when shared across depth)."""
        return layer_index if self.adapter_config.per_depth else 0

    def weight_groups(self) -> dict[str, str]:
        """CompressedAlbert's groups plus "adapters" (adapter matmul weights; no sparsity target by default)."""
        groups = super().weight_groups()
        for name in list(groups):
            if name.startswith("adapters."):
                groups[name] = "adapters"
        return groups

    def backbone_parameter_names(self) -> list[str]:
        """Names of the shared (frozen) backbone parameters."""
        return [n for n, _ in self.named_parameters() if is_backbone_parameter(n)]

    def task_parameter_names(self) -> list[str]:
        """Names of this task's adapter and exit-head parameters."""
        return [n for n, _ in self.named_parameters() if is_task_parameter(n)]

    def freeze_backbone(self, frozen: bool = True) -> None:
        """requires_grad False on every backbone parameter (True again with frozen=False)."""
        for name, p in self.named_parameters():
            if is_backbone_parameter(name):
                p.requires_grad_(not frozen)

    def _adapt(self, h: torch.Tensor, site: str, i: int, linear) -> torch.Tensor:  # noqa: ANN001
        """h + up(act(down(h))) with the effective (pruned / AF8) adapter weights of `site` at layer i (0-based)."""
        if not self.use_adapters or site not in self.adapters:
            return h
        d = self.adapter_depth(i)
        adapter = self.adapters[site][d]
        z = adapter.act(linear(h, f"adapters.{site}.{d}.down", f"layer{i + 1}.adapter_{site}_down_in"))
        return h + linear(z, f"adapters.{site}.{d}.up", f"layer{i + 1}.adapter_{site}_up_in")
