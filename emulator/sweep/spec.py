"""The sweep spec (`edgebert-sweep SPEC.toml`): workloads, the parameters to vary and how, read and validated.

Layout (docs/sweep.md has the full reference and an example):

    [sweep]            name, strategy (grid | random | optuna), seed, samples, objectives, sampler
    [hardware]         base = bundled config name or TOML path
    [hardware.params]  "dotted.path" = [values] | {low, high, log, integer, steps} | {label = {path = value}}
    [compiler.params]  threshold, latency_target, compress, margin = [values] | {low, high, ...}
    [run.params]       mode = ["ee+dvfs", "early-exit", "no-exit"]
    [[workloads]]      name, model | build, seq_len, entropy_trace | inputs, predictor_table | calibration_entropies,
                       limit, compiler defaults (threshold, latency_target, compress, margin, early_exit)

Relative paths are relative to the spec file. Every error names the spec file and the key at fault.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert.emulator.bench.modes import MODES
from edgebert.isa.errors import EdgebertError, HardwareConfigError
from edgebert.isa.hardware import DEFAULT_CONFIG, bundled_config_text, bundled_configs, parse_config
from edgebert.isa.units import parse_duration

STRATEGIES = ("grid", "random", "optuna")
SAMPLERS = ("nsga2", "tpe")
#: Compiler parameters a point may set (defaults per workload): what `edgebertc` takes for one model.
COMPILER_PARAMS = ("threshold", "latency_target", "compress", "margin", "early_exit")
RUN_PARAMS = ("mode",)
#: Row columns an Optuna search may minimise (results.py writes them).
OBJECTIVES = ("energy_per_sentence_j", "latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_mean_s",
              "cycles_mean", "area_mm2.total", "exit_layer_mean")
DEFAULT_OBJECTIVES = ("energy_per_sentence_j", "latency_p90_s")
GENERATED = "generated"  # entropy_trace / inputs made from a built model (model_builder)
_PATH_PART = re.compile(r"([A-Za-z0-9_-]+)((?:\[\d+\])*)")


class SweepSpecError(EdgebertError):
    """The sweep spec is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Domain:
    """The values one parameter takes: finite `choices` (with a label each) or a numeric range."""

    name: str  # qualified column name: "hw.pu.lanes", "compiler.threshold", "run.mode", "workload"
    choices: tuple[Any, ...] = ()  # hardware labelled choices: {dotted path: value} per label
    labels: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    steps: int | None = None  # a grid over a range: this many values
    grouped: bool = False  # hardware: each choice sets several paths ({path: value})

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def grid_values(self) -> list[tuple[Any, str]]:
        """(value, label) pairs of a grid over this domain (a range needs `steps`)."""
        if not self.is_range:
            return list(zip(self.choices, self.labels, strict=True))
        if self.steps is None:
            raise SweepSpecError(f"parameter '{self.name}': a grid over a range needs steps = N")
        return [(v, _label(v)) for v in range_values(self, self.steps)]


def range_values(d: Domain, n: int) -> list[float | int]:
    """`n` evenly spaced values of a range domain (geometric when `log`), deduplicated after integer rounding."""
    if n == 1:
        raw = [d.low]
    elif d.log:
        raw = [d.low * (d.high / d.low) ** (i / (n - 1)) for i in range(n)]
    else:
        raw = [d.low + (d.high - d.low) * i / (n - 1) for i in range(n)]
    out = [int(round(v)) for v in raw] if d.integer else [float(v) for v in raw]
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Workload:
    """A model and what runs through it."""

    name: str
    model: Path | None = None  # an ONNX file, or
    build: dict[str, Any] | None = None  # model_builder options (an untrained ALBERT built into the cache)
    seq_len: int | None = None
    entropy_trace: Path | str | None = None  # a trace file (timing-only replay) or GENERATED
    inputs: Path | str | None = None  # an .npz of sentences (full numerics) or GENERATED
    predictor_table: Path | None = None
    calibration_entropies: Path | str | None = None  # a trace file or GENERATED
    limit: int | None = None  # the first N sentences
    compiler: dict[str, Any] = field(default_factory=dict)  # defaults of the compiler parameters


