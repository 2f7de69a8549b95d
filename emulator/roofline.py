"""The whole-program roofline: the fewest cycles a run's work allows on a config (benchmarks compare cycles to it)."""

from __future__ import annotations

from typing import Any

from edgebert.isa.costs import Costs
from edgebert.isa.hardware import HardwareConfig


def program_roofline(report: dict[str, Any], hw: HardwareConfig) -> tuple[float, str, dict[str, float]]:
    """(bound cycles, the resource bounding it, every resource's cycles) of one run's report.

    PU: the MACs at the config's peak rate for their operand formats (`Costs.peak_macs_per_cycle`: fp32, AF8);
    DRAM and eNVM: their bytes / bandwidth; SRAM: the bytes its DMA port carries (every byte moved to or from DRAM /
    eNVM); the PU's operand reads are the PU term (the peak rate includes the operand feed) and the SFU's reads the
    SFU term (its busy cycles: per-vector states and read latencies)."""
    costs = Costs(hw)
    macs = report["macs_by_format"]
    bounds = {"pu": float(macs["f32"] / costs.peak_macs_per_cycle(4, 4) + macs["af8"] / costs.peak_macs_per_cycle())}
    t = report["traffic_bytes"]
    for level in ("dram", "envm"):
        bounds[level] = (t[level]["read"] + t[level]["write"]) / hw.memory.level(level).bandwidth
    bounds["sram"] = sum(t[lv]["read"] + t[lv]["write"] for lv in ("dram", "envm")) / hw.memory.sram.bandwidth
    bounds["sfu"] = float(report["units"]["sfu"]["busy_cycles"])
    best = max(bounds, key=bounds.get)
    return bounds[best], best, bounds
