"""Early exit and latency-aware DVFS options -> what the lowering needs (`EarlyExitSpec`: heads, threshold, DVFS
tables), from the model's metadata and a predictor (lookup table or calibration entropies).

The exit code itself is compiler/lower/exits.py (and lower/exit_loop.py for the looped form); the DVFS plan is
made once the program's cycles are measured (compiler/dvfs_plan.py). Docs: docs/compiler.md, "Early exit and DVFS".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.compiler.dvfs_plan import fastest_point
from edgebert.compiler.options import EarlyExitOptions
from edgebert.frontend.predictor import build_lookup_table, check_table, predicted_exit_layers
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.traces import read_entropy_array, read_lookup_table


@dataclass
class DvfsTables:
    """What the program embeds for latency-aware DVFS (tables are patched after planning, same sizes)."""

    exit_table: np.ndarray  # int32 [nbins]: layer-1 entropy bin -> predicted exit layer (2 .. L)
    point_table: np.ndarray  # int32 [L + 1]
    recovery_table: np.ndarray  # int32 [L + 1]
    fastest: int
    initial: int
    nbins: int = 100
    scale: float = 100.0
    mode: str = "nearest"


@dataclass
class EarlyExitSpec:
    """Exit heads (graph output names, layer order), the entropy threshold, optional DVFS tables."""

    heads: list[str]
    threshold: float
    dvfs: DvfsTables | None = None


def exit_spec(options: EarlyExitOptions, md: Any, hw: HardwareConfig) -> tuple[EarlyExitSpec, dict[str, Any]]:
    """The exit heads, threshold and DVFS tables (placeholders: every point the fastest, until the plan is made) a
    model's metadata `md` and `options` ask for, and what they add to the program metadata."""
    what = "--latency-target" if options.latency_target_s is not None else "early exit (--threshold)"
    if not md.exit_heads:
        raise CompileError(f"{what} needs a model with exit heads (metadata edgebert.exit_heads); this model has none")
    heads = list(md.exit_heads)
    L = len(heads)
    if md.exit_layers and list(md.exit_layers) != list(range(1, L + 1)):
        raise CompileError(f"early exit needs one exit head after every layer 1..{L}, got layers {list(md.exit_layers)}")
    if options.threshold is not None:
        threshold = float(options.threshold)
    elif md.entropy_thresholds and len(set(md.entropy_thresholds)) == 1:
        threshold = float(md.entropy_thresholds[0])
    else:
        raise CompileError("early exit needs one entropy threshold: the model's metadata has none (or several); "
                           "give --threshold T")
    if not threshold > 0 or not np.isfinite(threshold):
        raise CompileError(f"entropy threshold must be positive, got {threshold}")
    dvfs = None
    if options.latency_target_s is not None:
        if not options.latency_target_s > 0:
            raise CompileError(f"latency target must be positive, got {options.latency_target_s} s")
        if L < 3:
            raise CompileError(f"latency-aware DVFS needs at least 3 layers (exit heads), the model has {L}")
        exit_table = _exit_table(options, threshold, L)
        F = fastest_point(hw)
        dvfs = DvfsTables(exit_table, np.full(L + 1, F, np.int32), np.full(L + 1, F, np.int32), F, hw.dvfs.initial)
    elif options.predictor_table is not None or options.calibration_entropies is not None:
        raise CompileError("--predictor-table / --calibration-entropies need --latency-target")
    metadata = {"thresholds": [threshold],
                "early_exit": {"heads": heads, "threshold": threshold, "num_layers": L, "output": "logits"}}
    return EarlyExitSpec(heads, threshold, dvfs), metadata


def _exit_table(options: EarlyExitOptions, threshold: float, num_layers: int) -> np.ndarray:
    """int32 [100]: layer-1 entropy bin -> predicted exit layer, from the table or calibration entropies."""
    if options.predictor_table is not None and options.calibration_entropies is not None:
        raise CompileError("give either a predictor table or calibration entropies, not both")
    src = options.predictor_table
    if src is not None:
        table = np.asarray(src, dtype=np.float64) if isinstance(src, np.ndarray) else read_lookup_table(src)
        check_table(table)
    elif options.calibration_entropies is not None:
        ent = options.calibration_entropies
        ent = ent if isinstance(ent, np.ndarray) else read_entropy_array(ent)
        if ent.ndim != 2 or ent.shape[1] != num_layers:
            raise CompileError(f"calibration entropies must have one column per layer ({num_layers}), got {ent.shape}")
        table = build_lookup_table(ent)
    else:
        raise CompileError("--latency-target needs a predictor: --predictor-table CSV or --calibration-entropies FILE")
    return predicted_exit_layers(table, threshold, num_layers)
