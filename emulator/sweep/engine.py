"""The sweep driver: points from the strategy, evaluated by Ray actors (local by default, a cluster by address), one
compile per program (content-hash cache in DIR/cache), rows journaled as they finish, tables, fronts and provenance
written at the end (and on an interrupt).

Scheduling: a point's configs, compile settings and compile key are worked out on the driver (an invalid config is
an infeasible row without a worker). A point whose program is cached (DIR/cache/programs) gets it through the object
store; a point whose compile failed before gets that row; a point whose program another worker is compiling waits
for it; otherwise its worker compiles and the driver caches the program for the rest. `workers` actors run at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert.emulator.sweep import provenance
from edgebert.emulator.sweep.evaluate import (
    ERROR,
    INFEASIBLE,
    Evaluation,
    PointTask,
    compile_key,
    compile_settings,
    evaluate,
    failed_row,
)
from edgebert.emulator.sweep.metrics import config_columns
from edgebert.emulator.sweep.pareto import mark_fronts, plot_fronts
from edgebert.emulator.sweep.point_configs import point_configs
from edgebert.emulator.sweep.results import Journal, latest_rows, write_tables
from edgebert.emulator.sweep.space import Point
from edgebert.emulator.sweep.spec import Spec
from edgebert.emulator.sweep.strategies import make_strategy
from edgebert.emulator.sweep.workloads import WorkloadPayload, resolve
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import parse_config_text
from edgebert.isa.progress import Progress, ProgressTask, progress_or_silent

#: Threads per worker: one core per actor (BLAS and TVM would otherwise each take every core).
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TVM_NUM_THREADS": "1"}
PARETO_PNG = "pareto.png"


class SweepWorker:
    """A Ray actor: evaluates points one at a time (imports stay warm between them)."""

    def __init__(self) -> None:
        os.environ.update(WORKER_ENV)

    def ready(self) -> int:
        """Import the compiler and the emulator (TVM's start-up) before the first point; returns the pid."""
        import edgebert.compiler.pipeline  # noqa: F401
        import edgebert.emulator.sweep.evaluate  # noqa: F401

        return os.getpid()

    def evaluate(self, task: PointTask, payload: WorkloadPayload, program: bytes | None) -> Evaluation:
        return evaluate(task, payload, program)


@dataclass
class SweepSummary:
    """What `run_sweep` did."""

    out_dir: Path
    rows: list[dict[str, Any]]
    evaluated: int = 0  # points evaluated in this run (resumed points excluded)
    compiled: int = 0  # programs compiled in this run
    wall_s: float = 0.0  # the whole run
    eval_s: float = 0.0  # first dispatch to last result (workers warm)
    counts: dict[str, int] = field(default_factory=dict)
    complete: bool = False  # False: interrupted (or failed) before every point was evaluated


@dataclass
class _Prepared:
    point: Point
    task: PointTask | None = None
    row: dict[str, Any] | None = None  # decided on the driver (infeasible config, cached compile failure)


class _Cache:
    """DIR/cache/programs: `<key>.ebin` (a program) or `<key>.fail` (why it cannot be compiled)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "programs"
        self.root.mkdir(parents=True, exist_ok=True)

    def program(self, key: str) -> bytes | None:
        p = self.root / f"{key}.ebin"
        return p.read_bytes() if p.exists() else None

    def failure(self, key: str) -> str | None:
        p = self.root / f"{key}.fail"
        return p.read_text(encoding="utf-8") if p.exists() else None

    def store(self, key: str, program: bytes | None, failure: str | None) -> None:
        name, data = (f"{key}.ebin", program) if program is not None else (f"{key}.fail", (failure or "").encode())
        tmp = self.root / f".{name}.part"
        tmp.write_bytes(data)
        tmp.replace(self.root / name)


def _prepare(spec: Spec, payloads: dict[str, WorkloadPayload], point: Point) -> _Prepared:
    try:
        payload = payloads[point.workload]
        settings = compile_settings(payload, point)
        configs = point_configs(spec, point, plans_dvfs=settings["latency_target_s"] is not None)
        key = compile_key(payload, settings, configs.compile)
        return _Prepared(point, PointTask(point, configs.run.toml_text(), configs.compile.toml_text(), settings, key))
    except EdgebertError as exc:
        return _Prepared(point, row=failed_row(point, INFEASIBLE, f"hardware config: {exc}"))


def _start_ray(address: str | None, workers: int) -> bool:
    """Connect to Ray (start a local one without `address`); True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                            "runtime_env": {"env_vars": WORKER_ENV}}
    if address is None:
        ray.init(num_cpus=workers, **opts)
        return True
    try:
        ray.init(address=address, **opts)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EdgebertError(f"--address {address}: cannot connect to a Ray cluster: {exc}") from None
    return True


