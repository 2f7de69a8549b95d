"""The emulated machine: state, the decode-once op list, and the run loop with its timing model.

Functional semantics run in program (dispatch) order; timing is computed alongside: the ctl front end
dispatches one instruction per cycle into per-unit queues of `frontend.queue_depth`; the ld/pu/sfu/st
units run concurrently, each in order. An instruction starts at max(dispatch, unit free, push time of every
token it pops, readiness of the F registers it reads); ctl instructions occupy the front end (one cycle, `lut`
the DVFS decision's; see `isa/costs.py`);
dvfs/dvfsr/barrier/halt first drain every unit. Accesses of different units that overlap in time and in
memory, one of them a write, are recorded as races (the program failed to guard them with tokens).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from edgebert.emulator.dispatch import DISPATCH, format_inst
from edgebert.emulator.energy import Segment
from edgebert.emulator.memory import Access, DirtyRanges, Fault, Memories, accesses_overlap
from edgebert.emulator.profile import Profile
from edgebert.emulator.shadow import ShadowLog, shadow_kind
from edgebert.isa.costs import Costs
from edgebert.isa.encoding import Inst
from edgebert.isa.errors import EmulatorTrap
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.paused_gc import paused_gc
from edgebert.isa.program import Program
from edgebert.isa.table import BY_MNEMONIC, NUM_FREGS, NUM_REGS, SPACES, UNITS

CTL = UNITS.index("ctl")
KIND_UNIT, KIND_CTL, KIND_DRAIN, KIND_DVFS, KIND_HALT, KIND_INVALID = range(6)
MAX_RACES_KEPT = 100
#: Unconsumed signals one token queue may hold (a signal with no matching wait inside a loop would grow it
#: without bound; the hardware's queues are far smaller).
MAX_PENDING_TOKENS = 1 << 16
#: Trace events kept with `trace=True`; later instructions are not traced (`trace_truncated` says so).
MAX_TRACE_EVENTS = 1_000_000
#: Default instruction budget: this many executed instructions, plus INSTRUCTION_BUDGET_PER_STATIC per
#: instruction of the program (a compiled program executes each instruction about once per layer).
INSTRUCTION_BUDGET_BASE = 1_000_000
INSTRUCTION_BUDGET_PER_STATIC = 100


#: One instruction's accesses for race checks: (start, end, pc, [(access, space, lo, hi, is_write)]).
LiveRecord = tuple[int, int, int, list[tuple[Access, int, int, int, bool]]]


def default_instruction_budget(program: Program) -> int:
    """Executed instructions a run of `program` may take before it traps as a runaway (see docs/emulator.md)."""
    return INSTRUCTION_BUDGET_BASE + INSTRUCTION_BUDGET_PER_STATIC * len(program.code)


class Op:
    """One decoded instruction, ready to run: its handler and the static facts the timing model needs."""

    __slots__ = (
        "pc", "inst", "unit", "waits", "signals", "run", "kind", "freg_reads", "freg_write", "shadow", "ctl_cycles",
    )  # fmt: skip

    def __init__(self, pc: int, inst: Inst, m: Machine) -> None:
        self.pc, self.inst = pc, inst
        spec = BY_MNEMONIC.get(inst.mnemonic)
        factory = DISPATCH.get(spec.opcode) if spec is not None else None
        self.freg_reads: tuple[int, ...] = ()
        self.freg_write = -1
        self.shadow = shadow_kind(inst.mnemonic)
        self.ctl_cycles = m.costs.ctl(inst.mnemonic)  # cycles in the front end (ctl instructions only)
        if factory is None:
            self.kind, self.unit, self.waits, self.signals = KIND_INVALID, CTL, (), ()
            self.run: Callable[[], Any] = lambda: None
            return
        self.unit = UNITS.index(spec.unit)
        self.waits = _unit_set(inst["wait"])
        self.signals = _unit_set(inst["signal"])
        self.run = factory(inst, m)
        name = inst.mnemonic
        if self.unit != CTL:
            self.kind = KIND_UNIT
        elif name in ("barrier",):
            self.kind = KIND_DRAIN
        elif name in ("dvfs", "dvfsr"):
            self.kind = KIND_DVFS
        elif name == "halt":
            self.kind = KIND_HALT
        else:
            self.kind = KIND_CTL
        if name == "entropy":
            self.freg_write = inst["fd"]
        if name in ("bexit", "lut"):
            self.freg_reads = (inst["fs"],)
        elif name == "bexitr":
            self.freg_reads = (inst["fs"], inst["ft"])


@functools.cache
def _unit_set(mask: int) -> tuple[int, ...]:
    """The units whose bits are set in a wait/signal mask."""
    return tuple(u for u in range(len(UNITS)) if mask >> u & 1)


def _take_tokens(tokens: list[list[deque[int]]], waits: Sequence[int], unit: int, start: int) -> int:
    """Pop one token per unit `unit` waits on (FIFO per pair); the instruction starts no earlier than the latest."""
    for w in waits:
        tq = tokens[w][unit]
        if not tq:
            raise Fault(f"token deadlock: waits on {UNITS[w]}->{UNITS[unit]} but no earlier signal")
        p = tq.popleft()
        if p > start:
            start = p
    return start


def _decode(code: Sequence[Inst], m: Machine) -> list[Op]:
    """Decode every instruction into its Op.

    The cyclic garbage collector is paused meanwhile: decoding allocates a few objects per instruction that
    all stay alive, and on a blocked program (tens of thousands of instructions) the full collections those
    allocations trigger cost several times the decoding itself.
    """
    with paused_gc():
        return [Op(pc, inst, m) for pc, inst in enumerate(code)]


class Machine:
    """Registers, memories, counters and timing state of one run."""

    def __init__(
        self,
        program: Program,
        hw: HardwareConfig,
        *,
        max_cycles: int | None = None,
        max_instructions: int | None = None,
        entropy_values: Sequence[float] | None = None,
        trace: bool = False,
        check_uninitialized: bool = False,
        timing_only: bool = False,
        disable_early_exit: bool = False,
        disable_dvfs: bool = False,
        profile: bool = False,
    ) -> None:
        self.program, self.hw = program, hw
        #: per-instruction accounting by op class and layer (emulator/profile.py); None: off (it costs time)
        self.profile = Profile(program) if profile else None
        self.costs = Costs(hw)
        self.mem = Memories(hw)
        if check_uninitialized:
            self.mem.track_initialized()
        self.regs = [0] * NUM_REGS
        self.fregs = [0.0] * NUM_FREGS
        self.acc: list[Access] = []
        self.max_cycles = max_cycles
        #: Executed instructions before a runaway trap (None: no limit).
        self.max_instructions = max_instructions
        self.tracing = trace
        self.check_races = True  # False skips race detection (report: race_count None)
        #: timing_only: nnz of sparse masks read from constant memory, and the (space, lo, hi) ranges that are
        #: constant across runs (data segments no input overlaps; set by the Runner).
        self.nnz_cache: dict[tuple, int] = {}
        self.constant_ranges: list[tuple[int, int, int]] = []
        #: Per space, (lo, hi, what) of every sized symbol and of every data segment: the objects a gather table
        #: can be (the ISA has no table length field).
        self.symbol_extents: list[list[tuple[int, int, str]]] = [[] for _ in SPACES]
        self.segment_extents: list[list[tuple[int, int, str]]] = [[] for _ in SPACES]
        for sym in program.symbols:
            if sym.space in SPACES and sym.size:
                self.symbol_extents[SPACES.index(sym.space)].append(
                    (sym.value, sym.value + sym.size, f"symbol '{sym.name}'"))
        for seg in program.segments:
            if seg.space in SPACES and seg.data:
                self.segment_extents[SPACES.index(seg.space)].append(
                    (seg.address, seg.address + len(seg.data), f"data segment '{seg.name or '?'}'"))
        self.reset(entropy_values, timing_only=timing_only, disable_early_exit=disable_early_exit,
                   disable_dvfs=disable_dvfs)
        self.ops = _decode(program.code, self)

    def reset(
        self,
        entropy_values: Sequence[float] | None = None,
        *,
        timing_only: bool = False,
        disable_early_exit: bool = False,
        disable_dvfs: bool = False,
    ) -> None:
        """Reset registers, counters and timing state for a new run (memories are the caller's business)."""
        self.regs[:] = [0] * NUM_REGS  # in place: the decoded handlers hold these lists
        self.fregs[:] = [0.0] * NUM_FREGS
        self.acc.clear()
        self.next_pc = 0
        self.seg = Segment(self.hw.dvfs.initial, 0, 0.0, False, 0.0)
        self.segments = [self.seg]
        self.entropy_values = None if entropy_values is None else [float(x) for x in entropy_values]
        self.entropy_used = 0
        #: every value an `entropy` instruction wrote, in order (a full run's log replays it timing-only)
        self.entropy_log: list[float] = []
        #: What-if switches: skip data-path numerics (costs unchanged), never take bexit, ignore DVFS requests.
        self.timing_only = timing_only
        self.disable_early_exit = disable_early_exit
        self.disable_dvfs = disable_dvfs
        self.trace: list[tuple[int, int, int, int]] = []  # (unit, start cycle, end cycle, pc)
        self.trace_truncated = False  # more than MAX_TRACE_EVENTS instructions ran with tracing on
        self.switches: list[tuple[int, int]] = []  # (cycle, segment index) of each DVFS switch
        self.races: list[dict[str, Any]] = []
        self.race_count = 0
        self.pc_counts = [0] * len(self.program.code)
        self.cycles = 0
        self.halted = False
        self.trap: EmulatorTrap | None = None
        #: (space, lo, hi) byte ranges of spaces other than SRAM written by st/sw (the Runner resets them).
        self.dirty = DirtyRanges()
        #: timing_only: who last wrote which bytes, per space (see `shadow.py`).
        self.shadow = ShadowLog(len(SPACES))
        if getattr(self, "profile", None) is not None:
            self.profile.reset()

    # ---- helpers used by handlers -------------------------------------------------------------
    def is_constant(self, space: int, address: int, nbytes: int) -> bool:
        """Whether bytes [address, address + nbytes) of `space` hold the same data in every run."""
        return any(s == space and lo <= address and address + nbytes <= hi for s, lo, hi in self.constant_ranges)

    def object_at(self, space: int, address: int, nbytes: int) -> tuple[int, int, str] | None:
        """(lo, hi, what) of the object holding bytes [address, address + nbytes) of `space`: the smallest sized
        symbol around them, else the data segment reaching furthest; None when neither holds them."""
        inside = [e for e in self.symbol_extents[space] if e[0] <= address and address + nbytes <= e[1]]
        if inside:
            return min(inside, key=lambda e: e[1] - e[0])
        inside = [e for e in self.segment_extents[space] if e[0] <= address and address + nbytes <= e[1]]
        return max(inside, key=lambda e: e[1]) if inside else None

    def next_injected_entropy(self) -> float | None:
        """The next value of the entropy trace, or None when entropies are computed."""
        if self.entropy_values is None:
            return None
        if self.entropy_used >= len(self.entropy_values):
            raise Fault(
                f"entropy trace exhausted: the program ran more than {len(self.entropy_values)} entropy instructions"
            )
        value = self.entropy_values[self.entropy_used]
        self.entropy_used += 1
        return value

    def describe(self, pc: int) -> str:
        """`pc N (instruction)` for messages."""
        if 0 <= pc < len(self.program.code):
            return f"pc {pc} ({format_inst(self.program.code[pc], self.program.code_labels())})"
        return f"pc {pc}"

    # ---- DVFS --------------------------------------------------------------------------------
    def _switch(self, point: int, cycle: int) -> None:
        """Switch to operating point `point` at drain cycle `cycle` (a no-op when already there)."""
        if not 0 <= point < len(self.hw.dvfs.points):
            raise Fault(f"DVFS operating point {point} out of range (0..{len(self.hw.dvfs.points) - 1})")
        if point == self.seg.point or self.disable_dvfs:
            return
        old = self.seg
        old.cycles = cycle - old.start_cycle
        self.seg = Segment(point, cycle, old.start_s + old.seconds(self.hw), True, self.hw.dvfs.switch_ns * 1e-9)
        self.segments.append(self.seg)
        self.switches.append((cycle, len(self.segments) - 1))

    # ---- the run loop ------------------------------------------------------------------------
    def execute(self) -> None:
        """Run from pc 0 until halt; a trap is stored in `self.trap` (the state stays inspectable)."""
        ops, n, acc = self.ops, len(self.ops), self.acc
        depth = self.hw.frontend.queue_depth
        nunits = len(UNITS)
        unit_free = [0] * nunits
        queues = [deque(maxlen=depth) for _ in range(nunits)]  # start cycles of each unit's last `depth` ops
        tokens = [[deque() for _ in range(nunits)] for _ in range(nunits)]  # tokens[from][to]: push cycles
        freg_ready = [0] * NUM_FREGS
        live: list[deque[LiveRecord]] = [deque() for _ in range(nunits)]  # for race checks
        max_cycles = self.max_cycles if self.max_cycles is not None else float("inf")
        budget = self.max_instructions if self.max_instructions is not None else float("inf")
        steps = 0
        pc_counts, trace, tracing = self.pc_counts, self.trace, self.tracing
        check_init = self.mem.initialized is not None
        timing = self.timing_only
        races = self.check_races
        prof = self.profile
        fe = 0  # the front end's next dispatch cycle
        pc = 0
        end = 0
        try:
            if n == 0:
                raise Fault("empty program")
            while True:
                op = ops[pc]
                steps += 1
                if steps > budget:
                    raise Fault(
                        f"instruction budget of {self.max_instructions:,} executed instructions exhausted (a runaway "
                        "loop?); raise it with max_instructions= or --max-instructions"
                    )
                pc_counts[pc] += 1
                self.next_pc = pc + 1
                unit = op.unit
                kind = op.kind
                if kind == KIND_UNIT:
                    t = fe
                    q = queues[unit]
                    if len(q) == depth and q[0] > t:
                        t = q[0]  # the unit's queue is full until its oldest entry starts
                    start = t if t > unit_free[unit] else unit_free[unit]
                    if op.waits:
                        start = _take_tokens(tokens, op.waits, unit, start)
                    if prof is not None:
                        prof.before(self.seg)
                    cycles = op.run()
                    if prof is not None:
                        prof.after(pc, start, cycles)
                    end = start + cycles
                    unit_free[unit] = end
                    q.append(start)
                    fe = t + 1
                    self.seg.busy[unit] += cycles
                    if op.freg_write >= 0:
                        freg_ready[op.freg_write] = end
                else:
                    if kind == KIND_INVALID:
                        raise Fault(f"unknown instruction '{op.inst.mnemonic}' (no such opcode)")
                    start = fe
                    if op.waits:
                        start = _take_tokens(tokens, op.waits, unit, start)
                    for f in op.freg_reads:
                        if freg_ready[f] > start:
                            start = freg_ready[f]
                    if kind >= KIND_DRAIN:
                        busy_until = max(unit_free)
                        if busy_until > start:
                            start = busy_until
                    if prof is not None:
                        prof.before(self.seg)
                    result = op.run()
                    if kind == KIND_DVFS:
                        self._switch(result, start)
                    if prof is not None:
                        prof.after(pc, start, op.ctl_cycles, self.seg.point)
                    end = start + op.ctl_cycles
                    fe = end
                    seg = self.seg
                    seg.ctl_ops += 1
                    seg.busy[CTL] += op.ctl_cycles
                for s in op.signals:
                    tq = tokens[unit][s]
                    tq.append(end)
                    if len(tq) > MAX_PENDING_TOKENS:
                        raise Fault(
                            f"token queue {UNITS[unit]}->{UNITS[s]} holds {len(tq):,} unconsumed signals "
                            "(a signal without a matching wait?)"
                        )
                if tracing:
                    if len(trace) < MAX_TRACE_EVENTS:
                        trace.append((unit, start, end, pc))
                    else:
                        self.trace_truncated = True
                if acc:
                    if timing:
                        self.shadow.log(op.shadow, acc)
                    if check_init:
                        self.mem.check_initialized(acc)
                    if races:
                        self._check_races(live, unit, start, end, pc, fe)
                    acc.clear()
                if end > max_cycles:
                    raise Fault(f"cycle budget of {self.max_cycles} cycles exceeded (cycle {end})")
                if kind == KIND_HALT:
                    self.halted = True
                    break
                if not 0 <= self.next_pc < n:
                    raise Fault(
                        f"control reaches {self.next_pc}, outside the code (0..{n - 1}): missing halt or bad branch"
                    )
                pc = self.next_pc
        except Fault as exc:
            acc.clear()
            self.trap = EmulatorTrap(f"{self.describe(pc)}: {exc}")
        except (ArithmeticError, ValueError, TypeError, IndexError, MemoryError) as exc:
            # A defect of the emulator, not of the program: still one clear message, never a traceback.
            acc.clear()
            self.trap = EmulatorTrap(f"{self.describe(pc)}: internal emulator error ({type(exc).__name__}: {exc})")
        self.cycles = max(end, fe, max(unit_free))
        self.seg.cycles = self.cycles - self.seg.start_cycle

    def _check_races(self, live: list[deque[LiveRecord]], unit: int, start: int, end: int, pc: int, fe: int) -> None:
        """Record every conflicting overlap of this instruction's accesses with other units' live accesses.

        `live[u]` holds unit u's recent instructions in program order as (start, end, pc, accesses with their
        byte spans); units run in order, so starts and ends grow along each deque: records ending before `fe`
        (no later instruction can start earlier) are dropped from the left, and the scan stops at the first
        record that starts after this instruction ends. Byte spans that miss each other skip the exact test.
        """
        spans = [(a, a[0], a[1], a[1] + (a[2] - 1) * a[3] + a[4] if a[2] else a[1], a[5]) for a in self.acc]
        for other, records in enumerate(live):
            while records and records[0][1] <= fe:
                records.popleft()
            if other == unit:
                continue
            for o_start, o_end, o_pc, o_spans in records:
                if o_start >= end:
                    break
                if start >= o_end:
                    continue
                for b, b_space, b_lo, b_hi, b_write in o_spans:
                    for a, a_space, a_lo, a_hi, a_write in spans:
                        if (a_space == b_space and a_lo < b_hi and b_lo < a_hi and (a_write or b_write)
                                and accesses_overlap(a, b)):
                            self._record_race(pc, unit, a, o_pc, other, b, max(start, o_start))
                            break  # one race per pair of accesses of the other instruction
        live[unit].append((start, end, pc, spans))

    def _record_race(self, pc: int, unit: int, a: Access, o_pc: int, o_unit: int, b: Access, cycle: int) -> None:
        self.race_count += 1
        if len(self.races) >= MAX_RACES_KEPT:
            return
        code, labels = self.program.code, self.program.code_labels()
        self.races.append(
            {
                "pc": pc,
                "instruction": format_inst(code[pc], labels),
                "unit": UNITS[unit],
                "access": "write" if a[5] else "read",
                "other_pc": o_pc,
                "other_instruction": format_inst(code[o_pc], labels),
                "other_unit": UNITS[o_unit],
                "other_access": "write" if b[5] else "read",
                "space": SPACES[a[0]],
                "cycle": cycle,
            }
        )
