"""MultiTaskAlbert: several AdapterAlbert task models sharing one backbone (embeddings, shared ALBERT layer, spans,
pruning masks and AF8 biases of the backbone) by reference; save/load of the whole set."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from transformers import AlbertConfig

from edgebert.frontend.models.adapters import AdapterAlbert, AdapterConfig, is_backbone_parameter, is_task_parameter
from edgebert.frontend.models.compressed_albert import CompressionConfig
from edgebert.frontend.models.synthetic_tasks import TASKS

SHARED_MODULES = ("embeddings", "encoder", "span")


class MultiTaskAlbert(nn.Module):
    """`tasks[name]` is that task's AdapterAlbert; all of them hold the same backbone modules (one copy of the
    weights), the same `prune_masks` dict and one ActivationQuantizer (one AF8 bias per activation point for every
    task: the multi-task program's shared code has the bias as an immediate). Compression switches are set on every
    task model at once."""

    def __init__(
        self,
        config: AlbertConfig,
        task_names: list[str],
        compression: CompressionConfig | None = None,
        adapters: AdapterConfig | None = None,
        label_names: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__()
        if not task_names or len(set(task_names)) != len(task_names):
            raise ValueError(f"need distinct task names, got {task_names}")
        base = compression or CompressionConfig()
        labels = dict(label_names or {})
        for name in task_names:
            labels.setdefault(name, list(TASKS[name].label_names) if name in TASKS else [])
            if len(labels[name]) < 2:
                raise ValueError(f"task {name!r} needs at least 2 label names")
        self.config = config
        self.adapter_config = adapters or AdapterConfig()
        models = {}
        first = None
        for name in task_names:
            comp = dataclasses.replace(
                base,
                task=name,
                num_labels=len(labels[name]),
                label_names=list(labels[name]),
                sparsity_targets=dict(base.sparsity_targets),
            )
            model = AdapterAlbert(config, comp, dataclasses.replace(self.adapter_config))
            if first is None:
                first = model
            else:
                for mod in SHARED_MODULES:
                    setattr(model, mod, getattr(first, mod))
                model.prune_masks = first.prune_masks
                model.activation_quant = first.activation_quant
            models[name] = model
        self.tasks = nn.ModuleDict(models)

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    @property
    def backbone(self) -> AdapterAlbert:
        """The first task model (any task model would do: they share the backbone)."""
        return next(iter(self.tasks.values()))

    def task(self, name: str) -> AdapterAlbert:
        """The task model `name` (ValueError naming the known tasks otherwise)."""
        if name not in self.tasks:
            raise ValueError(f"unknown task {name!r}; this model has {self.task_names}")
        return self.tasks[name]

    def set_compression(self, **fields: object) -> None:
        """Set CompressionConfig fields on every task model (e.g. quantize_weights=True)."""
        for model in self.tasks.values():
            for key, value in fields.items():
                if not hasattr(model.compression, key):
                    raise ValueError(f"CompressionConfig has no field {key!r}")
                setattr(model.compression, key, value)

    def set_use_adapters(self, enabled: bool) -> None:
        """Switch the adapters on (task training) or off (backbone pre-training) in every task model."""
        for model in self.tasks.values():
            model.use_adapters = enabled

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) the shared backbone parameters."""
        self.backbone.freeze_backbone(frozen)

    @torch.no_grad()
    def freeze_backbone_weight_biases(self) -> dict[str, int]:
        """Fix the AF8 bias of every quantized backbone weight, identically in every task model."""
        biases = {n: b for n, b in self.backbone.weight_biases().items() if is_backbone_parameter(n)}
        for model in self.tasks.values():
            model.frozen_weight_biases.update(biases)
        return biases

    @torch.no_grad()
    def share_task_weight_biases(self) -> dict[str, int]:
        """One AF8 bias per task weight slot (`adapters.attention.1.up.weight`, `exits.0.dense.weight`, ...) for every
        task: the widest of the tasks' biases, frozen in every task model (the effective weights are re-rounded with
        it). The multi-task program's shared code has each slot's bias as an instruction immediate; without a common
        bias the compiler must store that slot fp32."""
        per_task = {t: m.weight_biases() for t, m in self.tasks.items()}
        names = sorted({n for biases in per_task.values() for n in biases if is_task_parameter(n)})
        shared = {n: max(b[n] for b in per_task.values() if n in b) for n in names}
        for model in self.tasks.values():
            model.frozen_weight_biases.update(shared)
        return shared

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """Detached copies of the backbone parameters (to check they stay bit-identical)."""
        return {n: p.detach().clone() for n, p in self.backbone.named_parameters() if is_backbone_parameter(n)}

    def parameter_counts(self) -> dict[str, object]:
        """Parameter counts: shared backbone, per task (adapters, exit heads) and ratios to the backbone."""
        backbone = sum(p.numel() for n, p in self.backbone.named_parameters() if is_backbone_parameter(n))
        per_task = {}
        for name, model in self.tasks.items():
            params = dict(model.named_parameters())
            adapters = sum(p.numel() for n, p in params.items() if n.startswith("adapters."))
            exits = sum(p.numel() for n, p in params.items() if n.startswith("exits."))
            per_task[name] = {
                "adapters": adapters,
                "exits": exits,
                "total": adapters + exits,
                "adapters_to_backbone": adapters / backbone,
                "task_to_backbone": (adapters + exits) / backbone,
            }
        return {"backbone": backbone, "tasks": per_task}


def save_multitask(model: MultiTaskAlbert, path: str, extra: dict | None = None) -> None:
    """Checkpoint: configs, every task's state dict, the shared masks, frozen AF8 biases and span state."""
    torch.save(
        {
            "albert_config": model.config.to_dict(),
            "adapter_config": dataclasses.asdict(model.adapter_config),
            "tasks": {
                name: {
                    "compression": dataclasses.asdict(m.compression),
                    "state_dict": m.state_dict(),
                    "frozen_weight_biases": m.frozen_weight_biases,
                    "use_adapters": m.use_adapters,
                }
                for name, m in model.tasks.items()
            },
            "prune_masks": model.backbone.prune_masks,
            "activation_quant": {
                "mode": model.backbone.activation_quant.mode,
                "amax": model.backbone.activation_quant.amax,
                "biases": model.backbone.activation_quant.biases,
            },
            "spans_frozen": model.backbone.span.frozen,
            "extra": extra or {},
        },
        path,
    )


def load_multitask(path: str) -> MultiTaskAlbert:
    """Inverse of save_multitask (eval mode)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    tasks = ckpt["tasks"]
    comps = {name: CompressionConfig(**t["compression"]) for name, t in tasks.items()}
    model = MultiTaskAlbert(
        AlbertConfig.from_dict(ckpt["albert_config"]),
        list(tasks),
        next(iter(comps.values())),
        AdapterConfig(**ckpt["adapter_config"]),
        {name: c.label_names for name, c in comps.items()},
    )
    for name, t in tasks.items():
        m = model.tasks[name]
        m.compression = comps[name]
        m.load_state_dict(t["state_dict"])
        m.frozen_weight_biases = dict(t["frozen_weight_biases"])
        m.use_adapters = t["use_adapters"]
    model.backbone.prune_masks.update(ckpt["prune_masks"])
    aq = ckpt.get("activation_quant") or {"mode": "off", "amax": {}, "biases": {}}
    quant = model.backbone.activation_quant
    quant.mode, quant.amax, quant.biases = aq["mode"], dict(aq["amax"]), dict(aq["biases"])
    if ckpt["spans_frozen"]:
        model.backbone.span.frozen = True
        model.backbone.span.freeze()
    model.extra = ckpt.get("extra", {})
    return model.eval()


def _tensor_bytes(model: AdapterAlbert, name: str, value: torch.Tensor, quantized: set[str]) -> int:
    """Storage of one tensor as the accelerator keeps it: sparse AF8 = bitmask (padded to 4 bytes) + one byte per
    non-zero; dense AF8 = one byte per element; everything else fp32."""
    if name not in quantized:
        return 4 * value.numel()
    if name in model.prune_masks:
        mask_bytes = -(-value.numel() // 8)
        return mask_bytes + (-mask_bytes) % 4 + int((value != 0).sum())
    return value.numel()


@torch.no_grad()
def footprint_bytes(model: MultiTaskAlbert) -> dict[str, object]:
    """Bytes of the shared backbone and of each task's adapters + heads: fp32 and as stored (sparse / AF8)."""
    out: dict[str, object] = {"tasks": {}}
    for index, (task, m) in enumerate(model.tasks.items()):
        eff = m.effective_weights()
        quantized = set(m.quantized_weight_names()) if m.compression.quantize_weights else set()
        rows = {"backbone": [0, 0], "task": [0, 0]}
        for name, p in m.named_parameters():
            if name.startswith("span."):
                continue  # spans become integers in the program, not weights
            role = "backbone" if is_backbone_parameter(name) else "task"
            value = eff.get(name, p)
            rows[role][0] += 4 * p.numel()
            rows[role][1] += _tensor_bytes(m, name, value, quantized)
        if index == 0:
            out["backbone"] = {"fp32": rows["backbone"][0], "stored": rows["backbone"][1]}
        out["tasks"][task] = {"fp32": rows["task"][0], "stored": rows["task"][1]}
    return out
