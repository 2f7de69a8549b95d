"""Early exit and latency-aware DVFS options -> what the lowering needs (`EarlyExitSpec`: heads, threshold, DVFS
tables), from the model's metadata and a predictor (lookup table or calibration entropies).

The exit code itself is compiler/lower/exits.py (and lower/exit_loop.py for the looped form); the DVFS plan is
made once the program's cycles are measured (compiler/dvfs_plan.py). Docs: docs/compiler.md, "Early exit and DVFS".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.compiler.abi import (
    DVFS_TABLES,
)
from edgebert.isa.errors import CompileError


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


# ---- the compile driver --------------------------------------------------------------------------------


@dataclass
class EarlyExitOptions:
    """`edgebertc --threshold/--latency-target/--predictor-table/--calibration-entropies/--dvfs-margin`."""

    threshold: float | None = None  # default: the model's edgebert.entropy_threshold
    latency_target_s: float | None = None  # latency-aware DVFS when set
    predictor_table: str | Path | np.ndarray | None = None  # lookup-table CSV (EdgeBERT format) or array
    calibration_entropies: str | Path | np.ndarray | None = None  # entropy trace [sentences, L] -> table
    margin: float = 0.0  # fraction of the target kept in reserve by the DVFS plan


def _exit_table(options: EarlyExitOptions, threshold: float, num_layers: int) -> np.ndarray:
    """int32 [100]: layer-1 entropy bin -> predicted exit layer, from the table or calibration entropies."""
    from edgebert.frontend.predictor import build_table, check_table, predicted_exit_layers
    from edgebert.isa.traces import read_entropy_array, read_lookup_table

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
        table = build_table(ent)
    else:
        raise CompileError("--latency-target needs a predictor: --predictor-table CSV or --calibration-entropies FILE")
    return predicted_exit_layers(table, threshold, num_layers)


def compile_early_exit(mod: Any, hw: Any, loaded: Any, options: Any, meta: dict[str, Any], compile_relax: Any) -> Any:
    """Compile `mod` with its exit heads as early-exit branches (and DVFS); see `compile_onnx(early_exit=...)`."""
    from edgebert.compiler.dvfs_plan import fastest_point, measure_layer_cycles, plan_dvfs

    opts = EarlyExitOptions() if options is True else options
    md = loaded.metadata
    what = "--latency-target" if opts.latency_target_s is not None else "early exit (--threshold)"
    if not md.exit_heads:
        raise CompileError(f"{what} needs a model with exit heads (metadata edgebert.exit_heads); this model has none")
    heads = list(md.exit_heads)
    L = len(heads)
    if md.exit_layers and list(md.exit_layers) != list(range(1, L + 1)):
        raise CompileError(f"early exit needs one exit head after every layer 1..{L}, got layers {list(md.exit_layers)}")
    if opts.threshold is not None:
        threshold = float(opts.threshold)
    elif md.entropy_thresholds and len(set(md.entropy_thresholds)) == 1:
        threshold = float(md.entropy_thresholds[0])
    else:
        raise CompileError("early exit needs one entropy threshold: the model's metadata has none (or several); "
                           "give --threshold T")
    if not threshold > 0 or not np.isfinite(threshold):
        raise CompileError(f"entropy threshold must be positive, got {threshold}")
    dvfs = None
    exit_table = None
    if opts.latency_target_s is not None:
        if not opts.latency_target_s > 0:
            raise CompileError(f"latency target must be positive, got {opts.latency_target_s} s")
        if L < 3:
            raise CompileError(f"latency-aware DVFS needs at least 3 layers (exit heads), the model has {L}")
        exit_table = _exit_table(opts, threshold, L)
        F = fastest_point(hw)
        dvfs = DvfsTables(exit_table, np.full(L + 1, F, np.int32), np.full(L + 1, F, np.int32), F, hw.dvfs.initial)
    elif opts.predictor_table is not None or opts.calibration_entropies is not None:
        raise CompileError("--predictor-table / --calibration-entropies need --latency-target")
    spec = EarlyExitSpec(heads, threshold, dvfs)
    meta = {**meta, "thresholds": [threshold],
            "early_exit": {"heads": heads, "threshold": threshold, "num_layers": L, "output": "logits"}}
    result = compile_relax(mod=mod, hw=hw, output_names=list(loaded.output_names), output_shapes=None,
                           metadata=meta, early_exit=spec)
    result.program.metadata["early_exit"]["layout"] = result.tile_program.exit_layout
    if dvfs is not None:
        program = result.program
        cycles = measure_layer_cycles(program, hw)
        plan = plan_dvfs(hw, cycles, L, opts.latency_target_s, exit_table, margin=opts.margin)
        new = dict(zip(DVFS_TABLES, (plan.exit_table, plan.point_table, plan.recovery_table), strict=True))
        program.segments = [
            dataclasses.replace(s, data=np.ascontiguousarray(new[s.name], dtype="<i4").tobytes())
            if s.name in new else s for s in program.segments
        ]
        program.metadata["dvfs_table"] = plan.to_json()
        program.metadata["latency_target_s"] = opts.latency_target_s
        program.metadata["dvfs_plan"] = plan.describe(hw).splitlines()
        program.metadata["dvfs_infeasible_exits"] = plan.infeasible_exits(hw)
    return result
