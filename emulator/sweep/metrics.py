"""A point's row metrics from its per-sentence run reports: cycles, latency percentiles and share within the target,
energy per sentence and per component, bytes per memory level, exit layer, DVFS switches; the area and name of the
point's config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgebert.emulator.bench.modes import PERCENTILES
from edgebert.emulator.energy import COMPONENTS
from edgebert.isa.area import area_mm2
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.table import SPACES


def summarize(reports: Sequence[dict[str, Any]], target_s: float | None) -> dict[str, Any]:
    """Means per sentence (and latency percentiles, numpy's linear interpolation as edgebert-bench) over `reports`."""
    lat = np.array([r["seconds"] for r in reports])
    exits = [r["exit_layer"] for r in reports if r["exit_layer"] is not None]
    out: dict[str, Any] = {
        "sentences": len(reports),
        "cycles_mean": float(np.mean([r["cycles"] for r in reports])),
        **{f"latency_p{p}_s": float(np.percentile(lat, p)) for p in PERCENTILES},
        "latency_mean_s": float(lat.mean()),
        "latency_max_s": float(lat.max()),
        "latency_target_s": target_s,
        "within_target": float(np.mean(lat <= target_s)) if target_s is not None else None,
        "energy_per_sentence_j": float(np.mean([r["energy_j"] for r in reports])),
    }
    for c in COMPONENTS:
        out[f"energy_j.{c}"] = float(np.mean([r["energy_breakdown_j"][c] for r in reports]))
    for level in SPACES:
        for way in ("read", "write"):
            out[f"bytes.{level}.{way}"] = float(np.mean([r["traffic_bytes"][level][way] for r in reports]))
    out["exit_layer_mean"] = float(np.mean(exits)) if exits else None
    out["dvfs_switches_mean"] = float(np.mean([len(r["dvfs"]) - 1 for r in reports]))
    out["races_first_sentence"] = reports[0]["race_count"]
    return out


def config_columns(hw: HardwareConfig) -> dict[str, Any]:
    """What a row knows from the point's config alone (also when its program cannot be built): area, name."""
    out: dict[str, Any] = {f"area_mm2.{name}": mm2 for name, mm2 in (area_mm2(hw) or {}).items()}
    return out | {"hw_name": hw.name, "hw_fingerprint": hw.fingerprint.hex()}
