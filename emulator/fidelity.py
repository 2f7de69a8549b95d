"""Fidelity of the emulator's cycle costs against the authors' SystemC model of EdgeBERT.

Reads job tables in the format of `../shared/data/edgebert-cmod/cycles.csv` (one measured job per row), turns
each job into the smallest program that does it (built with the instruction encoder, never with cycle
formulas), runs it on the emulator and compares the job instruction's duration with the measured cycles.
`benchmarks/bench_fidelity.py` is the command line; `closed_form_jobs` makes tables of shapes the CSV does not
hold from the closed forms fitted to the SystemC model (its README), to check that the model generalises.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebert.emulator.runner import run
from edgebert.isa.bits import f32_bits, sparse_mask_bytes
from edgebert.isa.encoding import Inst, make
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import Buffer, HardwareConfig
from edgebert.isa.program import Program, Segment
from edgebert.isa.table import DTYPES, FORMATS, SPACES

#: Units in the order of the summary line.
UNITS = ("pu", "layernorm", "softmax", "entropy", "elemadd", "dma", "dvfs")
#: The issue's bar: max |error| in percent per unit.
BOUNDS = {unit: 5.0 if unit == "pu" else 10.0 for unit in UNITS}
COLUMNS = ("unit", "job", "n0", "m", "n1", "nv", "nt", "sparse_density", "cycles", "testbench")
AF8 = FORMATS.index("af8")
U8 = DTYPES.index("u8")
DRAM = SPACES.index("dram")
_LATENCY = re.compile(r"SFU_param\(LAT=(\d+)\)")
_DMA_TARGETS = {"input_rd": ("input", 16), "aux_rd": ("aux", 16), "mask_rd": ("mask", 2)}  # buffer, bytes per nv


class FidelityError(EdgebertError):
    """A job table row is malformed or names a job the emulator cannot run."""


@dataclass(frozen=True)
class Job:
    """One measured job: a row of the table."""

    line: int
    unit: str
    job: str
    n0: int
    m: int
    n1: int
    nv: int
    nt: int
    density: float
    cycles: int
    testbench: str

    @property
    def shape(self) -> str:
        if self.unit == "pu":
            return f"{self.n0}x{self.m}x{self.n1}" + (f" d={self.density:g}" if self.density != 1.0 else "")
        if self.unit == "dma":
            return f"{self.job.split('_')[1]} {self.nv}"
        if self.unit == "dvfs":
            return "-"
        return f"nv={self.nv} nt={self.nt}"


@dataclass(frozen=True)
class Outcome:
    job: Job
    emulated: int

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.emulated - self.job.cycles) / self.job.cycles


def _int(row: dict[str, str], key: str, where: str, default: int = 0) -> int:
    text = (row.get(key) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise FidelityError(f"{where}: column '{key}' is not an integer: {text[:40]!r}") from None
    if not 0 <= value <= 1 << 20:
        raise FidelityError(f"{where}: column '{key}' = {value} is out of range")
    return value


def read_jobs(path: str | Path) -> list[Job]:
    """The jobs of a cycles.csv-format table (`encode` rows are skipped: the encoder is inside the PU path)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FidelityError(f"{path}: cannot read the job table: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise FidelityError(f"{path}: missing column(s) {', '.join(missing)}")
    jobs = []
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        unit = (row["unit"] or "").strip()
        if unit in ("encode", "decode"):
            continue
        if unit not in UNITS:
            raise FidelityError(f"{where}: unknown unit {unit!r} (known: {', '.join(UNITS)}, encode)")
        try:
            density = float(row["sparse_density"]) if (row["sparse_density"] or "").strip() else 1.0
        except ValueError:
            raise FidelityError(f"{where}: column 'sparse_density' is not a number") from None
        if not 0.0 <= density <= 1.0:
            raise FidelityError(f"{where}: sparse_density {density} is not in [0, 1]")
        job = Job(line, unit, (row["job"] or "").strip(), _int(row, "n0", where), _int(row, "m", where),
                  _int(row, "n1", where), _int(row, "nv", where, 1), _int(row, "nt", where, 1), density,
                  _int(row, "cycles", where), (row["testbench"] or "").strip())
        if job.cycles <= 0:
            raise FidelityError(f"{where}: cycles must be positive")
        if unit == "pu" and not (job.n0 and job.m and job.n1):
            raise FidelityError(f"{where}: a pu job needs n0, m and n1")
        if unit == "dma" and not any(key in job.job for key in _DMA_TARGETS):
            raise FidelityError(f"{where}: dma job {job.job!r} names none of {', '.join(_DMA_TARGETS)}")
        if job.unit != "dvfs" and (job.nv == 0 or job.nt == 0):
            raise FidelityError(f"{where}: nv and nt must be positive")
        if not (job.testbench.startswith(("TopAccel", "PUModule")) or _LATENCY.fullmatch(job.testbench)):
            raise FidelityError(f"{where}: unknown testbench {job.testbench!r}")
        jobs.append(job)
    return jobs


def standalone_config(hw: HardwareConfig, latency: int) -> HardwareConfig:
    """`hw` as the SFU_param testbench sees a unit: no controller launch, every SFU read `latency` cycles late."""
    buffers = tuple(dataclasses.replace(b, read_latency_cycles=latency) for b in hw.memory.sram.buffers)
    sram = dataclasses.replace(hw.memory.sram, buffers=buffers)
    if not buffers:
        sram = dataclasses.replace(sram, latency_cycles=latency)
    ops = {name: dataclasses.replace(op, launch_cycles=0) for name, op in hw.sfu.ops.items()}
    return dataclasses.replace(
        hw,
        pu=dataclasses.replace(hw.pu, launch_cycles=0),
        sfu=dataclasses.replace(hw.sfu, ops=ops),
        memory=dataclasses.replace(hw.memory, sram=sram),
        dvfs=dataclasses.replace(hw.dvfs, decision_launch_cycles=0),
    )


def job_config(hw: HardwareConfig, job: Job) -> HardwareConfig:
    """The config a job's testbench measured: `hw` itself through TopAccel, the unit alone otherwise."""
    if job.testbench.startswith("TopAccel"):
        return hw
    if job.testbench.startswith("PUModule"):
        return dataclasses.replace(hw, pu=dataclasses.replace(hw.pu, launch_cycles=0))
    match = _LATENCY.fullmatch(job.testbench)
    assert match is not None  # checked by read_jobs
    return standalone_config(hw, int(match.group(1)))


def _region_start(hw: HardwareConfig, name: str) -> int:
    """Address of the first SRAM buffer called `name` (0 when the config has no such buffer)."""
    return next((lo for lo, _, b in hw.memory.sram.regions("sram") if b.name == name), 0)


def _with_room(hw: HardwareConfig, nbytes: int) -> HardwareConfig:
    """`hw` with SRAM for `nbytes` more bytes (fp32 tiles take 2-4x the chip's bytes; sizes do not change cycles)."""
    sram = hw.memory.sram
    extra = -(-nbytes // sram.align_bytes) * sram.align_bytes
    if sram.size_bytes + extra > 1 << 24:
        raise FidelityError(f"a job of {nbytes} bytes does not fit the 16 MiB SRAM address space")
    buffers = sram.buffers
    if buffers:
        port = max(b.port_bytes_per_cycle for b in buffers)
        buffers = (*buffers, Buffer("bench", 1, extra, port, 0))
    sram = dataclasses.replace(sram, size_bytes=sram.size_bytes + extra, buffers=buffers)
    return dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=sram))