def _bar_text(name: str, failures: int) -> str:
    return f"{name}: points ({failures} infeasible or failed)"


def check_out_dir(spec: Spec, out_dir: Path, resume: bool) -> None:
    """A new sweep needs an empty DIR (or none); `--resume` needs one written by the same spec."""
    journal = Journal(out_dir)
    if not resume and journal.path.exists() and journal.read():
        raise EdgebertError(f"{out_dir} already holds sweep results: pass --resume to continue it, or another -o DIR")
    if resume:
        prev = provenance.read(out_dir)
        if prev is not None and prev.get("spec_sha256") != provenance.spec_digest(spec):
            raise EdgebertError(f"{out_dir} holds a sweep of another spec (or base config): --resume needs the same "
                                "spec; use another -o DIR")


def run_sweep(spec: Spec, out_dir: str | Path, *, workers: int = 1, address: str | None = None, resume: bool = False,
              retry_errors: bool = False, progress: Progress | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> SweepSummary:
    """Run (or with `resume`, continue) a sweep into `out_dir`; see the module docstring. `retry_errors` (with
    `resume`): evaluate the points whose row is an `error` again (e.g. a worker killed for memory). `progress`: a bar
    over the points (edgebert-sweep passes rich bars on a terminal; None: silent). `on_row` is called after each row
    is journaled. An interrupt (KeyboardInterrupt) stops the workers, writes the outputs of the rows done and
    propagates."""
    import ray

    if workers < 1:
        raise EdgebertError("--workers must be at least 1")
    t_start = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_out_dir(spec, out, resume)
    journal = Journal(out)
    rows = latest_rows(journal.read()) if resume else []
    if retry_errors:
        rows = [r for r in rows if r["status"] != ERROR]
    journal.rewrite(rows)
    doc = provenance.describe(spec, workers=workers, address=address, started=t_start, status="running")
    provenance.write(out, doc)
    summary = SweepSummary(out, rows)
    started_ray = False
    actors: list[Any] = []
    try:
        started_ray = _start_ray(address, workers)  # first: a wrong --address fails before any model is built
        cache = _Cache(out / "cache")
        payloads = resolve(spec, out / "cache")
        strategy = make_strategy(spec, rows)
        for p in payloads.values():
            if address is not None:  # other nodes may not see the driver's files: ship the model's bytes
                p.model_blob = [ray.put(Path(p.model_path).read_bytes())]
        payload_refs = {name: ray.put(p) for name, p in payloads.items()}
        worker_cls = ray.remote(num_cpus=1, max_restarts=0)(SweepWorker)
        actors = [worker_cls.remote() for _ in range(workers)]
        ray.get([a.ready.remote() for a in actors])
        with progress_or_silent(progress).task(_bar_text(spec.name, sum(r["status"] != "ok" for r in rows)),
                                               total=strategy.total) as bar:
            bar.update(completed=strategy.done_count)
            _drive(spec, strategy, payloads, payload_refs, actors, worker_cls, cache, journal, summary, bar, on_row)
        summary.complete = True
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
        if started_ray:
            ray.shutdown()
        _finish(spec, out, journal, summary, doc, t_start)
    return summary


def _drive(spec: Spec, strategy: Any, payloads: dict[str, WorkloadPayload], payload_refs: dict[str, Any],
           actors: list[Any], worker_cls: Any, cache: _Cache, journal: Journal, summary: SweepSummary,
           bar: ProgressTask, on_row: Callable[[dict[str, Any]], None] | None) -> None:
    """The scheduling loop (module docstring)."""
    import ray

    idle = list(actors)
    in_flight: dict[Any, tuple[Any, _Prepared, bool]] = {}  # ref -> (actor, prepared, compiles)
    compiling: set[str] = set()
    waiting: list[_Prepared] = []
    program_refs: dict[str, Any] = {}
    failures = sum(r["status"] != "ok" for r in summary.rows)
    t_first = None

    def record(point: Point, row: dict[str, Any]) -> None:
        nonlocal failures
        journal.append(row)
        summary.rows.append(row)
        strategy.observe(point, row)
        failures += row["status"] != "ok"
        bar.advance(description=_bar_text(spec.name, failures))
        if on_row is not None:
            on_row(row)

    def dispatch(prep: _Prepared) -> bool:
        """Send a point to an idle actor; False when it must wait for another worker's compile."""
        nonlocal t_first
        task = prep.task
        failure = cache.failure(task.key)
        if failure is not None:
            record(prep.point, failed_row(prep.point, INFEASIBLE, failure)
                   | config_columns(parse_config_text(task.run_hw)) | {"compile_key": task.key})
            return True
        if task.key in compiling:
            return False
        if task.key not in program_refs:
            program = cache.program(task.key)
            if program is not None:
                program_refs[task.key] = ray.put(program)
        compiles = task.key not in program_refs
        if compiles:
            compiling.add(task.key)
        actor = idle.pop()
        ref = actor.evaluate.remote(task, payload_refs[prep.point.workload], program_refs.get(task.key))
        in_flight[ref] = (actor, prep, compiles)
        t_first = t_first or time.perf_counter()
        return True

    while True:
        # fill idle actors: waiting points first (their compile may have finished), then new ones
        progressed = True
        while idle and progressed:
            progressed = False
            for prep in list(waiting):
                if not idle:
                    break
                if dispatch(prep):
                    waiting.remove(prep)
                    progressed = True
            if idle and not strategy.exhausted:
                for point in strategy.next_points(1):
                    prep = _prepare(spec, payloads, point)
                    if prep.row is not None:
                        record(point, prep.row)
                    elif not dispatch(prep):
                        waiting.append(prep)
                    progressed = True
        if not in_flight:
            if strategy.exhausted and not waiting:
                break
            if not idle:  # pragma: no cover - every actor busy means something is in flight
                raise EdgebertError("sweep scheduler: no actor free and nothing in flight")
            continue
        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
        for ref in done:
            actor, prep, compiles = in_flight.pop(ref)
            key = prep.task.key
            try:
                result: Evaluation = ray.get(ref)
            except (ray.exceptions.RayError, EdgebertError) as exc:  # a worker died (e.g. out of memory)
                result = Evaluation(failed_row(prep.point, ERROR, f"worker: {type(exc).__name__}: {exc}"[:2000]))
                ray.kill(actor, no_restart=True)
                actor = worker_cls.remote()
            if compiles:
                compiling.discard(key)
                if result.program is not None or result.compile_failure is not None:
                    cache.store(key, result.program, result.compile_failure)
                    summary.compiled += result.program is not None
                if result.program is not None:
                    program_refs[key] = ray.put(result.program)
            summary.evaluated += 1
            summary.eval_s = time.perf_counter() - (t_first or time.perf_counter())
            idle.append(actor)
            record(prep.point, result.row)


def _finish(spec: Spec, out: Path, journal: Journal, summary: SweepSummary, doc: dict[str, Any],
            t_start: float) -> None:
    """Tables, fronts, plot and sweep.json from the journal (also after an interrupt)."""
    rows = latest_rows(journal.read())
    mark_fronts(rows)
    summary.rows = rows
    summary.wall_s = time.time() - t_start
    summary.counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("ok", "infeasible", "error")}
    if rows:
        write_tables(rows, out)
        plot_fronts(rows, out / PARETO_PNG, spec.name)
    doc.update(status="complete" if summary.complete else "partial", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               points=len(rows), counts=summary.counts, evaluated_this_run=summary.evaluated,
               compiled_this_run=summary.compiled, wall_s=summary.wall_s)
    provenance.write(out, doc)


def clear_cache(out_dir: Path) -> None:
    """Remove DIR/cache (programs and built models)."""
    shutil.rmtree(Path(out_dir) / "cache", ignore_errors=True)
