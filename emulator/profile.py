"""Where a run's cycles and energy went: per op class and per layer, and a roofline view per op class.

Counted while the machine runs (`Machine.profile`, on for `run(..., profile=True)`): each executed instruction's
unit cycles and actions (MACs, SFU element-passes, bytes per memory level) go to its (region, op class, operating
point). Regions follow the program's outermost loops, the layer loops of compiled programs: `before layer 1`, `layer
k` (the k-th iteration of a loop body), `after layer N`. A program without a loop whose layers end in exit branches
(an unrolled early-exit program) has a region per exit: `layer k` runs up to the k-th exit branch (layer 1 includes
the code before it), `after layer N` is the exit path (from the `ee.exit` label); other programs are one region.
Leakage and DVFS switches belong to no instruction: per layer they are charged by the time between the layer's first
instruction and the next region's (that partition sums to the run), per op class they stay separate rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from edgebert.emulator.energy import dynamic_energy
from edgebert.isa.abi import EXIT_LABEL
from edgebert.isa.costs import Costs
from edgebert.isa.encoding import Inst
from edgebert.isa.program import Program
from edgebert.isa.table import BY_MNEMONIC, INSTRUCTIONS, SPACES, UNITS, Kind

if TYPE_CHECKING:
    from edgebert.emulator.energy import Segment
    from edgebert.emulator.machine import Machine

#: Units as a reader names them.
UNIT_NAMES = {"ld": "load DMA", "pu": "matrix unit", "sfu": "special-function unit", "st": "store DMA",
              "ctl": "front end"}
#: The SFU's op classes (every SFU instruction of the table is in one: tests/emulator/test_profile.py).
SFU_CLASSES = {
    "softmax": ("softmax",),
    "layer norm": ("layernorm",),
    "entropy": ("entropy",),
    "activation": ("gelu", "gelu_erf", "tanh", "relu", "exp", "log", "sqrt", "erf"),
    "quantize": ("quant", "dequant"),
    "element-wise": ("vadd", "vsub", "vmul", "vdiv", "vmax", "vmin", "vcmp", "vaddi", "vmuli", "vmov", "itof", "ftoi",
                     "vscan"),
}
#: Op classes of the other units.
UNIT_CLASSES = {"ld": "load", "pu": "matmul", "st": "store", "ctl": "control"}
#: Op classes in report order.
OP_CLASSES = ("matmul", *SFU_CLASSES, "load", "store", "control")
_SFU_CLASS = {m: c for c, ms in SFU_CLASSES.items() for m in ms}
#: Memory levels in bound names.
LEVEL_NAMES = {"dram": "DRAM", "envm": "eNVM", "sram": "SRAM"}
#: The bound of an op class that attains less than half its roof: per-instruction latency, launch and fixed cycles.
OVERHEAD_BOUND = "latency/overheads"

# accumulator slots: executions, unit cycles, fp32 MACs, AF8 MACs, SFU element-passes, ctl ops, read[3], written[3]
_N, _CYC, _F32, _AF8, _SFU, _CTL, _RD = range(7)
_WR = _RD + len(SPACES)
_SLOTS = _WR + len(SPACES)


def op_class(mnemonic: str) -> str:
    """The op class of an instruction (an unknown mnemonic: `control`, where the front end charges it)."""
    spec = BY_MNEMONIC.get(mnemonic)
    if spec is None:
        return "control"
    if spec.unit == "sfu":
        return _SFU_CLASS[mnemonic]
    return UNIT_CLASSES[spec.unit]


def loop_ranges(code: list[Inst]) -> list[tuple[int, int]]:
    """[start, end] pc ranges of the outermost loops: a branch at `end` back to `start` <= end; loops inside
    another are part of it."""
    loops = []
    for pc, inst in enumerate(code):
        spec = BY_MNEMONIC.get(inst.mnemonic)
        if spec is None:
            continue
        for f in spec.operand_fields:
            if f.kind is Kind.TARGET and inst[f.name] <= pc:
                loops.append((inst[f.name], pc))
    loops.sort(key=lambda r: (r[0], -r[1]))
    outer: list[tuple[int, int]] = []
    for lo, hi in loops:
        if outer and lo <= outer[-1][1]:
            outer[-1] = (outer[-1][0], max(outer[-1][1], hi))
        else:
            outer.append((lo, hi))
    return outer


#: The exit branches: each ends a layer of an early-exit program.
EXIT_BRANCHES = ("bexit", "bexitr", "bexitp")


class Profile:
    """The per-instruction accounting of one run (see the module docstring); `Machine` calls `before`/`after`."""

    def __init__(self, program: Program) -> None:
        code = program.code
        self.classes = [op_class(inst.mnemonic) for inst in code]
        self.loops = loop_ranges(code)
        starts = {lo for lo, _ in self.loops}
        inside = [False] * len(code)
        for lo, hi in self.loops:
            for pc in range(lo, hi + 1):
                inside[pc] = True
        self._start, self._inside = [pc in starts for pc in range(len(code))], inside
        # unrolled early-exit programs: layers end at exit branches, the exit path starts at its label
        self._exits = [] if self.loops else [inst.mnemonic in EXIT_BRANCHES for inst in code]
        exit_pc = next((s.value for s in program.symbols if s.space == "code" and s.name == EXIT_LABEL), None)
        self._exit_pc = exit_pc if self._exits and any(self._exits) else None
        self.reset()

    def reset(self) -> None:
        """Forget the previous run."""
        self.acc: dict[tuple[int, str, int], list[int]] = {}
        self.layers = 0
        self._taken_at: int | None = None  # unrolled: the layer whose exit branch was taken
        self._branch: int | None = None  # unrolled: pc of the exit branch just executed
        #: (region, first start cycle) in order of appearance
        self.region_starts: list[tuple[int, int]] = []
        self._snap: tuple[Segment, tuple[int, ...]] | None = None

    def _region_of(self, pc: int) -> int:
        if self._exit_pc is not None:
            return self._unrolled_region(pc)
        if self._start[pc]:
            self.layers += 1
            return self.layers
        if not self._inside[pc]:
            return -(self.layers + 1)  # outside the loops: "after layer N", -1 before any
        return self.layers

    def _unrolled_region(self, pc: int) -> int:
        """Layer k up to the k-th exit branch; the exit path after the layer that took it (or the last layer)."""
        if self._branch is not None:
            if pc != self._branch + 1 and self._taken_at is None:
                self._taken_at = self.layers  # the branch was taken: the exit path follows layer `layers`
            self._branch = None
        if pc >= self._exit_pc:
            return -((self._taken_at if self._taken_at is not None else self.layers + 1) + 1)
        if self._exits[pc]:
            self.layers += 1
            self._branch = pc
            return self.layers
        return self.layers + 1

    def before(self, seg: Segment) -> None:
        """Snapshot the segment's counters before an instruction runs."""
        self._snap = (seg, (seg.mac_f32, seg.mac_af8, seg.sfu_passes, seg.ctl_ops, *seg.read, *seg.written))

    def after(self, pc: int, start: int, cycles: int, ctl_point: int | None = None) -> None:
        """Charge what the instruction at `pc` (started at `start`, `cycles` on its unit) added to the segment;
        `ctl_point`: a front-end instruction, its op charged at that operating point (a dvfs switch's new one)."""
        seg, snap = self._snap  # type: ignore[misc]
        region = self._region_of(pc)
        if not self.region_starts or self.region_starts[-1][0] != region:
            self.region_starts.append((region, start))
        a = self._slot(region, self.classes[pc], seg.point)
        a[_N] += 1
        a[_CYC] += cycles
        a[_F32] += seg.mac_f32 - snap[0]
        a[_AF8] += seg.mac_af8 - snap[1]
        a[_SFU] += seg.sfu_passes - snap[2]
        for i in range(len(SPACES)):
            a[_RD + i] += seg.read[i] - snap[4 + i]
            a[_WR + i] += seg.written[i] - snap[4 + len(SPACES) + i]
        if ctl_point is not None:
            self._slot(region, self.classes[pc], ctl_point)[_CTL] += 1

    def _slot(self, region: int, cls: str, point: int) -> list[int]:
        a = self.acc.get((region, cls, point))
        if a is None:
            a = self.acc[(region, cls, point)] = [0] * _SLOTS
        return a


