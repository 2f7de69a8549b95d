"""Early exit and latency-aware DVFS options -> what the lowering needs (`EarlyExitSpec`: heads, threshold, exit
policy and comparison, predictor and DVFS tables), from the model's metadata and a predictor (lookup table and/or
calibration entropies).

The exit code itself is compiler/lower/exits.py (and lower/exit_loop.py for the looped form); the DVFS plan is
made once the program's cycles are measured (compiler/dvfs_plan.py); `retarget` plans a compiled program again for
another latency target. Docs: docs/compiler.md, "Early exit and DVFS".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.compiler import dvfs_bins
from edgebert.compiler.dvfs_model import fastest_point
from edgebert.compiler.dvfs_plan import DvfsPlan, PlanRequest, plan_program_dvfs
from edgebert.compiler.dvfs_samples import calibration_samples
from edgebert.compiler.options import DVFS_PLANNERS, EXIT_POLICIES, LAYER1_POINTS, EarlyExitOptions
from edgebert.frontend.predictor import (
    LUT_MODE,
    LUT_SCALE,
    NBINS,
    build_lookup_table,
    check_table,
    predicted_exit_layers,
)
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program
from edgebert.isa.table import EXIT_COMPARES
from edgebert.isa.traces import read_entropy_array, read_lookup_table


@dataclass
class DvfsTables:
    """What the program embeds for latency-aware DVFS (placeholders, every point the fastest: patched after planning,
    same sizes) and what the planner is asked for."""

    point_table: np.ndarray  # int32 [L + 1]
    recovery_table: np.ndarray  # int32 [L + 1]
    request: PlanRequest
    bin_table: np.ndarray | None = None  # bins planner: int32 [113]

    @property
    def bins_lut_scale(self) -> float:
        """The bins planner's `lut` scale (fine index = floor(H x this))."""
        return dvfs_bins.lut_scale(self.request.bins_scale)


@dataclass
class EarlyExitSpec:
    """Exit heads (graph output names, layer order), the threshold and comparison, the exit policy, the predictor
    table (forced policy or DVFS) and the DVFS tables (with a latency target)."""

    heads: list[str]
    threshold: float
    dvfs: DvfsTables | None = None
    policy: str = "recover"
    compare: str = "lt"
    exit_table: np.ndarray | None = None  # int32 [100]: layer-1 entropy bin -> predicted exit layer 2 .. L
    lut_nbins: int = NBINS
    lut_scale: float = LUT_SCALE
    lut_mode: str = LUT_MODE


def _choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        raise CompileError(f"{flag}: unknown value '{value}' (choose from {', '.join(allowed)})")
    return value


def exit_spec(options: EarlyExitOptions, md: Any, hw: HardwareConfig) -> tuple[EarlyExitSpec, dict[str, Any]]:
    """The exit heads, threshold, policy and tables a model's metadata `md` and `options` ask for, and what they add to
    the program metadata."""
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
    policy = _choice(options.policy, EXIT_POLICIES, "--exit-policy")
    compare = _choice(options.compare, EXIT_COMPARES, "--exit-compare")
    _choice(options.planner, DVFS_PLANNERS, "--dvfs-planner")
    _choice(options.layer1_point, LAYER1_POINTS, "--layer1-point")
    dvfs_asked = options.latency_target_s is not None
    if not dvfs_asked:
        for flag, value, default in (("--dvfs-planner", options.planner, "table"),
                                     ("--layer1-point", options.layer1_point, "planned"),
                                     ("--dvfs-bins-scale", options.bins_scale, None)):
            if value != default:
                raise CompileError(f"{flag} needs --latency-target")
    exit_table = None
    if dvfs_asked or policy == "forced":
        if L < 3:
            raise CompileError(f"{'latency-aware DVFS' if dvfs_asked else 'the forced exit policy'} needs at least "
                               f"3 layers (exit heads), the model has {L}")
        exit_table = _exit_table(options, threshold, L, compare,
                                 "--latency-target" if dvfs_asked else "--exit-policy forced")
    elif options.predictor_table is not None or options.calibration_entropies is not None:
        raise CompileError("--predictor-table / --calibration-entropies need --latency-target (or --exit-policy forced)")
    dvfs = None
    if dvfs_asked:
        if not options.latency_target_s > 0:
            raise CompileError(f"latency target must be positive, got {options.latency_target_s} s")
        dvfs = _dvfs_tables(options, threshold, L, compare, policy, exit_table, hw)
    spec = EarlyExitSpec(heads, threshold, dvfs, policy, compare, exit_table)
    early = {"heads": heads, "threshold": threshold, "num_layers": L, "output": "logits", "policy": policy,
             "compare": compare}
    if exit_table is not None:
        early["predictor"] = {"nbins": NBINS, "scale": LUT_SCALE, "mode": LUT_MODE, "exit_table": exit_table.tolist()}
    return spec, {"thresholds": [threshold], "early_exit": early}