class _Layout:
    """Consecutive aligned SRAM addresses for a job's tiles."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.align, self.end = hw.memory.sram.align_bytes, 0

    def take(self, nbytes: int) -> int:
        at = self.end
        self.end += -(-max(nbytes, 1) // self.align) * self.align
        return at


def _sparse_operand(k: int, n: int, density: float) -> bytes:
    """A k x n AF8 bitmask-sparse operand: the mask (`density` of its bits set, evenly spread), then the values."""
    count = k * n
    bits = (np.floor(np.arange(1, count + 1) * density) > np.floor(np.arange(count) * density)).astype(np.uint8)
    mask = np.packbits(bits, bitorder="little").tobytes()
    mask += bytes(sparse_mask_bytes(k, n) - len(mask))
    return mask + bytes([0x38]) * int(bits.sum())  # non-zero AF8 codes


def job_program(hw: HardwareConfig, job: Job) -> tuple[HardwareConfig, Program, int]:
    """(config, program, pc of the job's instruction): the smallest program that runs `job` under `hw`."""
    hw = job_config(hw, job)
    lay = _Layout(hw)
    segments: list[Segment] = []
    code: list[Inst] = []
    rows, cols = job.nt, 16 * job.nv
    if job.unit == "pu":
        a = lay.take(job.n0 * job.m)
        if job.density < 1.0:
            b_data = _sparse_operand(job.m, job.n1, job.density)
            b = lay.take(len(b_data))
            segments.append(Segment("sram", b, b_data, "b"))
        else:
            b = lay.take(job.m * job.n1)
        dst = lay.take(job.n0 * job.n1 * 4)
        code.append(make("matmul", dst=dst, a=a, b=b, m=job.n0, k=job.m, n=job.n1, a_fmt=AF8, b_fmt=AF8,
                         sparse=int(job.density < 1.0)))
    elif job.unit in ("layernorm", "softmax", "elemadd"):
        src, other, dst = lay.take(rows * cols * 4), lay.take(rows * cols * 4), lay.take(rows * cols * 4)
        if job.unit == "layernorm":
            gamma, beta = lay.take(cols * 4), lay.take(cols * 4)
            code.append(make("layernorm", dst=dst, src=src, gamma=gamma, beta=beta, rows=rows, cols=cols,
                             eps=f32_bits(1e-5)))
        elif job.unit == "softmax":
            code.append(make("softmax", dst=dst, src=src, mask=lay.take(cols * 4), has_mask=1, rows=rows, cols=cols))
        else:
            code.append(make("vadd", dst=dst, a=src, b=other, rows=rows, cols=cols))
    elif job.unit == "entropy":
        code.append(make("entropy", fd=1, src=lay.take(cols * 4), n=cols))  # one row: the unit ignores nt
    elif job.unit == "dvfs":
        code += [make("fli", fd=1, imm=f32_bits(0.5)), make("lut", rd=1, fs=1, table=lay.take(64), nbins=16,
                                                               scale=f32_bits(16.0))]
    else:
        target, per_nv = next(v for k, v in _DMA_TARGETS.items() if k in job.job)
        dst = _region_start(hw, target)
        code.append(make("ld", dst=dst, src=0, src_space=DRAM, rows=job.nv, cols=per_nv, dtype=U8))  # packed rows
        lay.end = max(lay.end, dst + job.nv * per_nv)
    if lay.end > hw.memory.sram.size_bytes:
        hw = _with_room(hw, lay.end - hw.memory.sram.size_bytes)
    return hw, Program([*code, make("halt")], segments), len(code) - 1


def emulate(hw: HardwareConfig, job: Job) -> int:
    """Cycles the emulator charges for `job`'s instruction (its duration on its unit)."""
    job_hw, program, pc = job_program(hw, job)
    result = run(program, {}, job_hw, trace=True)
    return next(end - start for _, start, end, at in result.machine.trace if at == pc)


def compare(hw: HardwareConfig, jobs: Iterable[Job]) -> list[Outcome]:
    """Emulate every job under `hw` (the job's testbench decides launch overheads and memory latency)."""
    return [Outcome(job, emulate(hw, job)) for job in jobs]


def max_errors(outcomes: Iterable[Outcome]) -> dict[str, float | None]:
    """Largest |error| in percent per unit (None for a unit without rows)."""
    worst: dict[str, float | None] = dict.fromkeys(UNITS)
    for o in outcomes:
        prev = worst[o.job.unit]
        worst[o.job.unit] = max(abs(o.error_pct), prev if prev is not None else 0.0)
    return worst


def summary_line(worst: dict[str, float | None]) -> str:
    """`max error: pu X %, layernorm X %, ...` (one decimal; n/a for a unit without rows)."""
    parts = [f"{unit} {'n/a' if worst[unit] is None else f'{worst[unit]:.1f}'} %" for unit in UNITS]
    return "max error: " + ", ".join(parts)


def within_bounds(worst: dict[str, float | None]) -> bool:
    """Every unit within the issue's bar (matrix jobs 5 %, everything else 10 %)."""
    return all(w is None or w <= BOUNDS[u] for u, w in worst.items())


# ---- shapes the table does not hold: the README's closed forms (exact on both of its tables) -------------------
def reference_cycles(job: Job) -> int:
    """Cycles of `job` by the closed forms fitted to the SystemC model (README of the cmod data)."""
    top = job.testbench.startswith("TopAccel")
    match = _LATENCY.fullmatch(job.testbench)
    lat = int(match.group(1)) if match else 0
    nv, nt = job.nv, job.nt
    if job.unit == "pu":
        tiles, blocks = job.n0 * job.n1 // 256, job.m // 16
        base = tiles * (33 * blocks + 8) + 26 if blocks >= 2 else {1: 67, 2: 100, 3: 147}.get(tiles, 43 * tiles + 19)
        return base + (5 if top else 0)
    one = nt - 1 if nv == 1 else 0
    if job.unit == "layernorm":
        return nt * (47 * nv + 2) + 8 + one if top else nt * ((13 + 4 * lat) * nv + 2) + 2
    if job.unit == "softmax":
        return nt * (58 * nv + 1) + 9 + one if top else nt * ((13 + 4 * lat) * nv + 1) + 2
    if job.unit == "entropy":
        return 34 * nv + 10 if top else (6 + 2 * lat) * nv + 4
    if job.unit == "elemadd":
        return nt * (36 * nv + 2) + 8 if top else nt * ((8 + 2 * lat) * nv + 1) + 2
    if job.unit == "dvfs":
        return 12 if top else 5
    if "mask_rd" in job.job:
        return nv + 5 * math.ceil(nv / 1024) + 8
    return 2 * nv + 5 * math.ceil(2 * nv / 256) + 8


def closed_form_jobs(count: int, seed: int = 0, exclude: Iterable[Job] = ()) -> list[Job]:
    """`count` random jobs of every unit with shapes not in `exclude`, their cycles from `reference_cycles`."""
    rng = random.Random(seed)
    taken = {(j.unit, j.n0, j.m, j.n1, j.nv, j.nt, j.testbench) for j in exclude}
    benches = ["TopAccel_sweep", "SFU_param(LAT=0)", "SFU_param(LAT=1)", "SFU_param(LAT=4)", "SFU_param(LAT=9)",
               "SFU_param(LAT=14)", "SFU_param(LAT=20)"]
    jobs: list[Job] = []
    while len(jobs) < count:
        unit = UNITS[len(jobs) % len(UNITS)]
        n0 = m = n1 = 0
        nv, nt, name = rng.choice([1, 2, 3, 5, 7, 12, 24, 33, 64, 100, 255]), rng.randint(1, 40), unit
        bench = rng.choice(benches)
        if unit == "pu":
            n0, n1 = 16 * rng.randint(1, 24), 16 * rng.randint(1, 24)
            m = 16 * rng.choice([1, 1, 2, 3, 5, 9, 17, 40, 96])
            bench = rng.choice(["PUModule_sweep", "TopAccel_sweep"])
        elif unit == "dma":
            nv, name, bench = rng.randint(1, 4080), rng.choice(["dma_input_rd", "dma_aux_rd", "dma_mask_rd"]), "TopAccel"
            if "aux" in name:
                nv = min(nv, 256)
        elif unit == "dvfs":
            nv = nt = 1
            bench = rng.choice(["TopAccel_sweep", "SFU_param(LAT=0)"])
        key = (unit, n0, m, n1, nv, nt, bench)
        if key in taken and unit != "dvfs":  # the DVFS decision has one shape (its cycles ignore the entropy)
            continue
        taken.add(key)
        job = Job(0, unit, name, n0, m, n1, nv, nt, 1.0, 1, bench)
        jobs.append(dataclasses.replace(job, cycles=reference_cycles(job)))
    return jobs
