"""Action counters per DVFS segment, and their conversion to time and energy from the hardware config."""

from __future__ import annotations

from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.table import SPACES, UNITS

#: Energy components of the breakdown, in report order.
COMPONENTS = ("mac_f32", "mac_af8", "sfu", "ctl", *SPACES, "leakage", "dvfs_switch")


class Segment:
    """Everything counted while the accelerator ran at one operating point (one entry of the DVFS timeline)."""

    __slots__ = (
        "point", "start_cycle", "start_s", "switch_s", "switched", "cycles",
        "mac_f32", "mac_af8", "sfu_passes", "ctl_ops", "read", "written", "busy",
    )  # fmt: skip

    def __init__(self, point: int, start_cycle: int, start_s: float, switched: bool, switch_s: float) -> None:
        self.point = point
        self.start_cycle = start_cycle
        self.start_s = start_s  # when the switch into this point began (or the run started)
        self.switched = switched  # True when a DVFS switch led into this segment (charged switch_nj)
        self.switch_s = switch_s  # switching latency paid at the start of this segment
        self.cycles = 0  # core cycles spent at this point (set when the segment closes)
        self.mac_f32 = 0
        self.mac_af8 = 0
        self.sfu_passes = 0  # SFU element-passes
        self.ctl_ops = 0
        self.read = [0] * len(SPACES)  # bytes per memory level
        self.written = [0] * len(SPACES)
        self.busy = [0] * len(UNITS)  # busy cycles per unit

    def seconds(self, hw: HardwareConfig) -> float:
        """Wall time of this segment: its cycles at the point's clock plus the switching latency."""
        return self.cycles / (hw.dvfs.points[self.point].mhz * 1e6) + self.switch_s

    def cycle_to_seconds(self, hw: HardwareConfig, cycle: float) -> float:
        """Absolute time of core cycle `cycle` (which must lie in this segment)."""
        return self.start_s + self.switch_s + (cycle - self.start_cycle) / (hw.dvfs.points[self.point].mhz * 1e6)

    def energy(self, hw: HardwareConfig) -> dict[str, float]:
        """Energy per component in joules: dynamic x (V/Vnom)^2, leakage x (V/Vnom) x time, switching."""
        point = hw.dvfs.points[self.point]
        out = dynamic_energy(hw, self.point, self.mac_f32, self.mac_af8, self.sfu_passes, self.ctl_ops, self.read,
                             self.written)
        out["leakage"] = hw.energy.leakage_mw * 1e-3 * point.volts / hw.dvfs.nominal_point.volts * self.seconds(hw)
        out["dvfs_switch"] = hw.dvfs.switch_nj * 1e-9 if self.switched else 0.0
        return out


def dynamic_energy(hw: HardwareConfig, point: int, mac_f32: float, mac_af8: float, sfu_passes: float,
                   ctl_ops: float, read: list[int] | tuple[int, ...], written: list[int] | tuple[int, ...]
                   ) -> dict[str, float]:
    """Dynamic energy per component (joules) of these actions at operating point `point`: energy per action at the
    nominal voltage x (V/Vnom)^2; memory levels that do not scale with the voltage (off-chip DRAM) unscaled."""
    ratio = hw.dvfs.points[point].volts / hw.dvfs.nominal_point.volts
    dyn = ratio * ratio * 1e-12  # pJ at nominal -> J at this voltage
    e = hw.energy
    out = {
        "mac_f32": mac_f32 * e.mac_f32_pj * dyn,
        "mac_af8": mac_af8 * e.mac_af8_pj * dyn,
        "sfu": sfu_passes * e.sfu_op_pj * dyn,
        "ctl": ctl_ops * e.ctl_op_pj * dyn,
    }
    for i, level in enumerate(SPACES):
        mem = hw.memory.level(level)
        scale = dyn if mem.scales_with_voltage else 1e-12
        out[level] = (read[i] * mem.read_pj_per_byte + written[i] * mem.write_pj_per_byte) * scale
    return out