def region_name(region: int) -> str:
    """`before layer 1`, `layer k`, `after layer N`."""
    if region > 0:
        return f"layer {region}"
    layers = -region - 1
    return "before layer 1" if layers == 0 else f"after layer {layers}"


@dataclass
class _Sum:
    count: int = 0
    cycles: int = 0
    macs_f32: int = 0
    macs_af8: int = 0
    sfu_passes: int = 0
    read: tuple[int, ...] = (0, 0, 0)
    written: tuple[int, ...] = (0, 0, 0)
    energy: dict[str, float] | None = None

    def add(self, a: list[int], energy: dict[str, float]) -> None:
        self.count += a[_N]
        self.cycles += a[_CYC]
        self.macs_f32 += a[_F32]
        self.macs_af8 += a[_AF8]
        self.sfu_passes += a[_SFU]
        self.read = tuple(x + y for x, y in zip(self.read, a[_RD:_WR], strict=True))
        self.written = tuple(x + y for x, y in zip(self.written, a[_WR:_SLOTS], strict=True))
        self.energy = {k: (self.energy or {}).get(k, 0.0) + v for k, v in energy.items()}

    def row(self) -> dict[str, Any]:
        energy = self.energy or {}
        return {"instructions": self.count, "unit_cycles": self.cycles, "macs": self.macs_f32 + self.macs_af8,
                "macs_af8": self.macs_af8, "sfu_element_passes": self.sfu_passes,
                "read_bytes": dict(zip(SPACES, self.read, strict=True)),
                "write_bytes": dict(zip(SPACES, self.written, strict=True)),
                "energy_j": sum(energy.values()), "energy_breakdown_j": energy}


def _energy(m: Machine, a: list[int], point: int) -> dict[str, float]:
    return dynamic_energy(m.hw, point, a[_F32], a[_AF8], a[_SFU], a[_CTL], a[_RD:_WR], a[_WR:_SLOTS])


