"""Cycle costs of one instruction on its unit, read only from the hardware config."""

from __future__ import annotations

from edgebert.isa.errors import HardwareConfigError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.table import SPACES


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for non-negative integers."""
    return -(-a // b)


def dma_cycles(hw: HardwareConfig, src: int, dst: int, nbytes: int) -> int:
    """Move `nbytes` between two levels: the slower latency, then the narrower bandwidth."""
    a, b = hw.memory.level(SPACES[src]), hw.memory.level(SPACES[dst])
    return max(a.latency_cycles, b.latency_cycles) + ceil_div(nbytes, min(a.bandwidth, b.bandwidth))


def matmul_cycles(hw: HardwareConfig, macs: int) -> int:
    """Fill the MAC pipeline, then macs_per_cycle MACs per cycle."""
    return hw.pu.pipeline_cycles + ceil_div(macs, hw.pu.macs_per_cycle)


def sfu_passes(hw: HardwareConfig, mnemonic: str) -> int:
    """Passes per element of an SFU instruction (`vadd` -> `add`, `vmov` -> `mov`, ...)."""
    key = mnemonic[1:] if mnemonic.startswith("v") and mnemonic[1:] in hw.sfu.passes else mnemonic
    if key not in hw.sfu.passes:
        raise HardwareConfigError(f"hardware config field 'sfu.passes.{key}': missing (needed by '{mnemonic}')")
    return hw.sfu.passes[key]


def sfu_cycles(hw: HardwareConfig, element_passes: int) -> int:
    """Fill the SFU pipeline, then `lanes` element-passes per cycle."""
    return hw.sfu.pipeline_cycles + ceil_div(element_passes, hw.sfu.lanes)
