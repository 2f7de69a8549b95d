"""What `edgebertc` says on success: the program's size, bytes per memory level, SRAM peak and the compile time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program
from edgebert.isa.table import SPACES, WORD_BYTES
from edgebert.isa.units import format_bytes, format_time


def compile_summary(program: Program, output: str | Path, hw: HardwareConfig, seconds: float,
                    timings: dict[str, float] | None = None) -> dict[str, Any]:
    """A JSON-ready summary of a compiled program: instructions, data bytes placed per memory level (weights in eNVM,
    constants in DRAM or SRAM), the SRAM peak of the activations against the config's SRAM, wall time per stage."""
    data = dict.fromkeys(SPACES, 0)
    for seg in program.segments:
        data[seg.space] = data.get(seg.space, 0) + len(seg.data)
    early = program.metadata.get("early_exit") or {}
    return {
        "output": str(output),
        "hw": hw.name,
        "instructions": len(program.code),
        "code_bytes": len(program.code) * WORD_BYTES,
        "data_bytes": data,
        "sram_peak_bytes": program.metadata.get("sram_peak_bytes"),
        "sram_bytes": hw.memory.sram.size_bytes,
        "early_exit": {k: early.get(k) for k in ("threshold", "policy", "layout")} if early else None,
        "latency_target_s": (program.metadata.get("dvfs_table") or {}).get("target_s"),
        "seconds": seconds,
        "stage_seconds": dict(timings or {}),
    }


def summary_line(s: dict[str, Any]) -> str:
    """`edgebertc: out/albert.ebin: 149 instructions, eNVM 423.5 KiB, DRAM 0 B, SRAM 0 B of data, SRAM peak 84.3 KiB
    of 4.000 MiB (ideal-256mac), 3.2 s`."""
    levels = ", ".join(f"{name} {format_bytes(s['data_bytes'].get(key, 0))}"
                       for key, name in (("envm", "eNVM"), ("dram", "DRAM"), ("sram", "SRAM")))
    peak = s["sram_peak_bytes"]
    text = f"edgebertc: {s['output']}: {s['instructions']:,} instructions, {levels} of data"
    if peak is not None:
        text += f", SRAM peak {format_bytes(peak)} of {format_bytes(s['sram_bytes'])}"
    text += f" ({s['hw']})"
    if s.get("early_exit"):
        e = s["early_exit"]
        text += f", early exit at entropy {e['threshold']:g} ({e['policy']})" if e.get("threshold") is not None \
            else ", early exit"
    if s.get("latency_target_s"):
        text += f", DVFS for {format_time(s['latency_target_s'], 3)}"
    return text + f", {format_time(s['seconds'], 2)}"
