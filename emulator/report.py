"""The run report: a JSON-ready dict of cycles, time, energy, traffic, instruction mix, DVFS timeline, races, area."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from edgebert.emulator.energy import COMPONENTS
from edgebert.isa.area import area_mm2
from edgebert.isa.table import SPACES, UNITS

if TYPE_CHECKING:
    from edgebert.emulator.machine import Machine


def build_report(m: Machine, exit_layer: int | None) -> dict[str, Any]:
    """Summarise a (possibly trapped) run."""
    hw = m.hw
    breakdown = dict.fromkeys(COMPONENTS, 0.0)
    timeline = []
    busy_cycles = [0] * len(UNITS)
    busy_seconds = [0.0] * len(UNITS)
    traffic = {level: {"read": 0, "write": 0} for level in SPACES}
    macs = {"f32": 0, "af8": 0}
    sfu_passes = 0
    by_point: dict[str, float] = {}
    for seg in m.segments:
        point = hw.dvfs.points[seg.point]
        energy = seg.energy(hw)
        for k, v in energy.items():
            breakdown[k] += v
        hz = point.mhz * 1e6
        for u in range(len(UNITS)):
            busy_cycles[u] += seg.busy[u]
            busy_seconds[u] += seg.busy[u] / hz
        for i, level in enumerate(SPACES):
            traffic[level]["read"] += seg.read[i]
            traffic[level]["write"] += seg.written[i]
        macs["f32"] += seg.mac_f32
        macs["af8"] += seg.mac_af8
        sfu_passes += seg.sfu_passes
        timeline.append(
            {
                "point": seg.point,
                "volts": point.volts,
                "mhz": point.mhz,
                "start_s": seg.start_s,
                "start_cycle": seg.start_cycle,
                "switch_s": seg.switch_s,
                "cycles": seg.cycles,
                "seconds": seg.seconds(hw),
                "energy_j": sum(energy.values()),
                "energy_breakdown_j": energy,
                "actions": {
                    "mac_f32": seg.mac_f32,
                    "mac_af8": seg.mac_af8,
                    "sfu_element_passes": seg.sfu_passes,
                    "ctl_ops": seg.ctl_ops,
                    "read_bytes": dict(zip(SPACES, seg.read, strict=True)),
                    "write_bytes": dict(zip(SPACES, seg.written, strict=True)),
                },
            }
        )
        key = str(seg.point)
        by_point[key] = by_point.get(key, 0.0) + sum(energy.values())
    mix: Counter[str] = Counter()
    for pc, count in enumerate(m.pc_counts):
        if count:
            mix[m.program.code[pc].mnemonic] += count
    seconds = sum(seg["seconds"] for seg in timeline)
    return {
        "hw": hw.name,
        "hw_fingerprint": hw.fingerprint.hex(),
        "halted": m.halted,
        "cycles": m.cycles,
        "seconds": seconds,
        "energy_j": sum(breakdown.values()),
        "energy_breakdown_j": breakdown,
        "traffic_bytes": traffic,
        "instructions": sum(m.pc_counts),
        "instruction_mix": dict(sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))),
        "macs": macs["f32"] + macs["af8"],
        "macs_by_format": macs,
        "sfu_element_passes": sfu_passes,
        "units": {
            UNITS[u]: {"busy_cycles": busy_cycles[u], "busy_seconds": busy_seconds[u],
                       "utilization": busy_cycles[u] / m.cycles if m.cycles else 0.0}
            for u in range(len(UNITS))
        },
        "exit_layer": exit_layer,
        "dvfs": timeline,
        "energy_by_point_j": by_point,
        "entropy_injected": m.entropy_used if m.entropy_values is not None else None,
        "races": m.races,
        "race_count": m.race_count if m.check_races else None,
        "trap": str(m.trap) if m.trap is not None else None,
        "area_mm2": area_mm2(hw),
    }
