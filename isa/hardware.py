"""The hardware configuration: one frozen dataclass tree loaded from TOML.

Primitive numbers live in ``hardware.toml`` (each with its source); derived values are
properties here. Compiler tiling and emulator costs both read this one object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edgebert.isa.errors import HardwareConfigError

LEVELS = ("dram", "envm", "sram")


@dataclass(frozen=True)
class PU:
    vector_size: int
    lanes: int
    pipeline_cycles: int
    max_m: int
    max_k: int
    max_n: int

    @property
    def macs_per_cycle(self) -> int:
        return self.vector_size * self.lanes


@dataclass(frozen=True)
class SFU:
    lanes: int
    pipeline_cycles: int
    passes: dict[str, int]


@dataclass(frozen=True)
class Frontend:
    issue_per_cycle: int
    queue_depth: int


@dataclass(frozen=True)
class MemoryLevel:
    size_bytes: int
    align_bytes: int
    bandwidth: int  # bytes per core cycle
    latency_cycles: int
    read_pj_per_byte: float
    write_pj_per_byte: float
    scales_with_voltage: bool


@dataclass(frozen=True)
class Memory:
    sram: MemoryLevel
    envm: MemoryLevel
    dram: MemoryLevel

    def level(self, name: str) -> MemoryLevel:
        return getattr(self, name)


@dataclass(frozen=True)
class Energy:
    mac_f32_pj: float
    mac_af8_pj: float
    sfu_op_pj: float
    ctl_op_pj: float
    leakage_mw: float


@dataclass(frozen=True)
class OperatingPoint:
    volts: float
    mhz: float


@dataclass(frozen=True)
class Dvfs:
    points: tuple[OperatingPoint, ...]
    nominal: int
    initial: int
    switch_ns: float
    switch_nj: float

    @property
    def nominal_point(self) -> OperatingPoint:
        return self.points[self.nominal]


@dataclass(frozen=True)
class HardwareConfig:
    name: str
    pu: PU
    sfu: SFU
    frontend: Frontend
    memory: Memory
    energy: Energy
    dvfs: Dvfs

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def fingerprint(self) -> bytes:
        """32-byte SHA-256 of the canonical JSON of every field (the `.ebin` records it)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).digest()


def _fail(field: str, why: str) -> typing.NoReturn:
    raise HardwareConfigError(f"hardware config field '{field}': {why}")


def _validate(hw: HardwareConfig) -> None:
    for name in ("vector_size", "lanes", "max_m", "max_k", "max_n"):
        if getattr(hw.pu, name) <= 0:
            _fail(f"pu.{name}", "must be > 0")
    if hw.pu.pipeline_cycles < 0:
        _fail("pu.pipeline_cycles", "must be >= 0")
    if hw.sfu.lanes <= 0:
        _fail("sfu.lanes", "must be > 0")
    if hw.sfu.pipeline_cycles < 0:
        _fail("sfu.pipeline_cycles", "must be >= 0")
    for op, passes in hw.sfu.passes.items():
        if not isinstance(passes, int) or passes <= 0:
            _fail(f"sfu.passes.{op}", "must be a positive integer")
    if hw.frontend.issue_per_cycle != 1:
        _fail("frontend.issue_per_cycle", "only 1 is modelled")
    if hw.frontend.queue_depth <= 0:
        _fail("frontend.queue_depth", "must be > 0")
    for level in LEVELS:
        mem = hw.memory.level(level)
        for name in ("size_bytes", "align_bytes", "bandwidth"):
            if getattr(mem, name) <= 0:
                _fail(f"memory.{level}.{name}", "must be > 0")
        if mem.align_bytes & (mem.align_bytes - 1):
            _fail(f"memory.{level}.align_bytes", "must be a power of two")
        for name in ("latency_cycles", "read_pj_per_byte", "write_pj_per_byte"):
            if getattr(mem, name) < 0:
                _fail(f"memory.{level}.{name}", "must be >= 0")
    if hw.memory.sram.size_bytes > 1 << 24:
        _fail("memory.sram.size_bytes", "exceeds the 24-bit SRAM address field (16 MiB)")
    for level in ("dram", "envm"):
        if hw.memory.level(level).size_bytes > 1 << 32:
            _fail(f"memory.{level}.size_bytes", "exceeds the 32-bit address field (4 GiB)")
    for name in ("mac_f32_pj", "mac_af8_pj", "sfu_op_pj", "ctl_op_pj", "leakage_mw"):
        if getattr(hw.energy, name) < 0:
            _fail(f"energy.{name}", "must be >= 0")
    if not hw.dvfs.points:
        _fail("dvfs.points", "needs at least one operating point")
    if len(hw.dvfs.points) > 256:
        _fail("dvfs.points", "at most 256 operating points (8-bit index)")
    for i, p in enumerate(hw.dvfs.points):
        if p.volts <= 0 or p.mhz <= 0:
            _fail(f"dvfs.points[{i}]", "volts and mhz must be > 0")
    for name in ("nominal", "initial"):
        if not 0 <= getattr(hw.dvfs, name) < len(hw.dvfs.points):
            _fail(f"dvfs.{name}", f"must index dvfs.points (0..{len(hw.dvfs.points) - 1})")
    if hw.dvfs.switch_ns < 0 or hw.dvfs.switch_nj < 0:
        _fail("dvfs.switch_ns", "switching cost must be >= 0")


