"""The public Python API: compile, load/save, emulate, bench and sweep (the command-line tools wrap these).

Every function takes paths or in-memory objects, returns typed results, raises `EdgebertError` (one message naming
the file, field or instruction at fault) and never prints: warnings go through `warnings.warn(EdgebertWarning)`,
progress through the `progress` argument (`progress_bars()` gives rich bars on a terminal).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebert.isa.errors import EdgebertError, EdgebertWarning
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program
from edgebert.isa.progress import Progress, progress_or_silent, terminal_progress

if TYPE_CHECKING:
    from edgebert.emulator.sweep.engine import SweepSummary
    from edgebert.emulator.sweep.spec import Spec

PathLike = str | Path
#: What `hw=` takes: a bundled config's name, a TOML file, a loaded config, or None (see each function).
HardwareLike = str | Path | HardwareConfig | None


def progress_bars(quiet: bool = False) -> Any:
    """A context giving the `Progress` to pass as `progress=`: rich bars on a terminal (or in a notebook), nothing
    when `quiet` or when the output is not a terminal. `with eb.progress_bars() as p: eb.bench(..., progress=p)`."""
    return terminal_progress(quiet)


# ---- hardware, programs ------------------------------------------------------------------------------------------


def hardware(hw: HardwareLike = None) -> HardwareConfig:
    """A hardware config: a bundled name (`ideal-256mac`, `edgebert-cmod`), a TOML file, a loaded config (returned as
    is), or None for the default (`edgebert-cmod`, `isa.hardware.DEFAULT_CONFIG`)."""
    if isinstance(hw, HardwareConfig):
        return hw
    from edgebert.isa.hardware import load_config

    return load_config(hw)


def load(path: PathLike) -> Program:
    """A program from a `.ebin` file, or assembled from a `.s` file."""
    from edgebert.emulator.run_files import read_program

    return read_program(path)


def save(program: Program, path: PathLike) -> Path:
    """Write `program` to `path` (atomically): assembly text for a `.s` suffix (re-assembles to the same bytes), else
    the `.ebin` binary. Returns the path."""
    if Path(path).suffix.lower() == ".s":
        from edgebert.isa.disassembler import disassemble
        from edgebert.isa.safe_io import write_atomic

        write_atomic(path, disassemble(program))
    else:
        from edgebert.isa.ebin import save_ebin

        save_ebin(program, path)
    return Path(path)


def _program_and_config(program: Program | PathLike, hw: HardwareLike) -> tuple[Program, HardwareConfig]:
    """The program (loaded when a path) and the config it runs on: a HardwareConfig as given, else the `--hw` rule
    (`hw` a name or file, or None for the program's own config; an EdgebertWarning when they differ)."""
    from edgebert.isa.program_config import select_config

    prog = program if isinstance(program, Program) else load(program)
    if isinstance(hw, HardwareConfig):
        return prog, hw
    where = str(program) if not isinstance(program, Program) else "the program"
    config, warning = select_config(prog.metadata, prog.hw_fingerprint, where, None if hw is None else str(hw))
    if warning:
        warnings.warn(warning, EdgebertWarning, stacklevel=3)
    return prog, config


# ---- compile -----------------------------------------------------------------------------------------------------


def compile(  # the verb users expect (`edgebert.compile`); Python's builtin stays `builtins.compile`
    model: PathLike | Any | Sequence[PathLike] | Mapping[str, PathLike],
    *,
    hw: HardwareLike = None,
    seq_len: int | None = None,
    compress: bool = True,
    early_exit: bool = False,
    threshold: float | None = None,
    latency_target: str | float | None = None,
    predictor_table: PathLike | np.ndarray | None = None,
    calibration_entropies: PathLike | np.ndarray | None = None,
    dvfs_margin: float = 0.0,
    exit_policy: str = "recover",
    exit_compare: str = "lt",
    dvfs_planner: str = "table",
    layer1_point: str = "planned",
    dvfs_bins_scale: float | None = None,
    task_thresholds: Mapping[str, float] | None = None,
    task_placement: str = "auto",
    dump_ir: PathLike | None = None,
    timings: dict[str, float] | None = None,
    progress: Progress | None = None,
) -> Program:
    """Compile an ONNX model (path or `onnx.ModelProto`) for `hw` (default `edgebert-cmod`): `edgebertc`'s pipeline.

    `seq_len` fixes dynamic sequence axes; `compress=False` ignores the model's AF8/pruning settings (dense fp32).
    Early exit (models with exit heads): `early_exit=True`, implied by `threshold` (default: the model's),
    `latency_target` ("50ms" or seconds: latency-aware DVFS), `predictor_table` / `calibration_entropies` (a CSV /
    entropy trace path or an array), `exit_policy` ("recover", "forced"), `exit_compare` ("lt", "le"),
    `dvfs_planner` ("table", "bins"), `layer1_point` ("planned", "fastest"), `dvfs_bins_scale`, `dvfs_margin`; see
    docs/compiler.md. Several task models of one backbone (a list of paths, or {task name: path}) compile into one
    multi-task program (`task_thresholds`, `task_placement`: docs/multitask.md). `dump_ir`: a folder for the IR
    after each stage; `timings`: filled with each stage's seconds; `progress`: one step per stage.
    """
    from edgebert.compiler.options import CompileOptions, EarlyExitOptions
    from edgebert.isa.units import parse_duration

    config = hardware(hw)
    target = parse_duration(latency_target) if isinstance(latency_target, str) else latency_target
    wanted = (early_exit or threshold is not None or target is not None or predictor_table is not None
              or calibration_entropies is not None or exit_policy != "recover" or exit_compare != "lt")
    exits = EarlyExitOptions(threshold, target, predictor_table, calibration_entropies, dvfs_margin, exit_policy,
                             exit_compare, dvfs_planner, layer1_point, dvfs_bins_scale) if wanted else None
    if isinstance(model, Mapping) or (isinstance(model, Sequence) and not isinstance(model, str)):
        progress_or_silent(progress).note(f"compiling {len(model)} task models into one program")
        return _compile_tasks(model, config, exits, threshold, task_thresholds, task_placement, seq_len)
    from edgebert.compiler.pipeline import compile_model

    options = CompileOptions(seq_len, compress, exits, dump_dir=Path(dump_ir) if dump_ir is not None else None)
    name = Path(model).name if isinstance(model, (str, Path)) else "model"
    with progress_or_silent(progress).task(f"compiling {name}") as bar:
        return compile_model(model, options, config, timings,
                             on_stage=lambda stage: bar.update(description=f"compiling {name}: {stage}")).program


def _compile_tasks(models: Sequence[Any] | Mapping[str, Any], hw: HardwareConfig, exits: Any,
                   threshold: float | None, task_thresholds: Mapping[str, float] | None, placement: str,
                   seq_len: int | None) -> Program:
    """Task models (paths, or {name: path}) -> one multi-task program; with a latency target every task gets the
    same early-exit options (its own DVFS plan)."""
    from edgebert.compiler.multitask import compile_multitask

    named = isinstance(models, Mapping)
    names: list[str | None] = list(models) if named else [None] * len(models)
    paths = list(models.values()) if named else list(models)
    thresholds = dict(task_thresholds or {}) | ({"*": threshold} if threshold is not None else {})
    dvfs = None
    if exits is not None and exits.latency_target_s is not None:
        dvfs = dict.fromkeys(names if named else _task_names(paths), exits)
    return compile_multitask(paths, hw, names=names, thresholds=thresholds, placement=placement, seq_len=seq_len,
                             dvfs=dvfs).program


def _task_names(paths: Sequence[Any]) -> list[str]:
    from edgebert.compiler.multitask import load_task

    return [load_task(p).name for p in paths]


# ---- emulate -----------------------------------------------------------------------------------------------------


class Report(dict):
    """A run's report (a plain JSON-ready dict, docs/emulator.md "Report") with the views people read."""

    @property
    def cycles(self) -> int:
        return self["cycles"]

    @property
    def seconds(self) -> float:
        return self["seconds"]

    @property
    def energy_j(self) -> float:
        return self["energy_j"]

    @property
    def exit_layer(self) -> int | None:
        return self["exit_layer"]

    def summary(self) -> str:
        """One line: cycles, time and energy in units that suit them, config, operating points, exit layer."""
        from edgebert.emulator.report_view import one_line

        return one_line(self)

    def op_classes(self) -> dict[str, dict[str, Any]]:
        """Per op class (matmul, softmax, layer norm, ..., load, store, control): instructions, unit cycles, MACs,
        bytes per level, dynamic energy; needs a profiled run (`emulate(..., profile=True)`, the default)."""
        return self._breakdown()["op_classes"]

    def layers(self) -> list[dict[str, Any]]:
        """Per layer-loop iteration (and the code before and after): time, cycles, energy with its leakage share."""
        return self._breakdown()["layers"]

    def roofline(self) -> dict[str, Any]:
        """Per op class: its roof (fewest unit cycles its work allows), the share attained and the bound it hits."""
        return self._breakdown()["roofline"]

    def _breakdown(self) -> dict[str, Any]:
        if "breakdown" not in self:
            raise EdgebertError("this report has no breakdown: run with emulate(..., profile=True)")
        return self["breakdown"]

    def csv_rows(self) -> list[dict[str, Any]]:
        """The breakdown as flat rows (`kind` op_class / layer / total), the `--csv` file's rows."""
        from edgebert.emulator.report_view import csv_rows

        self._breakdown()
        return csv_rows(self)

    def save_json(self, path: PathLike) -> None:
        """Strict JSON (non-finite numbers as null), written atomically."""
        from edgebert.emulator.run_files import write_json

        write_json(path, dict(self))

    def save_csv(self, path: PathLike) -> None:
        """The breakdown rows as CSV (seconds, joules, bytes), written atomically."""
        from edgebert.emulator.report_view import CSV_COLUMNS
        from edgebert.emulator.run_files import write_csv

        write_csv(path, self.csv_rows(), CSV_COLUMNS)

    def plot(self, path: PathLike, *, title: str | None = None) -> None:
        """Energy per component (and with the breakdown: per op class with its bound, per layer); .png/.svg/.pdf."""
        from edgebert.emulator.plot import plot_energy

        plot_energy(self, path, title=title)


@dataclass
class Result:
    """What `emulate` returns: outputs by name, the report, the exit layer, every entropy the exit heads computed (or
    replayed) in order (a calibration trace row when run with `early_exit=False`), the Chrome/Perfetto trace (with
    `trace=True`) and, with `raise_on_trap=False`, the trap that stopped the run."""

    outputs: dict[str, np.ndarray]
    report: Report
    exit_layer: int | None
    entropies: list[float]
    trace: dict[str, Any] | None = None
    trap: EdgebertError | None = None

    def save_trace(self, path: PathLike) -> None:
        """The trace as JSON for ui.perfetto.dev or chrome://tracing."""
        if self.trace is None:
            raise EdgebertError("no trace: run with emulate(..., trace=True)")
        from edgebert.emulator.run_files import write_json

        write_json(path, self.trace)

    def save_outputs(self, path: PathLike) -> None:
        """The outputs as an .npz keyed by output name, at exactly `path`."""
        from edgebert.emulator.run_files import write_npz

        write_npz(path, self.outputs)


def read_entropies(path: PathLike) -> list[list[float]]:
    """An entropy trace (EdgeBERT's sst2_eval_entropy.txt format): one list of per-exit entropies per sentence."""
    from edgebert.isa.traces import read_entropy_trace

    return read_entropy_trace(path)


def _inputs(inputs: Mapping[str, Any] | PathLike | None) -> dict[str, np.ndarray]:
    if inputs is None:
        return {}
    if isinstance(inputs, (str, Path)):
        from edgebert.emulator.run_files import load_inputs

        return load_inputs(inputs)
    return {k: np.asarray(v) for k, v in inputs.items()}


def emulate(
    program: Program | PathLike,
    inputs: Mapping[str, Any] | PathLike | None = None,
    *,
    hw: HardwareLike = None,
    entropies: Sequence[float] | None = None,
    timing_only: bool = False,
    early_exit: bool = True,
    dvfs: bool = True,
    task: str | None = None,
    resident_task: str | None = None,
    trace: bool = False,
    profile: bool = True,
    check_uninitialized: bool = False,
    max_cycles: int | None = None,
    max_instructions: int | str | None = "auto",
    raise_on_trap: bool = True,
    name: str | None = None,
) -> Result:
    """Run `program` (a Program or a `.ebin`/`.s` path) on the emulated accelerator.

    `inputs`: arrays by input name (or an `.npz` path); `hw`: the config to run on (default: the one the program was
    compiled for; another name or file is a what-if, with an EdgebertWarning; a HardwareConfig is taken as given). `entropies`: one sentence's recorded entropies,
    replacing the computed ones in order (with `timing_only=True` no inputs are needed: same costs, no numerics).
    `early_exit=False` / `dvfs=False`: the what-if switches (exits never taken, DVFS requests ignored). `task` /
    `resident_task`: a multi-task program's task. `trace`: keep the Chrome/Perfetto trace; `profile`: the report's
    per-op-class / per-layer breakdown and roofline (on by default; off is faster). A trap raises EmulatorTrap
    (`.result` holds the partial run) unless `raise_on_trap=False`, which returns it with `.trap` set. `name`: what
    the report and its figure call the program (default: its path).
    """
    from edgebert.emulator.run_files import check_entropy_row
    from edgebert.emulator.runner import AUTO, DEFAULT_MAX_CYCLES, run

    prog, config = _program_and_config(program, hw)
    arrays = _inputs(inputs)
    if entropies is not None:
        note = check_entropy_row(prog, len(entropies))
        if note:
            warnings.warn(note, EdgebertWarning, stacklevel=2)
        declared = [e["name"] for e in prog.metadata.get("inputs", [])]
        missing = [n for n in declared if n not in arrays]
        if missing and not timing_only:
            raise EdgebertError(
                f"recorded entropies replace the computed ones, but the program still needs its inputs "
                f"({', '.join(missing)} missing): pass timing_only=True (--timing-only: costs only, no inputs needed) "
                "or the inputs (--inputs: full numerics, the recorded entropies steering the exits)")
    res = run(prog, arrays, config, max_cycles=DEFAULT_MAX_CYCLES if max_cycles is None else max_cycles,
              max_instructions=AUTO if max_instructions == "auto" else max_instructions, entropy_values=entropies,
              trace=trace, check_uninitialized=check_uninitialized, raise_on_trap=raise_on_trap,
              timing_only=timing_only, disable_early_exit=not early_exit, disable_dvfs=not dvfs, task=task,
              resident_task=resident_task, profile=profile)
    report = Report(res.report)
    if name is not None or not isinstance(program, Program):
        report["program"] = name if name is not None else str(program)
    if task is not None and res.trap is None:
        from edgebert.emulator.multitask import switch_cost

        report["task_switch"] = switch_cost(prog, arrays, task, config, resident_task)
    chrome = None
    if trace and res.machine is not None:
        from edgebert.emulator.trace import chrome_trace

        chrome = chrome_trace(res.machine)
    entropies = list(res.machine.entropy_log) if res.machine is not None else []
    return Result(res.outputs, report, res.exit_layer, entropies, chrome, res.trap)


# ---- bench -------------------------------------------------------------------------------------------------------


class BenchResult(dict):
    """`bench`'s JSON-ready result (docs/bench.md): per mode latency percentiles, energy, exit layers, accuracy; the
    savings; per-sentence values under `per_sentence`."""

    def plot(self, path: PathLike, *, title: str | None = None) -> None:
        """Latency CDFs against the target, energy per sentence and exit layers per mode (.png/.svg/.pdf)."""
        from edgebert.emulator.bench.mode_plots import plot_bench

        plot_bench(self, str(path), title=title)

    def save_json(self, path: PathLike) -> None:
        """Strict JSON, written atomically."""
        from edgebert.emulator.run_files import write_json

        write_json(path, dict(self), indent=1)

    def save_csv(self, path: PathLike) -> None:
        """One row per sentence and mode: latency, energy, exit layer, cycles (and correctness with labels)."""
        from edgebert.emulator.bench.modes import per_sentence_rows
        from edgebert.emulator.run_files import write_csv

        rows = per_sentence_rows(self)
        write_csv(path, rows, tuple(rows[0]) if rows else ("sentence", "mode"))


def _sentences(program: Program, inputs: Mapping[str, Any] | PathLike | Sequence[Mapping[str, Any]] | None,
               entropies: PathLike | Sequence[Sequence[float]] | np.ndarray | None, labels: Sequence[int] | None,
               limit: int | None) -> tuple[list[dict[str, Any]], list[int] | None, bool]:
    """Sentences as the bench harness takes them, their labels, and whether the run is a timing-only replay."""
    from edgebert.emulator.bench.policy_sweep_cli import sentences_from

    if (inputs is None) == (entropies is None):
        raise EdgebertError("give the sentences either as inputs (full runs) or as recorded entropies (a replay)")
    if entropies is not None:
        rows = read_entropies(entropies) if isinstance(entropies, (str, Path)) else [list(map(float, r))
                                                                                      for r in entropies]
        return sentences_from(program, rows=rows, limit=limit) + (True,)
    if isinstance(inputs, Sequence) and not isinstance(inputs, (str, Path)):
        xs = [{"inputs": dict(x)} for x in inputs][:limit]
        return xs, (list(labels)[:limit] if labels is not None else None), False
    sentences, found = sentences_from(program, inputs=inputs, limit=limit)
    if labels is not None:
        found = list(labels)[:limit]
    return sentences, found, False


def bench(
    program: Program | PathLike,
    *,
    inputs: Mapping[str, Any] | PathLike | Sequence[Mapping[str, Any]] | None = None,
    entropies: PathLike | Sequence[Sequence[float]] | np.ndarray | None = None,
    labels: Sequence[int] | None = None,
    latency_target: str | float | None = None,
    hw: HardwareLike = None,
    task: str | None = None,
    limit: int | None = None,
    path_cache: bool = True,
    progress: Progress | None = None,
    name: str | None = None,
) -> BenchResult:
    """A compiled program over many sentences in EdgeBERT's modes (no early exit, early exit, early exit + DVFS) and
    the oracle bound (docs/bench.md).

    Sentences: `inputs` (an .npz with a leading sentence axis and optional `labels`, a dict of such arrays, or a
    list of per-sentence dicts; full numerics) or `entropies` (an entropy trace path or rows: a timing-only replay).
    `latency_target`: "50ms" or seconds (default: the target the program's DVFS plan was made for). `task`: one task
    of a multi-task program (its block resident). `path_cache`: one emulation per control path of a replay. `name`:
    what the result and its figure call the program (default: its path).
    """
    from edgebert.emulator.bench.modes import run_bench
    from edgebert.isa.units import parse_duration

    prog, config = _program_and_config(program, hw)
    sentences, found, replay = _sentences(prog, inputs, entropies, labels, limit)
    if replay:
        note = check_entropy_rows(prog, [len(s["entropies"]) for s in sentences])
        if note:
            warnings.warn(note, EdgebertWarning, stacklevel=2)
    target = parse_duration(latency_target) if isinstance(latency_target, str) else latency_target
    if target is None:
        target = plan_target(prog, task)
    result = BenchResult(run_bench(prog, config, sentences, timing_only=replay, target_s=target, task=task,
                                   labels=found, path_cache=path_cache, progress=progress))
    if name is not None or not isinstance(program, Program):
        result["program"] = name if name is not None else str(program)
    return result


def check_entropy_rows(program: Program, lengths: Sequence[int]) -> str | None:
    """A warning when a trace's rows hold more entropies than the program has exits (the rest go unused)."""
    from edgebert.emulator.run_files import check_entropy_row

    return check_entropy_row(program, max(lengths)) if lengths else None


def plan_target(program: Program, task: str | None = None) -> float | None:
    """The latency target the program's (or the task's) DVFS plan was made for (None: no plan)."""
    table = program.metadata.get("dvfs_table")
    if task is not None:
        table = next(d for d in program.metadata["multitask"]["tasks"] if d["name"] == task).get("dvfs_table")
    return (table or {}).get("target_s") or (program.metadata.get("latency_target_s") if task else None)


class PolicySweepResult(dict):
    """`policy_sweep`'s JSON-ready result: one run per (threshold, policy, target) and the best per policy."""

    def plot(self, path: PathLike, *, title: str | None = None) -> None:
        """Energy per sentence against the latency target, one panel per threshold (the paper's figure)."""
        from edgebert.emulator.bench.sweep_plots import plot_sweep

        plot_sweep(self, str(path), title=title)

    def save_json(self, path: PathLike) -> None:
        """Strict JSON, written atomically."""
        from edgebert.emulator.run_files import write_json

        write_json(path, dict(self), indent=1)

    def table(self) -> str:
        """The runs as a markdown table, then the best mean per policy and the oracle bound."""
        from edgebert.emulator.bench.policy_sweep_cli import bound_lines, sweep_markdown

        return "\n".join(sweep_markdown(self) + bound_lines(self))


def policy_sweep(
    model: PathLike,
    *,
    latency_targets: Sequence[str | float],
    thresholds: Sequence[float] | None = None,
    policies: Sequence[str] = ("recover",),
    inputs: PathLike | None = None,
    entropies: PathLike | Sequence[Sequence[float]] | None = None,
    hw: HardwareLike = None,
    predictor_table: PathLike | None = None,
    calibration_entropies: PathLike | None = None,
    exit_compare: str = "lt",
    dvfs_planner: str = "table",
    layer1_point: str = "planned",
    dvfs_bins_scale: float | None = None,
    dvfs_margin: float = 0.0,
    limit: int | None = None,
    cache: PathLike | None = None,
    per_sentence: bool = False,
    progress: Progress | None = None,
    jobs: int = 1,
) -> PolicySweepResult:
    """An ONNX model with exit heads over latency targets ("50ms", seconds, or "1.5x": times the all-fastest latency)
    x entropy thresholds (default: the model's) x exit policies: one cached compile per (threshold, policy), the DVFS
    plan made again per target, EdgeBERT's modes and the oracle per run (`edgebert-bench model.onnx ...`). `jobs`:
    worker processes for the (threshold, policy) pairs (the same result)."""
    import dataclasses

    from edgebert.compiler.options import EarlyExitOptions
    from edgebert.emulator.bench.policy_sweep import PROBE_TARGET_S, SweepConfig, parse_targets, run_sweep, worker_pool
    from edgebert.emulator.bench.policy_sweep_cli import default_cache
    from edgebert.emulator.bench.program_cache import compiled

    config = hardware(hw)
    targets = parse_targets([t if isinstance(t, str) else f"{t}s" for t in latency_targets])
    base = EarlyExitOptions(None, None, predictor_table, calibration_entropies, dvfs_margin, compare=exit_compare,
                            planner=dvfs_planner, layer1_point=layer1_point, bins_scale=dvfs_bins_scale)
    cache_dir = Path(cache) if cache is not None else default_cache()
    swept = list(thresholds or [None])  # None: the model's own threshold
    probe = compiled(model, dataclasses.replace(base, threshold=swept[0], policy=policies[0],
                                                latency_target_s=PROBE_TARGET_S), config, cache_dir)
    sentences, found, replay = _sentences(probe, inputs, entropies, None, limit)
    if replay:
        note = check_entropy_rows(probe, [len(s["entropies"]) for s in sentences])
        if note:
            warnings.warn(note, EdgebertWarning, stacklevel=2)
    cfg = SweepConfig(swept, targets, base, list(policies), cache_dir, per_sentence)
    with worker_pool(jobs) as pool:
        return PolicySweepResult(run_sweep(model, config, sentences, cfg, timing_only=replay, labels=found,
                                           progress=progress, executor=pool))


# ---- sweep -------------------------------------------------------------------------------------------------------


def sweep(spec: PathLike | Spec, out_dir: PathLike, *, workers: int = 1, address: str | None = None,
          resume: bool = False, retry_errors: bool = False, progress: Progress | None = None) -> SweepSummary:
    """A design-space sweep (docs/sweep.md) on Ray: `spec` a TOML file or a loaded Spec; results in `out_dir`
    (results.parquet/csv, pareto.png, sweep.json). `address`: a Ray cluster (default: a local Ray with `workers`
    actors); `resume`: evaluate only the points `out_dir` lacks (`retry_errors`: and those that failed)."""
    from edgebert.emulator.sweep.engine import run_sweep
    from edgebert.emulator.sweep.spec import load_spec

    loaded = load_spec(spec) if isinstance(spec, (str, Path)) else spec
    if retry_errors and not resume:
        raise EdgebertError("retry_errors needs resume (--retry-errors needs --resume)")
    return run_sweep(loaded, out_dir, workers=workers, address=address, resume=resume, retry_errors=retry_errors,
                     progress=progress)


# ---- plots -------------------------------------------------------------------------------------------------------


def plot_energy(report: Mapping[str, Any], path: PathLike, *, title: str | None = None) -> None:
    """The figure of one run's report (`Report.plot`)."""
    from edgebert.emulator.plot import plot_energy as draw

    draw(report, path, title=title)


def plot_bench(result: Mapping[str, Any], path: PathLike, *, title: str | None = None) -> None:
    """The figure of a bench result (`BenchResult.plot`)."""
    from edgebert.emulator.bench.mode_plots import plot_bench as draw

    draw(result, str(path), title=title)


def plot_policy_sweep(result: Mapping[str, Any], path: PathLike, *, title: str | None = None) -> None:
    """The figure of a policy sweep (`PolicySweepResult.plot`)."""
    from edgebert.emulator.bench.sweep_plots import plot_sweep

    plot_sweep(result, str(path), title=title)


def __getattr__(name: str) -> Any:
    if name == "SweepSummary":
        from edgebert.emulator.sweep.engine import SweepSummary as summary

        return summary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

