"""Typed options of a compile: what `edgebertc`'s flags (compiler/cli.py) and the Python API ask the pipeline for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Exit policies: `recover` (a sentence predicted too early continues past the prediction, at a recovery operating
#: point) and `forced` (EdgeBERT's predictor: the exit is forced at the predicted layer, earlier exits still allowed).
EXIT_POLICIES = ("recover", "forced")
#: DVFS planners: `table` (predicted exit layer -> operating point) and `bins` (the artifact's DVFS unit: layer-1
#: entropy / scale -> one of 16 bins -> operating point).
DVFS_PLANNERS = ("table", "bins")
#: Where the prologue and layer 1 run under DVFS: at the point the plan chooses, or at the fastest point.
LAYER1_POINTS = ("planned", "fastest")

#: The early-exit compile flags `edgebertc` and `edgebert-bench MODEL.onnx` (a sweep) share: flag -> (metavar, help).
#: A sweep's list-valued flags append how to give several; nothing else may reword them
#: (tests/packaging/test_cli_flags.py).
EARLY_EXIT_FLAGS: dict[str, tuple[str | None, str]] = {
    "--threshold": ("T", "exit entropy threshold"),
    "--latency-target": ("DURATION", "per-sentence latency target of latency-aware DVFS, e.g. 50ms, 0.05s, 50000us"),
    "--predictor-table": ("CSV", "entropy lookup table of EdgeBERT's predictor (the artifact's sst2_lookup_table.csv "
                                 "format)"),
    "--calibration-entropies": ("FILE", "calibration entropies, one sentence per line and one value per layer "
                                        "(sst2_eval_entropy.txt format): the sentences the DVFS plan is optimised "
                                        "for, and the lookup table built from them when none is given"),
    "--dvfs-margin": ("F", "fraction of the latency target the DVFS plan keeps in reserve (default 0)"),
    "--exit-policy": ("POLICY", "recover: a sentence predicted too early continues at a recovery operating point "
                                "(default); forced: EdgeBERT's, the exit is forced at the predicted layer"),
    "--exit-compare": (None, "exit when entropy < threshold (lt, EdgeBERT's software; default) or <= (le, its "
                             "hardware)"),
    "--dvfs-planner": (None, "table: predicted exit layer -> operating point (default); bins: the artifact's DVFS "
                             "unit, layer-1 entropy / scale -> one of 16 bins -> operating point"),
    "--layer1-point": (None, "where the prologue and layer 1 run under DVFS: the plan's choice (default) or the "
                             "fastest point"),
    "--dvfs-bins-scale": ("S", "bins planner: the entropy scale (default: calibrated from --calibration-entropies)"),
}


def early_exit_flag(flag: str, more: str = "") -> dict[str, str | None]:
    """`metavar` and `help` keywords of a shared early-exit flag (`more`: appended after a semicolon)."""
    metavar, text = EARLY_EXIT_FLAGS[flag]
    return {"metavar": metavar, "help": text + (f"; {more}" if more else "")}


@dataclass(frozen=True)
class EarlyExitOptions:
    """`edgebertc --early-exit/--threshold/--latency-target/--predictor-table/--calibration-entropies/--dvfs-margin
    /--exit-policy/--exit-compare/--dvfs-planner/--layer1-point/--dvfs-bins-scale` (docs/compiler.md)."""

    threshold: float | None = None  # default: the model's edgebert.entropy_threshold
    latency_target_s: float | None = None  # latency-aware DVFS when set
    predictor_table: str | Path | np.ndarray | None = None  # lookup-table CSV (EdgeBERT format) or array
    #: entropy trace [sentences, L]: builds the table when none is given; the DVFS plan's exit statistics
    calibration_entropies: str | Path | np.ndarray | None = None
    margin: float = 0.0  # fraction of the target kept in reserve by the DVFS plan
    policy: str = "recover"  # EXIT_POLICIES
    compare: str = "lt"  # exit when H < threshold ("lt") or H <= threshold ("le"): isa.table.EXIT_COMPARES
    planner: str = "table"  # DVFS_PLANNERS
    layer1_point: str = "planned"  # LAYER1_POINTS
    bins_scale: float | None = None  # bins planner: the entropy scale (None: calibrated from the entropies)


@dataclass(frozen=True)
class TaskWeights:
    """A multi-task model's task-specific weights (compiler/multitask.py): weight key (`compression.weight_key`) ->
    the AF8 bias every task's weight in that slot shares (None: fp32), stored dense. `in_place`: each one SRAM
    constant the matmuls read in place (the SRAM task region); else streamed through the staging buffers."""

    formats: Mapping[bytes, int | None]
    in_place: bool = False


@dataclass(frozen=True)
class CompileOptions:
    """One compile: which stages run and how (compiler/pipeline.py)."""

    seq_len: int | None = None  # fix the sequence length of [batch, seq] inputs
    compress: bool = True  # AF8 / bitmask-sparse weights per the model's metadata (False: dense fp32)
    early_exit: EarlyExitOptions | None = None  # exit heads as entropy + early-exit branches (and DVFS)
    task_weights: TaskWeights | None = None  # a multi-task model's task weights (compiler/multitask.py)
    dump_dir: Path | None = None  # write the IR after each stage (`--dump-ir`)
