"""Silicon area of a hardware config per component, Accelergy-style: the config's `[area]` table gives a figure per
unit of each component (per MAC, per SFU lane, per KiB of SRAM and per buffer macro, per MiB of eNVM, fixed blocks),
the config's own sizes give the counts. A pure function of the config, like `isa.costs`."""

from __future__ import annotations

from edgebert.isa.hardware import HardwareConfig

UM2 = 1e-6  # mm^2 per um^2
KIB, MIB = 1024, 1 << 20


def area_mm2(hw: HardwareConfig) -> dict[str, float] | None:
    """{component: mm^2} and `total`, or None when the config has no area model.

    Components: `pu.mac_af8` and `pu.mac_f32` (vector_size x lanes MACs of each format), `sfu` (sfu.lanes lanes),
    one `sram.<buffer>` per SRAM buffer name (count x (macro + KiB x density); `sram` when the SRAM is one buffer),
    `envm` (its size in MiB x density), `ldo`, `pll`, `control`. DRAM is off chip: no area.
    """
    a = hw.area
    if a is None:
        return None
    macs = hw.pu.macs_per_cycle
    out = {
        "pu.mac_af8": macs * a.mac_af8_um2 * UM2,
        "pu.mac_f32": macs * a.mac_f32_um2 * UM2,
        "sfu": hw.sfu.lanes * a.sfu_lane_um2 * UM2,
    }
    sram = hw.memory.sram
    for _, _, buf in sram.regions("sram"):
        key = f"sram.{buf.name}" if sram.buffers else "sram"
        out[key] = out.get(key, 0.0) + a.sram_macro_mm2 + buf.size_bytes / KIB * a.sram_mm2_per_kib
    out["envm"] = hw.memory.envm.size_bytes / MIB * a.envm_mm2_per_mib
    out["ldo"], out["pll"], out["control"] = a.ldo_mm2, a.pll_mm2, a.control_mm2
    out["total"] = sum(out.values())
    return out
