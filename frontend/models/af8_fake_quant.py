"""AdaptivFloat-8 fake quantization for PyTorch, delegating to the reference quantizer (bit-exact with the emulator)."""

from __future__ import annotations

import re

import numpy as np
import torch

from edgebert.isa import adaptivfloat


class AF8FakeQuant(torch.autograd.Function):
    """Forward: adaptivfloat.quantize on the detached numpy array; backward: straight-through estimator."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: int) -> torch.Tensor:  # noqa: D102
        q = adaptivfloat.quantize(x.detach().cpu().numpy(), int(bias))
        return torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)).to(device=x.device, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad_output, None


def af8_bias(x: torch.Tensor) -> int:
    """Per-tensor AdaptivFloat exponent bias (adaptivfloat.choose_bias of the values)."""
    return adaptivfloat.choose_bias(x.detach().cpu().numpy())


def af8_fake_quant(x: torch.Tensor, bias: int | None = None) -> torch.Tensor:
    """x rounded to the nearest AF8 value with `bias` (chosen per tensor when None), straight-through gradient."""
    return AF8FakeQuant.apply(x, af8_bias(x) if bias is None else int(bias))


class ActivationQuantizer:
    """AF8 fake quantization of activations at named points: calibrate the per-point bias, then apply it.

    mode "off" passes through; "calibrate" records the largest magnitude seen at each point; "apply" quantizes
    with the calibrated bias (points never calibrated use a per-call bias).
    """

    def __init__(self) -> None:
        self.mode = "off"
        self.amax: dict[str, float] = {}
        self.biases: dict[str, int] = {}

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return x
        if self.mode == "calibrate":
            self.amax[name] = max(self.amax.get(name, 0.0), float(x.detach().abs().max()))
            return x
        return af8_fake_quant(x, self.biases.get(name))

    def finish_calibration(self, tie_layers: bool = False) -> dict[str, int]:
        """Fix each point's bias from its calibrated largest magnitude and switch to "apply".

        tie_layers: points that differ only in their layer number (`layer3.ffn_in`, `exit2.dense_in`) share the bias
        of their largest magnitude over all layers, so that one layer-loop body (one `quant` immediate per point)
        serves every layer."""
        amax = dict(self.amax)
        if tie_layers:
            widest: dict[str, float] = {}
            for name, value in amax.items():
                widest[_layerless(name)] = max(widest.get(_layerless(name), 0.0), value)
            amax = {name: widest[_layerless(name)] for name in amax}
        self.biases = {k: adaptivfloat.choose_bias(np.array([v], dtype=np.float32)) for k, v in amax.items()}
        self.mode = "apply"
        return dict(self.biases)


def _layerless(point: str) -> str:
    """`layer3.ffn_in` -> `layer*.ffn_in`, `exit2.dense_in` -> `exit*.dense_in` (other names unchanged)."""
    return re.sub(r"^(layer|exit)\d+\.", r"\1*.", point)