def _build(cls: Any, data: Any, path: str) -> Any:
    """Construct dataclass `cls` from TOML data, rejecting unknown, missing and mistyped fields."""
    origin = typing.get_origin(cls)
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            _fail(path or "<root>", f"expected a table, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            _fail(f"{path}.{unknown[0]}".lstrip("."), "unknown field")
        kwargs = {}
        for name in names:
            sub = f"{path}.{name}".lstrip(".")
            if name not in data:
                _fail(sub, "missing")
            kwargs[name] = _build(hints[name], data[name], sub)
        return cls(**kwargs)
    if origin is tuple:
        if not isinstance(data, list):
            _fail(path, "expected an array")
        item = typing.get_args(cls)[0]
        return tuple(_build(item, x, f"{path}[{i}]") for i, x in enumerate(data))
    if origin is dict:
        if not isinstance(data, dict):
            _fail(path, "expected a table")
        return {str(k): _build(typing.get_args(cls)[1], v, f"{path}.{k}") for k, v in data.items()}
    if cls is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            _fail(path, f"expected a number, got {data!r}")
        return float(data)
    if cls is int:
        if isinstance(data, bool) or not isinstance(data, int):
            _fail(path, f"expected an integer, got {data!r}")
        return data
    if cls is bool:
        if not isinstance(data, bool):
            _fail(path, f"expected true or false, got {data!r}")
        return data
    if cls is str:
        if not isinstance(data, str):
            _fail(path, f"expected a string, got {data!r}")
        return data
    if isinstance(cls, types.UnionType):  # pragma: no cover - not used by the schema today
        raise TypeError(cls)
    raise TypeError(f"unsupported schema type {cls!r}")


def parse_config(data: dict[str, Any]) -> HardwareConfig:
    """Build a validated config from already-parsed TOML data."""
    return _build(HardwareConfig, data, "")


def load_config(path: str | Path | None = None) -> HardwareConfig:
    """Load `path`, or the default config shipped with the package when None."""
    if path is None:
        text = resources.files("edgebert.isa").joinpath("hardware.toml").read_text()
        where = "default hardware.toml"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise HardwareConfigError(f"{path}: cannot read hardware config: {exc.strerror}") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareConfigError(f"{where}: invalid TOML: {exc}") from None
    try:
        return parse_config(data)
    except HardwareConfigError as exc:
        raise HardwareConfigError(f"{where}: {exc}") from None


def default_config() -> HardwareConfig:
    """The shipped default configuration (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_config(None)
    return _DEFAULT


_DEFAULT: HardwareConfig | None = None