def _calibration(options: EarlyExitOptions, num_layers: int) -> np.ndarray | None:
    ent = options.calibration_entropies
    if ent is None:
        return None
    ent = np.asarray(ent, np.float64) if isinstance(ent, np.ndarray) else read_entropy_array(ent)
    if ent.ndim != 2 or ent.shape[1] != num_layers:
        raise CompileError(f"calibration entropies must have one column per layer ({num_layers}), got {ent.shape}")
    return ent


def _exit_table(options: EarlyExitOptions, threshold: float, num_layers: int, compare: str,
                asker: str = "--latency-target") -> np.ndarray:
    """int32 [100]: layer-1 entropy bin -> predicted exit layer, from the table (else the calibration entropies)."""
    src = options.predictor_table
    if src is not None:
        table = np.asarray(src, dtype=np.float64) if isinstance(src, np.ndarray) else read_lookup_table(src)
        check_table(table)
    else:
        ent = _calibration(options, num_layers)
        if ent is None:
            raise CompileError(f"{asker} needs a predictor: --predictor-table CSV or --calibration-entropies FILE")
        table = build_lookup_table(ent)
    return predicted_exit_layers(table, threshold, num_layers, compare)


def _dvfs_tables(options: EarlyExitOptions, threshold: float, L: int, compare: str, policy: str,
                 exit_table: np.ndarray, hw: HardwareConfig) -> DvfsTables:
    """Placeholder tables and the plan request (calibration samples, the bins planner's scale)."""
    ent = _calibration(options, L)
    scale = None
    if options.planner == "bins":
        if options.bins_scale is not None:
            scale = dvfs_bins.check_scale(float(options.bins_scale))
        elif ent is not None:
            scale = dvfs_bins.calibrate_scale(ent[:, 0])
        else:
            raise CompileError("--dvfs-planner bins needs calibration entropies (to set the entropy scale) or "
                               "--dvfs-bins-scale")
    request = PlanRequest(L, exit_table, policy, options.planner, options.layer1_point, options.margin, None, scale)
    if ent is not None:
        request = PlanRequest(L, exit_table, policy, options.planner, options.layer1_point, options.margin,
                              calibration_samples(ent, threshold, compare, exit_table, policy, request.class_of),
                              scale)
    F = fastest_point(hw)
    bin_table = np.full(dvfs_bins.FINE_BINS, F, np.int32) if options.planner == "bins" else None
    return DvfsTables(np.full(L + 1, F, np.int32), np.full(L + 1, F, np.int32), request, bin_table)


def retarget(program: Program, hw: HardwareConfig, target_s: float, options: EarlyExitOptions) -> tuple[Program,
                                                                                                         DvfsPlan]:
    """A copy of a compiled DVFS program planned for another latency target (the code does not depend on the target:
    only the tables and the plan's metadata change). `options` must be the ones it was compiled with."""
    early = program.metadata.get("early_exit")
    if not early or "dvfs_table" not in program.metadata:
        raise CompileError("retarget needs a program compiled with --latency-target")
    L, threshold = int(early["num_layers"]), float(early["threshold"])
    exit_table = np.asarray(program.metadata["dvfs_table"]["exit_table"], np.int32)
    tables = _dvfs_tables(options, threshold, L, early.get("compare", "lt"), early.get("policy", "recover"),
                          exit_table, hw)
    new = copy.copy(program)
    new.metadata = copy.deepcopy(program.metadata)
    new.segments = list(program.segments)
    plan = plan_program_dvfs(new, hw, target_s, tables.request, threshold)
    return new, plan