@dataclass(frozen=True)
class Spec:
    """A parsed, validated sweep spec."""

    path: Path
    text: str
    name: str
    strategy: str
    seed: int
    samples: int | None
    objectives: tuple[str, ...]
    sampler: str
    base_hw: str  # bundled name or absolute TOML path
    base_hw_text: str
    hardware: tuple[Domain, ...]
    compiler: tuple[Domain, ...]
    run: tuple[Domain, ...]
    workloads: tuple[Workload, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def domains(self) -> tuple[Domain, ...]:
        """Every parameter, the workload first when there are several (the grid's outermost loop)."""
        names = tuple(w.name for w in self.workloads)
        work = (Domain("workload", names, names),) if len(names) > 1 else ()
        return (*work, *self.hardware, *self.compiler, *self.run)


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def resolve_path(data: Any, dotted: str) -> tuple[Any, Any]:
    """(container, key) of `dotted` ('pu.lanes', 'dvfs.points[0].mhz') in parsed TOML data; KeyError if absent."""
    parts = dotted.split(".")
    node, key = data, None
    for i, part in enumerate(parts):
        m = _PATH_PART.fullmatch(part)
        if not m:
            raise KeyError(dotted)
        steps: list[Any] = [m.group(1)] + [int(x) for x in re.findall(r"\d+", m.group(2))]
        for j, step in enumerate(steps):
            last = i == len(parts) - 1 and j == len(steps) - 1
            if isinstance(step, str) and not (isinstance(node, dict) and step in node):
                raise KeyError(dotted)
            if isinstance(step, int) and not (isinstance(node, list) and 0 <= step < len(node)):
                raise KeyError(dotted)
            if last:
                return node, step
            node = node[step]
    return node, key  # pragma: no cover - a non-empty path always returns above


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of config data with each dotted path set to its value."""
    out = copy.deepcopy(data)
    for dotted, value in overrides.items():
        container, key = resolve_path(out, dotted)
        container[key] = copy.deepcopy(value)
    return out


class _Reader:
    """Typed access to the spec's tables with errors naming the file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, why: str) -> SweepSpecError:
        return SweepSpecError(f"{self.path}: {where}: {why}")

    def table(self, data: dict[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"{where}{key}", f"expected a table, got {type(value).__name__}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(f"{where}{key}.{unknown[0]}", f"unknown key (known: {', '.join(allowed)})")
        return value

    def file(self, value: Any, where: str, generated: bool = False) -> Path | str:
        if generated and value == GENERATED:
            return GENERATED
        if not isinstance(value, str) or not value:
            raise self.fail(where, "expected a file path")
        p = Path(value).expanduser()
        p = p if p.is_absolute() else (self.path.parent / p).resolve()
        if not p.is_file():
            raise self.fail(where, f"{p}: no such file")
        return p


def _domain(r: _Reader, name: str, value: Any, where: str) -> Domain:
    """A parameter's values as written: a list of choices, a range table, or (hardware) labelled groups."""
    if isinstance(value, list):
        if not value:
            raise r.fail(where, "needs at least one value")
        labels = tuple(_label(v) if not isinstance(v, (list, dict)) else f"#{i}" for i, v in enumerate(value))
        return Domain(name, tuple(value), labels)
    if isinstance(value, dict) and {"low", "high"} <= set(value):
        unknown = sorted(set(value) - {"low", "high", "log", "integer", "steps"})
        if unknown:
            raise r.fail(f"{where}.{unknown[0]}", "unknown key of a range (low, high, log, integer, steps)")
        low, high = value["low"], value["high"]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (low, high)):
            raise r.fail(where, "low and high must be finite numbers")
        if not low < high:
            raise r.fail(where, f"low ({low}) must be below high ({high})")
        log, integer, steps = value.get("log", False), value.get("integer", False), value.get("steps")
        if log and low <= 0:
            raise r.fail(where, "a log range needs low > 0")
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise r.fail(f"{where}.steps", "must be a positive integer")
        return Domain(name, low=float(low), high=float(high), log=bool(log), integer=bool(integer), steps=steps)
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return Domain(name, tuple(value.values()), tuple(value), grouped=True)
    raise r.fail(where, "expected a list of values, a range {low, high, ...} or labelled choices {label = {...}}")


def _check_hardware(r: _Reader, d: Domain, base: dict[str, Any], base_name: str) -> None:
    """Every dotted path must exist in the base config and every value be parseable (a value the config rejects
    is an infeasible point, not a spec error; an unknown path or a misspelt field is a spec error)."""
    paths = {p for c in d.choices for p in c} if d.grouped else {d.name.removeprefix("hw.")}
    for p in sorted(paths):
        try:
            resolve_path(base, p)
        except KeyError:
            raise r.fail(f"[hardware.params] '{p}'", f"not a field of the base config {base_name}") from None
    for c in d.choices:
        try:
            parse_config(apply_overrides(base, c if d.grouped else {d.name.removeprefix('hw.'): c}))
        except HardwareConfigError as exc:
            if "unknown field" in str(exc) or "expected a table" in str(exc):
                raise r.fail(f"[hardware.params] '{d.name.removeprefix('hw.')}'", str(exc)) from None


def _check_compiler_value(r: _Reader, name: str, value: Any, where: str) -> None:
    if name == "latency_target":
        if not isinstance(value, str):
            raise r.fail(where, 'expected a duration such as "50ms" (or "none": no DVFS)')
        if value != "none":
            try:
                parse_duration(value)
            except EdgebertError as exc:
                raise r.fail(where, f'{exc} (or "none": no DVFS)') from None
    elif name in ("compress", "early_exit"):
        if not isinstance(value, bool):
            raise r.fail(where, "expected true or false")
    elif name == "threshold" and value == "model":
        return
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise r.fail(where, "expected a finite number >= 0" + (" (or \"model\")" if name == "threshold" else ""))


def _workload(r: _Reader, i: int, w: Any) -> Workload:
    where = f"[[workloads]] #{i + 1}"
    if not isinstance(w, dict):
        raise r.fail(where, "expected a table")
    allowed = ("name", "model", "build", "seq_len", "entropy_trace", "inputs", "predictor_table",
               "calibration_entropies", "limit", *COMPILER_PARAMS)
    unknown = sorted(set(w) - set(allowed))
    if unknown:
        raise r.fail(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(allowed)})")
    name = w.get("name", f"w{i + 1}")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", name):
        raise r.fail(f"{where}.name", "1-64 letters, digits and _ . + -")
    where = f"[[workloads]] '{name}'"
    if ("model" in w) == ("build" in w):
        raise r.fail(where, "give exactly one of model (an ONNX file) and build (a model to build)")
    if ("entropy_trace" in w) == ("inputs" in w):
        raise r.fail(where, "give exactly one of entropy_trace (timing-only replay) and inputs (an .npz)")
    build = w.get("build")
    if build is not None and not isinstance(build, dict):
        raise r.fail(f"{where}.build", "expected a table of model_builder options")
    if build is not None:
        from edgebert.emulator.sweep.model_builder import BuildOptions

        try:
            BuildOptions.from_table(build)
        except EdgebertError as exc:
            raise r.fail(f"{where}.build", str(exc)) from None
    generated = build is not None
    for key in ("seq_len", "limit"):
        v = w.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise r.fail(f"{where}.{key}", "expected a positive integer")
    compiler = {k: w[k] for k in COMPILER_PARAMS if k in w}
    for k, v in compiler.items():
        _check_compiler_value(r, k, v, f"{where}.{k}")
    return Workload(
        name=name,
        model=r.file(w["model"], f"{where}.model") if "model" in w else None,  # type: ignore[arg-type]
        build=build,
        seq_len=w.get("seq_len"),
        entropy_trace=r.file(w["entropy_trace"], f"{where}.entropy_trace", generated) if "entropy_trace" in w else None,
        inputs=r.file(w["inputs"], f"{where}.inputs", generated) if "inputs" in w else None,
        predictor_table=r.file(w["predictor_table"], f"{where}.predictor_table") if "predictor_table" in w else None,  # type: ignore[arg-type]
        calibration_entropies=(r.file(w["calibration_entropies"], f"{where}.calibration_entropies", generated)
                               if "calibration_entropies" in w else None),
        limit=w.get("limit"),
        compiler=compiler,
    )


def load_spec(path: str | Path) -> Spec:
    """Read and validate a sweep spec."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepSpecError(f"{path}: cannot read the sweep spec: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepSpecError(f"{path}: invalid TOML: {exc}") from None
    return parse_spec(data, path, text)


def parse_spec(data: dict[str, Any], path: Path, text: str = "") -> Spec:
    """Validate already-parsed spec data (`path`: where relative file names start)."""
    r = _Reader(path)
    unknown = sorted(set(data) - {"sweep", "hardware", "compiler", "run", "workloads"})
    if unknown:
        raise r.fail(unknown[0], "unknown table (known: sweep, hardware, compiler, run, workloads)")
    sweep = r.table(data, "sweep", "", ("name", "strategy", "seed", "samples", "objectives", "sampler"))
    strategy = sweep.get("strategy", "grid")
    if strategy not in STRATEGIES:
        raise r.fail("sweep.strategy", f"'{strategy}' is not one of {', '.join(STRATEGIES)}")
    seed = sweep.get("seed", 0)
    samples = sweep.get("samples")
    for key, value in (("seed", seed), ("samples", samples)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise r.fail(f"sweep.{key}", "expected a non-negative integer")
    if strategy != "grid" and not samples:
        raise r.fail("sweep.samples", f"the {strategy} strategy needs samples = N (points to evaluate)")
    objectives = tuple(sweep.get("objectives", DEFAULT_OBJECTIVES))
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad or not objectives:
        raise r.fail("sweep.objectives", f"unknown objective '{bad[0] if bad else ''}' (known: {', '.join(OBJECTIVES)})")
    sampler = sweep.get("sampler", "nsga2")
    if sampler not in SAMPLERS:
        raise r.fail("sweep.sampler", f"'{sampler}' is not one of {', '.join(SAMPLERS)}")
    name = sweep.get("name", path.stem)
    hardware = r.table(data, "hardware", "", ("base", "params"))
    base = hardware.get("base", DEFAULT_CONFIG)
    if not isinstance(base, str):
        raise r.fail("hardware.base", "expected a bundled config name or a TOML path")
    if base in bundled_configs():
        base_text = bundled_config_text(base)
    else:
        base_path = r.file(base, "hardware.base")
        base, base_text = str(base_path), Path(base_path).read_text(encoding="utf-8")
    try:
        base_data = tomllib.loads(base_text)
        base_name = parse_config(base_data).name
    except (tomllib.TOMLDecodeError, HardwareConfigError) as exc:
        raise r.fail("hardware.base", str(exc)) from None
    hw_params = hardware.get("params", {})
    if not isinstance(hw_params, dict):
        raise r.fail("hardware.params", "expected a table")
    hw_domains = []
    for key, value in hw_params.items():
        d = _domain(r, f"hw.{key}", value, f"[hardware.params] '{key}'")
        if d.is_range:
            try:
                container, k = resolve_path(base_data, key)
            except KeyError:
                raise r.fail(f"[hardware.params] '{key}'", f"not a field of the base config {base_name}") from None
            d = Domain(d.name, low=d.low, high=d.high, log=d.log, steps=d.steps,
                       integer=d.integer or isinstance(container[k], int))
        else:
            _check_hardware(r, d, base_data, base_name)
        hw_domains.append(d)
    compiler_domains = []
    for key, value in r.table(r.table(data, "compiler", "", ("params",)), "params", "compiler.", COMPILER_PARAMS).items():
        d = _domain(r, f"compiler.{key}", value, f"[compiler.params] '{key}'")
        if d.grouped:
            raise r.fail(f"[compiler.params] '{key}'", "labelled choices are for hardware parameters")
        for i, v in enumerate(d.choices):
            _check_compiler_value(r, key, v, f"[compiler.params] '{key}'[{i}]")
        compiler_domains.append(d)
    run_domains = []
    for key, value in r.table(r.table(data, "run", "", ("params",)), "params", "run.", RUN_PARAMS).items():
        d = _domain(r, f"run.{key}", value, f"[run.params] '{key}'")
        bad_modes = [v for v in d.choices if v not in MODES]
        if d.is_range or d.grouped or bad_modes:
            raise r.fail(f"[run.params] '{key}'", f"values must be among {', '.join(MODES)}")
        run_domains.append(d)
    workloads = data.get("workloads")
    if not isinstance(workloads, list) or not workloads:
        raise r.fail("workloads", "at least one [[workloads]] table is needed")
    parsed = tuple(_workload(r, i, w) for i, w in enumerate(workloads))
    if len({w.name for w in parsed}) != len(parsed):
        raise r.fail("workloads", "workload names must be unique")
    if strategy == "grid":
        for d in (*hw_domains, *compiler_domains, *run_domains):
            if d.is_range and d.steps is None:
                raise r.fail(d.name, "a grid over a range needs steps = N")
    return Spec(path, text, str(name), strategy, seed, samples, objectives, sampler, base, base_text,
                tuple(hw_domains), tuple(compiler_domains), tuple(run_domains), parsed, data)
