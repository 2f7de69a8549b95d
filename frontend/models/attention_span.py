"""Adaptive attention span (Sukhbaatar et al. 2019): a learnable soft ramp mask per layer and head."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def span_mask(spans: torch.Tensor, seq_len: int, ramp: int) -> torch.Tensor:
    """m[..., i, j] = clamp((ramp + z - |i - j|) / ramp, 0, 1) for spans z of any shape; ramp 0: |i - j| <= z."""
    pos = torch.arange(seq_len, dtype=torch.float32, device=spans.device)
    dist = (pos[:, None] - pos[None, :]).abs()
    z = spans.to(torch.float32)[..., None, None]
    if ramp == 0:
        return (dist <= z).to(torch.float32)
    return ((ramp + z - dist) / ramp).clamp(0.0, 1.0)


# Added to the denominator: below half an ulp of any row sum >= 2^-75, so bit-identical to the ISA formula there;
# a row whose masked sum is 0 (a padded query farther than span + ramp from every real token) becomes zeros
# instead of 0/0 = NaN, which would otherwise spread to every row through p @ v in the next layer.
SPAN_SOFTMAX_EPS = 1e-30


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """p = m * exp(s - max) / (sum(m * exp(s - max)) + 1e-30) over the last axis (the ISA softmax with a span)."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True)) * mask
    return e / (e.sum(dim=-1, keepdim=True) + SPAN_SOFTMAX_EPS)


class AdaptiveSpan(nn.Module):
    """Learnable span per (layer, head) in [0, max_span]; frozen to integers for export and hardware.

    As in Sukhbaatar et al., the parameter ``z`` is the span as a fraction of max_span, so optimiser steps move
    spans by about lr * max_span positions.
    """

    def __init__(self, num_layers: int, num_heads: int, max_span: int, ramp: int, init_span: float) -> None:
        super().__init__()
        self.max_span = int(max_span)
        self.ramp = int(ramp)
        self.z = nn.Parameter(torch.full((num_layers, num_heads), float(init_span) / max(self.max_span, 1)))
        self.register_buffer("frozen_spans", torch.zeros(num_layers, num_heads))
        self.frozen = False

    def spans(self) -> torch.Tensor:
        """Current spans (num_layers, num_heads) in positions, clamped to [0, max_span] (integers once frozen)."""
        if self.frozen:
            return self.frozen_spans
        return (self.z * self.max_span).clamp(0.0, float(self.max_span))

    @torch.no_grad()
    def set_spans(self, spans: torch.Tensor) -> None:
        """Set the spans (in positions) of every layer and head."""
        self.z.copy_(torch.as_tensor(spans, dtype=torch.float32) / max(self.max_span, 1))

    def masks(self, seq_len: int) -> torch.Tensor:
        """Soft masks (num_layers, num_heads, seq_len, seq_len)."""
        return span_mask(self.spans(), seq_len, self.ramp)

    def penalty(self) -> torch.Tensor:
        """Mean span as a fraction of max_span: the L1 term that shrinks spans during training."""
        return self.spans().mean() / max(self.max_span, 1)

    @torch.no_grad()
    def freeze(self) -> np.ndarray:
        """Round spans to integers in [1, max_span] (the ISA span field; 0 there means "no span"), stop learning."""
        if not self.frozen:
            self.frozen_spans.copy_(self.spans().round().clamp(1.0, float(self.max_span)))
        self.z.requires_grad_(False)
        self.frozen = True
        return self.frozen_spans.numpy().astype(np.int64)
