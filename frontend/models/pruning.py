"""Magnitude and movement pruning of CompressedAlbert to a target sparsity per weight group (masks used in forward)."""

from __future__ import annotations

import torch

from edgebert.frontend.models.compressed_albert import CompressedAlbert

PRUNING_METHODS = ("magnitude", "movement")


def topk_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """0/1 mask keeping the round((1 - sparsity) * n) highest scores (exactly that many, ties broken by index)."""
    n = scores.numel()
    keep = int(round((1.0 - sparsity) * n))
    mask = torch.zeros(n, dtype=torch.float32)
    if keep > 0:
        mask[torch.topk(scores.detach().flatten(), keep, sorted=False).indices] = 1.0
    return mask.view_as(scores)


def cubic_schedule(step: int, total_steps: int, target: float) -> float:
    """Sparsity after `step` of `total_steps` (Zhu & Gupta cubic ramp): target * (1 - (1 - t)^3)."""
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return target * (1.0 - (1.0 - t) ** 3)


class Pruner:
    """Prunes every tensor of each targeted group to the group's sparsity (per tensor, so the group matches too).

    magnitude: keep the largest |w|. movement (Sanh et al. 2020, hard top-k variant): keep the largest accumulated
    score S = sum over steps of -w * dL/dw (weights moving away from zero); call accumulate() after each backward.
    Gradients reaching w are already masked, so pruned weights keep their score (they rarely come back).
    """

    def __init__(self, model: CompressedAlbert, method: str, targets: dict[str, float]) -> None:
        if method not in PRUNING_METHODS:
            raise ValueError(f"unknown pruning method {method!r}; choose from {PRUNING_METHODS}")
        for group, target in targets.items():
            if not 0.0 <= target < 1.0:
                raise ValueError(f"sparsity target for {group!r} must be in [0, 1), got {target}")
        self.model = model
        self.method = method
        self.targets = dict(targets)
        groups = model.weight_groups()
        params = dict(model.named_parameters())
        self.weights = {n: params[n] for n, g in groups.items() if self.targets.get(g, 0.0) > 0.0}
        self.group_of = {n: groups[n] for n in self.weights}
        self.scores = {n: torch.zeros_like(p) for n, p in self.weights.items()} if method == "movement" else {}
        model.compression.pruning_method = method
        model.compression.sparsity_targets = dict(self.targets)

    @torch.no_grad()
    def accumulate(self) -> None:
        """Movement pruning: add -w * grad to each weight's score (no-op for magnitude pruning)."""
        for name, w in self.weights.items():
            if name in self.scores and w.grad is not None:
                self.scores[name] -= w * w.grad

    @torch.no_grad()
    def apply(self, fraction: float = 1.0) -> None:
        """Set masks at fraction * target sparsity of each group (fraction 1.0: the final masks)."""
        for name, w in self.weights.items():
            sparsity = self.targets[self.group_of[name]] * fraction
            score = self.scores[name] if self.method == "movement" else w.abs()
            self.model.prune_masks[name] = topk_mask(score, sparsity)

    def step(self, step: int, total_steps: int) -> None:
        """Masks for training step `step` of `total_steps` on the cubic schedule (final sparsity at the end)."""
        frac = cubic_schedule(step, total_steps, 1.0)
        self.apply(frac)
