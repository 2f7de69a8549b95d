"""One point, start to finish: its compile settings and content-hash key, the compile (or the cached program), the
sentences through the emulator in the point's mode, and the result row. Runs in a Ray worker or in-process.

Status of a row: `ok`; `infeasible` (the config is invalid, the program cannot be compiled for it, e.g. it does not
fit the SRAM, or the latency target is unreachable: some exits miss it even at the fastest point; measured metrics
are kept); `error` (anything else, e.g. an emulator trap: a bug to report). Never an exception out of `evaluate`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebert.emulator.bench.modes import MODES
from edgebert.emulator.bench.path_cache import ReplayRunner
from edgebert.emulator.run_files import split_sentences
from edgebert.emulator.sweep.metrics import config_columns, summarize
from edgebert.emulator.sweep.space import Point
from edgebert.emulator.sweep.workloads import WorkloadPayload, model_file
from edgebert.isa.ebin import read_ebin, write_ebin
from edgebert.isa.errors import EdgebertError, EmulatorTrap
from edgebert.isa.hardware import HardwareConfig, parse_config_text
from edgebert.isa.units import parse_duration

OK, INFEASIBLE, ERROR = "ok", "infeasible", "error"
DEFAULT_MODE = "ee+dvfs"


@functools.cache
def code_digest() -> str:
    """SHA-256 over the sources a compile depends on (edgebert's isa, frontend, compiler and emulator core): a cached
    program is reused only by the code that built it."""
    h = hashlib.sha256()
    for name in ("edgebert.isa", "edgebert.frontend", "edgebert.compiler", "edgebert.emulator"):
        root = Path(importlib.import_module(name).__file__).parent
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root)
            if p.suffix in (".py", ".toml", ".lark") and rel.parts[0] not in ("sweep", "bench", "__pycache__"):
                h.update(f"{name}/{rel.as_posix()}\0".encode() + p.read_bytes())
    return h.hexdigest()


def compile_settings(payload: WorkloadPayload, point: Point) -> dict[str, Any]:
    """What the compile of this point asks for (JSON-ready, canonical): the point's compiler parameters over the
    workload's defaults. Early exit is on when a threshold or latency target is given (or `early_exit = true`);
    the predictor (table, else calibration entropies) is used only with a latency target."""
    values = {**payload.compiler_defaults, **point.group("compiler.")}
    threshold = values.get("threshold")
    threshold = None if threshold in (None, "model") else float(threshold)
    target = values.get("latency_target")
    target_s = None if target in (None, "none") else parse_duration(target)
    early_exit = bool(values.get("early_exit", threshold is not None or target_s is not None))
    predictor = None
    if early_exit and target_s is not None:
        predictor = ("predictor_table" if payload.predictor_table is not None
                     else "calibration" if payload.calibration is not None else None)
    return {
        "seq_len": payload.seq_len,
        "compress": bool(values.get("compress", True)),
        "early_exit": early_exit,
        "threshold": threshold,
        "latency_target_s": target_s if early_exit else None,
        "margin": float(values.get("margin", 0.0)),
        "predictor": predictor,
        "predictor_sha256": payload.digests.get(predictor) if predictor else None,
    }


def compile_key(payload: WorkloadPayload, settings: dict[str, Any], compile_hw: HardwareConfig) -> str:
    """Content hash of everything a program depends on: the model's bytes, the settings, the compile config and
    the compiler's code."""
    data = {"model": payload.model_sha256, "settings": settings, "hw": compile_hw.fingerprint.hex(),
            "hw_text": hashlib.sha256(compile_hw.toml_text().encode()).hexdigest(), "code": code_digest()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def compile_program(payload: WorkloadPayload, settings: dict[str, Any], hw: HardwareConfig) -> Any:
    """`edgebertc` for one point (the same pipeline and options); EdgebertError when it cannot be compiled."""
    from edgebert.compiler.options import CompileOptions, EarlyExitOptions
    from edgebert.compiler.pipeline import compile_model

    exits = None
    if settings["early_exit"]:
        pred = settings["predictor"]
        exits = EarlyExitOptions(settings["threshold"], settings["latency_target_s"],
                                 payload.predictor_table if pred == "predictor_table" else None,
                                 payload.calibration if pred == "calibration" else None, settings["margin"])
    options = CompileOptions(settings["seq_len"], settings["compress"], exits)
    return compile_model(str(model_file(payload)), options, hw).program


@dataclass(frozen=True)
class PointTask:
    """A point as sent to a worker: its configs as TOML text, its compile settings and key."""

    point: Point
    run_hw: str
    compile_hw: str
    settings: dict[str, Any]
    key: str


@dataclass
class Evaluation:
    row: dict[str, Any]
    program: bytes | None = None  # the program when this evaluation compiled it (the driver caches it)
    compile_failure: str | None = None  # the reason when the compile failed (cached too)


def run_sentences(program: Any, hw: HardwareConfig, payload: WorkloadPayload, mode: str) -> tuple[list[dict], dict]:
    """Every sentence of the workload through `program` in `mode`: timing-only replay of an entropy trace (one
    emulation per control path) or full runs of real inputs. Races are checked on the first sentence."""
    no_exit, no_dvfs = MODES[mode]
    runner = ReplayRunner(program, hw)
    if payload.trace is not None:
        runs = [(None, row) for row in payload.trace]
    else:
        runs = [(x, None) for x in split_sentences(payload.inputs, program.metadata.get("inputs", []), payload.name)]
    reports = []
    for i, (x, ent) in enumerate(runs):
        try:
            r = runner.run(x, entropy_values=ent, timing_only=ent is not None, disable_early_exit=no_exit,
                           disable_dvfs=no_dvfs, check_races=i == 0)
        except EmulatorTrap as exc:
            raise EmulatorTrap(f"sentence {i}: {exc}") from None
        reports.append(r.report)
    return reports, runner.stats


def _param_columns(point: Point) -> dict[str, Any]:
    """Every parameter as a column: scalars as they are, labelled groups and structured values by their label."""
    out = {}
    for k, v in point.values.items():
        out[k] = v if isinstance(v, (bool, int, float, str)) else point.labels[k]
    return out


def base_row(point: Point) -> dict[str, Any]:
    return {"point": point.index, "point_id": point.id, **_param_columns(point), "status": OK, "reason": ""}


def failed_row(point: Point, status: str, reason: str) -> dict[str, Any]:
    return base_row(point) | {"status": status, "reason": reason}


def evaluate(task: PointTask, payload: WorkloadPayload, program_bytes: bytes | None) -> Evaluation:
    """Compile (unless `program_bytes` is the cached program) and run one point; never raises."""
    point = task.point
    row = base_row(point)
    try:
        return _evaluate(task, payload, program_bytes, row)
    except Exception as exc:  # noqa: BLE001 - a sweep records every failure as a row and goes on
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Evaluation(row | {"status": ERROR, "reason": f"{type(exc).__name__}: {exc} ({Path(where.filename).name}"
                                                           f":{where.lineno})"})


def _evaluate(task: PointTask, payload: WorkloadPayload, program_bytes: bytes | None, row: dict) -> Evaluation:
    run_hw, compile_hw = parse_config_text(task.run_hw), parse_config_text(task.compile_hw)
    row.update(config_columns(run_hw))
    out = Evaluation(row)
    t0 = time.perf_counter()
    if program_bytes is None:
        try:
            program = compile_program(payload, task.settings, compile_hw)
        except EdgebertError as exc:
            out.compile_failure = f"compile: {exc}"
            row.update(status=INFEASIBLE, reason=out.compile_failure)
            return out
        out.program = program_bytes = write_ebin(program)
    else:
        program = read_ebin(program_bytes, f"program {task.key}")
    row["compile_s"] = time.perf_counter() - t0
    row["compiled_here"] = out.program is not None
    mode = point_mode(task.point)
    target = task.settings["latency_target_s"] or (program.metadata.get("dvfs_table") or {}).get("target_s")
    t0 = time.perf_counter()
    try:
        reports, stats = run_sentences(program, run_hw, payload, mode)
    except EmulatorTrap as exc:
        row.update(status=ERROR, reason=f"run: {exc}")
        return out
    row["run_s"] = time.perf_counter() - t0
    row.update(mode=mode, timing_only=payload.trace is not None, **summarize(reports, target))
    late = program.metadata.get("dvfs_infeasible_exits") or []
    row.update(
        program_sha256=hashlib.sha256(program_bytes).hexdigest(), program_instructions=len(program.code),
        sram_peak_bytes=program.metadata.get("sram_peak_bytes"), compile_key=task.key,
        emulated_runs=stats["emulated"], dvfs_infeasible_exits=",".join(map(str, late)),
    )
    if late:
        row.update(status=INFEASIBLE, reason=f"latency target {task.settings['latency_target_s'] * 1e3:g} ms "
                                             f"unreachable: sentences exiting at layer {late[0]} or later miss it "
                                             "even at the fastest point")
    return out


def point_mode(point: Point) -> str:
    return point.values.get("run.mode", DEFAULT_MODE)