def _seconds_between(m: Machine, c0: int, c1: int) -> float:
    """Wall time of core cycles [c0, c1) (each DVFS segment at its clock; a switch's latency with its segment)."""
    total = 0.0
    for seg in m.segments:
        lo, hi = max(c0, seg.start_cycle), min(c1, seg.start_cycle + seg.cycles)
        if hi > lo:
            total += (hi - lo) / (m.hw.dvfs.points[seg.point].mhz * 1e6)
        if seg.switched and c0 <= seg.start_cycle < c1:
            total += seg.switch_s
    return total


def op_class_rows(m: Machine, prof: Profile) -> dict[str, dict[str, Any]]:
    """Per op class: instructions, unit cycles, MACs, element-passes, bytes per level, dynamic energy."""
    sums = {c: _Sum() for c in OP_CLASSES}
    for (_, cls, point), a in prof.acc.items():
        sums[cls].add(a, _energy(m, a, point))
    return {c: s.row() for c, s in sums.items() if s.count}


def layer_rows(m: Machine, prof: Profile, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per region in run order: its time (first instruction to the next region's), the cycles its instructions took
    on their units, dynamic energy by component, and its share of leakage and DVFS switching by time."""
    sums: dict[int, _Sum] = {}
    for (region, _, point), a in prof.acc.items():
        sums.setdefault(region, _Sum()).add(a, _energy(m, a, point))
    static = {k: report["energy_breakdown_j"].get(k, 0.0) for k in ("leakage", "dvfs_switch")}
    total_s = report["seconds"] or 1.0
    rows = []
    starts = prof.region_starts
    for i, (region, c0) in enumerate(starts):
        c1 = starts[i + 1][1] if i + 1 < len(starts) else m.cycles
        seconds = _seconds_between(m, c0, c1)
        row = {"region": region_name(region), "start_cycle": c0, "cycles": c1 - c0, "seconds": seconds}
        row |= sums[region].row()
        for key, joules in static.items():
            row["energy_breakdown_j"][key] = joules * seconds / total_s
        row["energy_j"] = sum(row["energy_breakdown_j"].values())
        rows.append(row)
    return rows


def _roof(m: Machine, costs: Costs, cls: str, row: dict[str, Any]) -> tuple[float, str]:
    """The lower bound on an op class's unit cycles its work implies, and what sets it."""
    hw = m.hw
    if cls == "matmul":
        af8 = row["macs_af8"]
        f32 = row["macs"] - af8
        cycles = af8 / costs.peak_macs_per_cycle(1, 1) + f32 / costs.peak_macs_per_cycle(4, 4)
        return float(cycles), "compute (MACs)"
    if cls in SFU_CLASSES:
        return row["sfu_element_passes"] / hw.sfu.lanes, "compute (SFU lanes)"
    if cls in ("load", "store"):
        per_level = {lvl: (row["read_bytes"][lvl] + row["write_bytes"][lvl]) / hw.memory.level(lvl).bandwidth
                     for lvl in SPACES}
        level = max(per_level, key=lambda k: per_level[k])
        return per_level[level], f"{LEVEL_NAMES[level]} bandwidth"
    return 0.0, "-"


def roofline(m: Machine, classes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per op class: its roof (the fewest unit cycles its work allows), the cycles it took, the share attained and
    the bound it hits (the roof's resource when at least half of it is attained, else OVERHEAD_BOUND);
    for the whole run: the busiest unit against the run's cycles."""
    costs = Costs(m.hw)
    out: dict[str, Any] = {}
    for cls, row in classes.items():
        if cls == "control":
            continue
        roof, resource = _roof(m, costs, cls, row)
        attained = roof / row["unit_cycles"] if row["unit_cycles"] else 0.0
        out[cls] = {"roof_cycles": roof, "unit_cycles": row["unit_cycles"], "attained": attained,
                    "resource": resource, "bound": resource if attained >= 0.5 else OVERHEAD_BOUND}
    busy = {UNITS[u]: sum(s.busy[u] for s in m.segments) for u in range(len(UNITS))}
    critical = max(busy, key=lambda k: busy[k])
    return {"op_classes": out, "critical_unit": critical, "critical_unit_busy": busy[critical] / m.cycles if m.cycles
            else 0.0, "peak_macs_per_cycle": float(Fraction(costs.peak_macs_per_cycle(1, 1)))}


def breakdown(m: Machine, prof: Profile, report: dict[str, Any]) -> dict[str, Any]:
    """The report's `breakdown` section: `op_classes`, `layers`, `roofline`."""
    classes = op_class_rows(m, prof)
    return {"op_classes": classes, "layers": layer_rows(m, prof, report), "roofline": roofline(m, classes),
            "loops": [list(r) for r in prof.loops]}


def check_table_covered() -> list[str]:
    """SFU instructions of the table that no op class names (should be empty)."""
    return [i.mnemonic for i in INSTRUCTIONS if i.unit == "sfu" and i.mnemonic not in _SFU_CLASS]
