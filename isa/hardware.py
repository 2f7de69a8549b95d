"""The hardware configuration: one frozen dataclass tree of primitives loaded from TOML, derived values as properties.

Bundled configs live in ``isa/configs/<name>.toml`` (every number cites its source or is labelled ASSUMPTION);
``load_config`` takes a bundled name or a file path. Compiler tiling, DVFS planning and emulator costs all read
this one object; ``docs/emulator.md`` explains how each instruction is charged from these primitives.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import reprlib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from edgebert.isa.errors import HardwareConfigError
from edgebert.isa.table import INSTRUCTIONS

LEVELS = ("dram", "envm", "sram")
#: The config `default_config()` returns. Flipping the default machine is this one line (then re-measure).
DEFAULT_CONFIG = "edgebert-cmod"
#: How the PU's operand loads relate to its compute: one after the other, double-buffered, or never a bottleneck.
OPERAND_FEEDS = ("serial", "overlapped", "free")
#: SFU instructions: each needs one entry in `sfu.ops`; their SRAM operand names are what `reads` may not name.
SFU_MNEMONICS = tuple(ins.mnemonic for ins in INSTRUCTIONS if ins.unit == "sfu")
MIN_MATMUL_MACS = 16 * 16 * 16  # smallest max_m x max_k x max_n: see _validate
MAX_CONFIG_BYTES = 1 << 20  # a hardware config is a few KiB of text; anything larger is the wrong file
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a TOML bare key (buffer names are keys of `reads`)
_BIG = 10**6  # upper bound of any cycle count or per-action figure: larger values are typos, not machines


def _range(lo: float, hi: float) -> Any:
    """A dataclass field whose TOML value must lie in [lo, hi] (checked while building, naming the field)."""
    return field(metadata={"range": (lo, hi)})


@dataclass(frozen=True)
class PU:
    """The processing unit: a `vector_size` x `lanes` MAC array working on blocks of a matrix job."""

    vector_size: int = _range(1, 1024)  # elements per operand vector
    lanes: int = _range(1, 4096)  # dot-product lanes of vector_size MACs
    max_m: int = _range(1, 0xFFFF)  # largest m (rows of a) of one matmul instruction
    max_k: int = _range(1, 0xFFFF)
    max_n: int = _range(1, 0xFFFF)
    block_m: int = _range(1, 1024)  # a job is processed in blocks of block_m x block_k x block_n (padded)
    block_k: int = _range(1, 1024)
    block_n: int = _range(1, 1024)
    operand_feed: str  # one of OPERAND_FEEDS
    operand_buffer: str  # the SRAM buffer each operand streams from (one port per operand)
    skip_zero_macs: bool  # True: a sparse operand's zeros cost no MAC cycles
    block_sync_cycles: int = _range(0, _BIG)  # per block, after its compute (token to the accumulator)
    tile_drain_cycles: int = _range(0, _BIG)  # per output tile: accumulator read-out before write-back
    job_cycles: int = _range(0, _BIG)  # fixed per matmul instruction (unit start to done)
    launch_cycles: int = _range(0, _BIG)  # fixed per instruction: the controller's command and interrupt
    writeback_cycles: int = _range(0, _BIG)  # per output tile: result write-back into the buffers
    writeback_slots: int = _range(1, 64)  # result tiles the write-back path holds
    writeback_release_cycles: int = _range(0, _BIG)  # a slot frees this long after its tile's write-back starts

    @property
    def macs_per_cycle(self) -> int:
        return self.vector_size * self.lanes

    @property
    def block_macs(self) -> int:
        return self.block_m * self.block_k * self.block_n

    @property
    def compute_cycles_per_block(self) -> Fraction:
        """Cycles the MAC array needs for one dense block."""
        return Fraction(self.block_macs, self.macs_per_cycle)


@dataclass(frozen=True)
class SfuOp:
    """Cost of one SFU instruction kind: a state machine stepping over `lanes`-element vectors."""

    passes: int = _range(1, 1000)  # element-passes per element (energy: sfu_op_pj each)
    states: int = _range(0, _BIG)  # state-machine cycles per vector
    row_cycles: int = _range(0, _BIG)  # per row (and per job of a row split over max_vectors)
    fixed_cycles: int = _range(0, _BIG)  # per job: the unit's own start to done
    launch_cycles: int = _range(0, _BIG)  # per job: the controller's command and interrupt
    reads: dict[str, int] = field(default_factory=dict)  # memory reads per vector, by SRAM buffer name


@dataclass(frozen=True)
class SFU:
    lanes: int = _range(1, 4096)  # elements per vector
    pad_rows: bool  # True: every row starts a new vector (rows x ceil(cols / lanes) vectors)
    max_rows: int = _range(1, 0xFFFF)  # rows (num_timestep) one job takes; longer tiles are several jobs
    max_vectors: int = _range(1, 0xFFFF)  # vectors per row (num_vector) one job takes
    read_cycles: int = _range(0, _BIG)  # cycles of one memory read with no latency
    ops: dict[str, SfuOp] = field(metadata={"keys": SFU_MNEMONICS})  # by SFU mnemonic (every one needs an entry)


@dataclass(frozen=True)
class Frontend:
    issue_per_cycle: int = _range(1, 1)
    queue_depth: int = _range(1, 4096)


@dataclass(frozen=True)
class Dma:
    """Data movement (`ld`, `st`, `gather`) between memory levels."""

    setup_cycles: int = _range(0, _BIG)  # fixed per instruction
    burst_bytes: int = _range(1, 1 << 32)  # largest contiguous burst on the bus
    burst_overhead_cycles: int = _range(0, _BIG)  # per burst


@dataclass(frozen=True)
class Buffer:
    """`count` identical on-chip buffers of the SRAM space, laid out one after the other."""

    name: str
    count: int = _range(1, 64)
    size_bytes: int = _range(1, 1 << 24)  # each
    port_bytes_per_cycle: int = _range(1, 1 << 20)
    read_latency_cycles: int = _range(0, _BIG)  # extra cycles of an SFU read from this buffer


@dataclass(frozen=True)
class MemoryLevel:
    size_bytes: int = _range(1, 1 << 32)
    align_bytes: int = _range(1, 4096)
    bandwidth: int = _range(1, 1 << 20)  # bytes per core cycle
    latency_cycles: int = _range(0, _BIG)
    read_pj_per_byte: float = _range(0.0, 1e6)
    write_pj_per_byte: float = _range(0.0, 1e6)
    scales_with_voltage: bool
    buffers: tuple[Buffer, ...] = ()  # sram only: the address map of the physical buffers (empty: one buffer)

    def regions(self, level: str) -> tuple[tuple[int, int, Buffer], ...]:
        """(start, end, buffer) of every buffer instance in address order; one region when `buffers` is empty."""
        if not self.buffers:
            return ((0, self.size_bytes, Buffer(level, 1, self.size_bytes, self.bandwidth, self.latency_cycles)),)
        out, at = [], 0
        for buf in self.buffers:
            for _ in range(buf.count):
                out.append((at, at + buf.size_bytes, buf))
                at += buf.size_bytes
        return tuple(out)

    def buffer(self, level: str, name: str) -> Buffer | None:
        """The buffer called `name` (the implicit one is called like the level)."""
        return next((b for _, _, b in self.regions(level) if b.name == name), None)


@dataclass(frozen=True)
class Memory:
    sram: MemoryLevel
    envm: MemoryLevel
    dram: MemoryLevel

    def level(self, name: str) -> MemoryLevel:
        return getattr(self, name)


@dataclass(frozen=True)
class Energy:
    mac_f32_pj: float = _range(0.0, 1e6)
    mac_af8_pj: float = _range(0.0, 1e6)
    sfu_op_pj: float = _range(0.0, 1e6)
    ctl_op_pj: float = _range(0.0, 1e6)
    leakage_mw: float = _range(0.0, 1e6)


@dataclass(frozen=True)
class OperatingPoint:
    volts: float = _range(0.05, 10.0)
    mhz: float = _range(1.0, 1e5)


@dataclass(frozen=True)
class Dvfs:
    points: tuple[OperatingPoint, ...]
    nominal: int = _range(0, 255)
    initial: int = _range(0, 255)
    switch_ns: float = _range(0.0, 1e9)
    switch_nj: float = _range(0.0, 1e9)
    decision_cycles: int = _range(0, _BIG)  # `lut`: the DVFS unit's entropy -> operating point decision
    decision_launch_cycles: int = _range(0, _BIG)

    @property
    def nominal_point(self) -> OperatingPoint:
        return self.points[self.nominal]


@dataclass(frozen=True)
class Area:
    """Silicon area per component, Accelergy-style: a figure per unit of each component the config sizes
    (`isa.area.area_mm2` multiplies them out). DRAM is off chip and has none."""

    mac_af8_um2: float = _range(0.0, 1e9)  # one AF8 MAC of the PU array (multiplier + accumulator)
    mac_f32_um2: float = _range(0.0, 1e9)  # one fp32 MAC (0: no fp32 datapath)
    sfu_lane_um2: float = _range(0.0, 1e9)  # one SFU lane (its share of every special-function unit)
    sram_mm2_per_kib: float = _range(0.0, 1e6)  # SRAM array per KiB of every buffer
    sram_macro_mm2: float = _range(0.0, 1e6)  # per buffer instance: the fixed periphery of one macro
    envm_mm2_per_mib: float = _range(0.0, 1e6)  # eNVM (ReRAM) per MiB
    ldo_mm2: float = _range(0.0, 1e6)  # DVFS: the voltage regulator
    pll_mm2: float = _range(0.0, 1e6)  # DVFS: the clock generator
    control_mm2: float = _range(0.0, 1e6)  # front end, scalar registers, DMA engine, token queues


@dataclass(frozen=True)
class HardwareConfig:
    name: str
    pu: PU
    sfu: SFU
    frontend: Frontend
    dma: Dma
    memory: Memory
    energy: Energy
    dvfs: Dvfs
    #: The area model (None: the config has none). Not part of the fingerprint: area changes no cycle, byte or joule.
    area: Area | None = None
    #: The TOML text this config was read from ("" when built in code); not part of the fingerprint.
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["source"]
        if data["area"] is None:
            del data["area"]
        return data

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """32-byte SHA-256 of the canonical JSON of every field that sets a cost (the `.ebin` records it): all but
        `area` and `source`."""
        data = self.to_dict()
        data.pop("area", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).digest()

    def toml_text(self) -> str:
        """TOML that loads back to this config: the source text when it still describes it, else generated."""
        if self.source:
            try:
                if parse_config_text(self.source) == self:
                    return self.source
            except HardwareConfigError:
                pass
        return to_toml(self)


def _fail(field_name: str, why: str) -> typing.NoReturn:
    raise HardwareConfigError(f"hardware config field '{field_name}': {why}")


def _validate(hw: HardwareConfig) -> None:
    """Cross-field rules (each field's own type and range were checked while building)."""
    if not isinstance(hw.name, str) or not _NAME.fullmatch(hw.name):
        _fail("name", "must be 1-100 characters of letters, digits and . _ + - (starting with a letter or digit)")
    pu = hw.pu
    for dim in ("m", "k", "n"):
        # A matmul instruction covers at least one vector in every dimension (less idles the MAC array), and at
        # least MIN_MATMUL_MACS: the compiler emits about M K N / (max_m max_k max_n) instructions per matmul, so
        # max_m = k = n = 1 once meant minutes and gigabytes per compile (ALBERT-base at 16 x 16 x 16: 263,200
        # instructions, 33 s, 1.5 GB; at the bundled configs' limits: 190 instructions).
        if getattr(pu, f"max_{dim}") < pu.vector_size:
            _fail(f"pu.max_{dim}", f"must be at least pu.vector_size ({pu.vector_size})")
        if getattr(pu, f"block_{dim}") > getattr(pu, f"max_{dim}"):
            _fail(f"pu.block_{dim}", f"must not exceed pu.max_{dim}")
    if pu.max_m * pu.max_k * pu.max_n < MIN_MATMUL_MACS:
        _fail("pu.max_m", f"max_m x max_k x max_n must be at least {MIN_MATMUL_MACS} MACs (one 16x16x16 block)")
    if pu.operand_feed not in OPERAND_FEEDS:
        _fail("pu.operand_feed", f"must be one of {', '.join(OPERAND_FEEDS)}")
    if pu.writeback_release_cycles > pu.writeback_cycles:
        _fail("pu.writeback_release_cycles", "must not exceed pu.writeback_cycles")
    sram = hw.memory.sram
    names = [b.name for b in sram.buffers] or ["sram"]
    if hw.memory.sram.buffers:
        if len(set(names)) != len(names):
            _fail("memory.sram.buffers", "buffer names must be unique")
        for i, buf in enumerate(sram.buffers):
            if not _KEY.fullmatch(buf.name):
                _fail(f"memory.sram.buffers[{i}].name", "must be 1-64 letters, digits, _ and -")
            if buf.size_bytes % sram.align_bytes:
                _fail(f"memory.sram.buffers[{i}].size_bytes", "must be a multiple of memory.sram.align_bytes")
        total = sum(b.count * b.size_bytes for b in sram.buffers)
        if total != sram.size_bytes:
            _fail("memory.sram.buffers", f"buffers hold {total} bytes but memory.sram.size_bytes is {sram.size_bytes}")
    for level in ("dram", "envm"):
        if hw.memory.level(level).buffers:
            _fail(f"memory.{level}.buffers", "only the sram level has buffers")
    if pu.operand_buffer not in names:
        _fail("pu.operand_buffer", f"must name an SRAM buffer ({', '.join(names)})")
    missing = [op for op in SFU_MNEMONICS if op not in hw.sfu.ops]
    if missing:
        _fail(f"sfu.ops.{missing[0]}", "missing (every SFU instruction needs a cost entry)")
    for op, cost in hw.sfu.ops.items():
        for buf, count in cost.reads.items():
            if buf not in names:
                _fail(f"sfu.ops.{op}.reads.{buf}", f"not an SRAM buffer ({', '.join(names)})")
            if not 0 <= count <= 1000:
                _fail(f"sfu.ops.{op}.reads.{buf}", "must be between 0 and 1000")
    for level in LEVELS:
        mem = hw.memory.level(level)
        if mem.align_bytes & (mem.align_bytes - 1):
            _fail(f"memory.{level}.align_bytes", "must be a power of two")
        if mem.size_bytes % mem.align_bytes:
            _fail(f"memory.{level}.size_bytes", f"must be a multiple of memory.{level}.align_bytes")
    if sram.size_bytes > 1 << 24:
        _fail("memory.sram.size_bytes", "exceeds the 24-bit SRAM address field (16 MiB)")
    points = hw.dvfs.points
    if not points:
        _fail("dvfs.points", "needs at least one operating point")
    if len(points) > 256:
        _fail("dvfs.points", "at most 256 operating points (8-bit index)")
    for i, p in enumerate(points):
        if i and not (p.volts > points[i - 1].volts and p.mhz > points[i - 1].mhz):
            _fail(f"dvfs.points[{i}]", "volts and mhz must both increase with the index (slowest point first)")
    for name in ("nominal", "initial"):
        if not 0 <= getattr(hw.dvfs, name) < len(points):
            _fail(f"dvfs.{name}", f"must index dvfs.points (0..{len(points) - 1})")


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlong, r.maxlist, r.maxdict = 3, 40, 40, 40, 4, 4
    return r


_SHORT = _short_repr()


def _describe(value: Any) -> str:
    """A short, always-printable rendering of a TOML value for error messages (deep or huge values too)."""
    return _SHORT.repr(value)


def _build(cls: Any, data: Any, path: str, meta: Any = None) -> Any:
    """Construct `cls` from TOML data, rejecting unknown, missing, mistyped and out-of-range fields.

    `meta`: the field's metadata: "range" (inclusive bounds of a number), "keys" (the keys a table may have).
    """
    meta = meta or {}
    bounds = meta.get("range")
    origin = typing.get_origin(cls)
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            _fail(path or "<root>", f"expected a table, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if f.compare]
        names = [f.name for f in fields]
        unknown = sorted(set(data) - set(names))
        if unknown:
            _fail(f"{path}.{unknown[0]}".lstrip("."), "unknown field")
        kwargs = {}
        for f in fields:
            sub = f"{path}.{f.name}".lstrip(".")
            if f.name not in data:
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    continue  # optional: the dataclass default
                _fail(sub, "missing")
            kwargs[f.name] = _build(hints[f.name], data[f.name], sub, f.metadata)
        return cls(**kwargs)
    if origin in (typing.Union, types.UnionType):  # `X | None`: TOML has no null, so a value present is an X
        return _build(next(a for a in typing.get_args(cls) if a is not type(None)), data, path, meta)
    if origin is tuple:
        if not isinstance(data, list):
            _fail(path, f"expected an array, got {type(data).__name__}")
        if len(data) > 1024:
            _fail(path, f"{len(data)} entries is too many")
        item = typing.get_args(cls)[0]
        return tuple(_build(item, x, f"{path}[{i}]") for i, x in enumerate(data))
    if origin is dict:
        if not isinstance(data, dict):
            _fail(path, f"expected a table, got {type(data).__name__}")
        allowed = meta.get("keys")
        unknown = sorted(k for k in data if allowed is not None and k not in allowed)
        if unknown:
            _fail(f"{path}.{unknown[0]}", f"unknown (known: {', '.join(allowed)})")
        return {str(k): _build(typing.get_args(cls)[1], v, f"{path}.{k}") for k, v in data.items()}
    if cls is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            _fail(path, f"expected a number, got {_describe(data)}")
        value = float(data)
        if not math.isfinite(value):
            _fail(path, f"must be a finite number, got {value}")
    elif cls is int:
        if isinstance(data, bool) or not isinstance(data, int):
            _fail(path, f"expected an integer, got {_describe(data)}")
        value = data
    elif cls is bool:
        if not isinstance(data, bool):
            _fail(path, f"expected true or false, got {_describe(data)}")
        return data
    elif cls is str:
        if not isinstance(data, str):
            _fail(path, f"expected a string, got {_describe(data)}")
        return data
    else:  # pragma: no cover - a schema type this builder does not know
        raise TypeError(f"unsupported schema type {cls!r}")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        _fail(path, f"must be between {bounds[0]:g} and {bounds[1]:g}, got {_describe(value)}")
    return value


def parse_config(data: dict[str, Any], source: str = "") -> HardwareConfig:
    """Build a validated config from already-parsed TOML data (`source`: the text it came from, if any)."""
    try:
        hw = _build(HardwareConfig, data, "")
    except RecursionError:
        raise HardwareConfigError("hardware config: values nested too deeply") from None
    return dataclasses.replace(hw, source=source) if source else hw


def parse_config_text(text: str, where: str = "hardware config") -> HardwareConfig:
    """Parse and validate TOML text; errors start with `where`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareConfigError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise HardwareConfigError(f"{where}: invalid TOML: values nested too deeply") from None
    try:
        return parse_config(data, text)
    except HardwareConfigError as exc:
        raise HardwareConfigError(f"{where}: {exc}") from None


def bundled_configs() -> tuple[str, ...]:
    """Names of the configs shipped with the package (`isa/configs/<name>.toml`)."""
    folder = resources.files("edgebert.isa").joinpath("configs")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


def bundled_config_text(name: str) -> str:
    """The TOML text of bundled config `name`."""
    if name not in bundled_configs():
        raise HardwareConfigError(f"unknown hardware config '{name}' (bundled: {', '.join(bundled_configs())})")
    return resources.files("edgebert.isa").joinpath("configs", f"{name}.toml").read_text(encoding="utf-8")


def _is_name(name_or_path: str) -> bool:
    return "/" not in name_or_path and "\\" not in name_or_path and not name_or_path.endswith(".toml")


def load_config(name_or_path: str | Path | None = None) -> HardwareConfig:
    """A bundled config by name (`edgebert-cmod`, `ideal-256mac`), a TOML file, or the default when None."""
    if name_or_path is None:
        return default_config()
    text_name = str(name_or_path)
    if isinstance(name_or_path, str) and _is_name(text_name) and text_name in bundled_configs():
        return _bundled(text_name)
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and _is_name(text_name) and not path.exists():
        raise HardwareConfigError(
            f"unknown hardware config '{text_name}' (bundled: {', '.join(bundled_configs())}; or a .toml file path)"
        )
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise HardwareConfigError(f"{path}: cannot read hardware config: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise HardwareConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes: not a hardware config TOML")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HardwareConfigError(
            f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}): not a hardware config TOML"
        ) from None
    return parse_config_text(text, str(path))


_BUNDLED: dict[str, HardwareConfig] = {}


def _bundled(name: str) -> HardwareConfig:
    if name not in _BUNDLED:
        _BUNDLED[name] = parse_config_text(bundled_config_text(name), f"bundled config {name}")
    return _BUNDLED[name]


def default_config() -> HardwareConfig:
    """The default configuration, `DEFAULT_CONFIG` (cached)."""
    return _bundled(DEFAULT_CONFIG)


def bundled_by_fingerprint(fingerprint: bytes) -> HardwareConfig | None:
    """The bundled config with this fingerprint, if any."""
    return next((_bundled(n) for n in bundled_configs() if _bundled(n).fingerprint == fingerprint), None)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(hw: HardwareConfig) -> str:
    """Canonical TOML text of `hw` (no comments); `parse_config_text(to_toml(hw)) == hw`."""
    lines: list[str] = []

    def table(prefix: str, data: dict[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict) or k == "reads"}
        if prefix:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in data.items():
            if k not in scalars:
                table(f"{prefix}.{k}".lstrip("."), v)

    table("", hw.to_dict())
    return "\n".join(lines).lstrip("\n") + "\n"
