"""Timing-only replay cached per control path: one emulation per distinct path through the program, same reports.

**What determines a timing-only run.** Fix the program, the hardware config, the Runner's limits and the run's
switches (`disable_early_exit`, `disable_dvfs`, `check_races`, `task`, `resident_task`), give no inputs, and run
timing-only with an injected entropy vector e. The data path moves no data, so memory holds only data segments,
task blocks and `sw` words; every register, address, cycle, byte and joule is then a deterministic function of
what the control instructions read. The injected values enter the machine in exactly one place: `entropy` writes
float32(e[k]) into an F register (its k-th execution reads e[k]). F registers are written only by `entropy`,
`fli` and `flw`, and read only by `bexit`, `bexitr` and `lut` (the instruction table, checked at import); nothing
does arithmetic on them or moves them to memory or integer registers. So e influences the run only through the
outcomes of those three readers when they read an injected value:

- `bexit` / `bexitr`: the next pc (float32(e[k]) < threshold, or <= with `cmp=le`, or against another F register);
- `lut`: the bin (clamp(floor or rint(float32(e[k]) x scale))) and through it the table word loaded into `rd`.
  The bin's address matters only to race detection (a read logs nothing in the timing-only write log, costs
  4 bytes whatever the bin), so without race checks the outcome is the loaded word, with them the bin.

**The signature** of a run is the sequence of those outcomes. By induction over executed instructions, the machine
state (apart from the F registers' values) after the j-th outcome is a function of outcomes 1..j: so is the pc,
the instruction and the provenance (which e[k], or which constant) of the F registers read at the (j+1)-th
observation. Two vectors with the same signature therefore produce the same instructions in the same order with
the same registers, addresses and timing, hence identical reports; and the signature can be computed from e alone
by walking a trie of observations recorded from earlier emulations: at each node evaluate the recorded
predicate on e (exactly as the emulator computes it), follow the child; a leaf holds the report (and how many
entropies the run consumed: a shorter vector would trap). When the walk leaves the recorded trie, when a reader
reads a value the walk cannot evaluate (NaN, an unrecorded table word), when inputs are given or the run is not
timing-only, the sentence is emulated (and its path recorded). Every recorded outcome is checked against the
predicate the walk uses; a disagreement turns the cache off for that Runner (correct, slower) and says why in
`stats`. `tests/emulator/test_path_cache.py` compares cached and uncached replays number for number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.emulator.memory import Fault, word_address
from edgebert.emulator.runner import Runner, RunResult
from edgebert.isa.bits import bits_f32
from edgebert.isa.table import BIN_MODES, INSTRUCTIONS, NUM_FREGS, Kind

#: How each instruction touching F registers is handled; an instruction the table adds later that reads or writes
#: an F register must be classified here (import fails otherwise: the cache's argument depends on this list).
FREG_WRITERS = {"entropy": "injected", "fli": "constant", "flw": "constant"}
FREG_READERS = ("bexit", "bexitr", "lut")
_touching = {i.mnemonic for i in INSTRUCTIONS if any(f.kind is Kind.FREG for f in i.fields)}
if _touching != set(FREG_WRITERS) | set(FREG_READERS):  # pragma: no cover - guards the argument above
    raise ImportError(f"path_cache: unclassified F-register instructions {sorted(_touching ^ (set(FREG_WRITERS) | set(FREG_READERS)))}")
NEAREST = BIN_MODES.index("nearest")

#: A value's provenance: ("e", k) = float32 of the k-th injected entropy, ("c", x) = the constant x.
Source = tuple[str, Any]


def _value(src: Source, f32: np.ndarray) -> float | None:
    """The F register value `src` stands for, for the entropy vector whose float32 values are `f32` (None: beyond it)."""
    if src[0] == "c":
        return src[1]
    k = src[1]
    return float(f32[k]) if k < len(f32) else None


def lut_bin(value: float, scale: np.float32, nearest: bool, nbins: int) -> int | None:
    """`lut`'s bin of an F register value, as emulator/control.py computes it (None: NaN, the run traps)."""
    x = float(np.float32(value) * scale)
    if math.isnan(x):
        return None
    b = float(np.rint(x)) if nearest else math.floor(x) if math.isfinite(x) else x
    return int(min(max(b, 0), nbins - 1))


@dataclass
class Observation:
    """One reader's outcome as a function of the entropy vector (recorded at `pc` on the path that leads here)."""

    pc: int
    kind: str  # "branch" (bexit / bexitr) or "lut"
    a: Source  # the F register read (bexit, lut) or compared (bexitr: a < b)
    b: Source | None = None  # bexitr's second register; None for bexit (threshold) and lut
    threshold: float = 0.0  # bexit
    target: int = 0  # branches: the taken pc
    scale: np.float32 = field(default_factory=lambda: np.float32(1.0))  # lut
    nearest: bool = False
    nbins: int = 0
    words: tuple[int | None, ...] | None = None  # lut without race checks: the word per bin (None: that bin faults)
    le: bool = False  # branches: the `cmp` field is `le` (taken when a <= b)

    def outcome(self, f32: np.ndarray) -> Any:
        """The outcome for entropy vector `f32` (float32 values); None when the walk cannot tell (emulate)."""
        a = _value(self.a, f32)
        if a is None:
            return None
        if self.kind == "branch":
            b = self.threshold if self.b is None else _value(self.b, f32)
            if b is None:
                return None
            return self.target if (a <= b if self.le else a < b) else self.pc + 1
        b = lut_bin(a, self.scale, self.nearest, self.nbins)
        if b is None or self.words is None:
            return b
        return self.words[b]


@dataclass
class Node:
    """A trie node: the next observation on this path prefix, or (leaf) the run it ends in."""

    observation: Observation | None = None
    children: dict[Any, Node] = field(default_factory=dict)
    leaf: tuple[RunResult, int] | None = None  # (result without machine, entropies consumed)


class _Recorder:
    """Wraps a Runner's decoded ops to record, during one run, F-register provenance and the readers' outcomes."""

    def __init__(self, runner: Runner) -> None:
        self.m = m = runner.machine
        self.sources: list[Source] = [("c", 0.0)] * NUM_FREGS
        self.observations: list[tuple[Observation, Any]] = []
        self.failure = ""  # why this run's path cannot be recorded (empty: it can)
        self.active = False
        for op in m.ops:
            name = op.inst.mnemonic
            if name in FREG_WRITERS:
                op.run = self._writer(op.run, op.inst["fd"], FREG_WRITERS[name])
            elif name in ("bexit", "bexitr"):
                op.run = self._branch(op.run, op)
            elif name == "lut":
                op.run = self._lut(op.run, op)

    def start(self, check_races: bool) -> None:
        self.sources = [("c", 0.0)] * NUM_FREGS  # reset: every F register holds 0.0
        self.observations, self.failure, self.active, self.races = [], "", True, check_races

    def _writer(self, run: Callable[[], Any], fd: int, kind: str) -> Callable[[], Any]:
        m, sources = self.m, self

        def wrapped() -> Any:
            out = run()
            if sources.active:
                if kind == "injected" and m.entropy_values is not None:
                    sources.sources[fd] = ("e", m.entropy_used - 1)
                elif kind == "injected":
                    sources.failure = "entropy computed, not injected"
                else:
                    sources.sources[fd] = ("c", m.fregs[fd])
            return out

        return wrapped

    def _branch(self, run: Callable[[], Any], op: Any) -> Callable[[], Any]:
        m, inst, rec = self.m, op.inst, self
        two = inst.mnemonic == "bexitr"
        fs, ft = inst["fs"], inst["ft"] if two else None
        threshold = 0.0 if two else bits_f32(inst["threshold"])

        def wrapped() -> Any:
            out = run()
            if rec.active and not m.disable_early_exit:
                a, b = rec.sources[fs], rec.sources[ft] if two else None
                if a[0] == "e" or (b is not None and b[0] == "e"):
                    obs = Observation(op.pc, "branch", a, b, threshold, inst["target"], le=bool(inst["cmp"]))
                    rec.observations.append((obs, m.next_pc))
            return out

        return wrapped

    def _lut(self, run: Callable[[], Any], op: Any) -> Callable[[], Any]:
        m, inst, rec = self.m, op.inst, self
        fs, rd, nbins = inst["fs"], inst["rd"], inst["nbins"]
        scale, nearest = np.float32(bits_f32(inst["scale"])), inst["mode"] == NEAREST
        space, base, off = inst["table_space"], inst["table_base"], inst["table"]

        def wrapped() -> Any:
            if not rec.active or rec.sources[fs][0] != "e":
                return run()
            table = m.regs[base] + off  # read before the run: rd may be the base register
            out = run()  # a fault propagates: the run traps and is not recorded
            obs = Observation(op.pc, "lut", rec.sources[fs], scale=scale, nearest=nearest, nbins=nbins)
            if rec.races:
                outcome = (m.acc[-1][1] - table) // 4  # the bin, from the address the emulator read
            else:
                obs.words = tuple(rec._word(space, table + 4 * b) for b in range(nbins))
                outcome = m.regs[rd] if rd else obs.words[(m.acc[-1][1] - table) // 4]
            rec.observations.append((obs, outcome))
            return out

        return wrapped

    def _word(self, space: int, address: int) -> int | None:
        try:
            return int(self.m.mem.i32[space][word_address(self.m.mem.sizes[space], space, address, "table")])
        except Fault:
            return None


class ReplayRunner:
    """A `Runner` whose timing-only runs with injected entropies and no inputs are served per control path.

    `run` takes the Runner's arguments and returns a `RunResult` with the identical report; a result served from
    the cache has `machine=None` (and the outputs of the emulated run of its path: zeros, timing-only). Reports
    are shared between the sentences of one path: treat them as read-only. Anything else is emulated as is.
    `stats`: `emulated` and `cached` runs, `paths` recorded, `disabled` (why the cache turned itself off, or "").
    """

    def __init__(self, program: Any, hw: Any = None, **runner_options: Any) -> None:
        self.runner = Runner(program, hw, **runner_options)
        self.program, self.hw = self.runner.program, self.runner.hw
        self._recorder = _Recorder(self.runner)
        self._roots: dict[tuple, Node] = {}
        self.stats: dict[str, Any] = {"emulated": 0, "cached": 0, "paths": 0, "disabled": ""}

    def run(self, inputs: Mapping[str, np.ndarray] | None = None, **options: Any) -> RunResult:
        """One run (`Runner.run`'s arguments): from the cache when its path was seen, else emulated (and its path
        recorded)."""
        entropy_values: Sequence[float] | None = options.get("entropy_values")
        cacheable = (options.get("timing_only", False) and not inputs and entropy_values is not None
                     and not self.stats["disabled"] and not self.runner.machine.tracing)
        if not cacheable:
            self.stats["emulated"] += 1
            return self.runner.run(inputs, **options)
        check_races = options.get("check_races", True)
        key = tuple(options.get(k, False) for k in ("disable_early_exit", "disable_dvfs")) + (
            check_races, options.get("task"), options.get("resident_task"))
        f32 = np.asarray(entropy_values, dtype=np.float64).astype(np.float32)
        root = self._roots.setdefault(key, Node())
        hit = _walk(root, f32)
        if hit is not None:
            self.stats["cached"] += 1
            return hit
        self.stats["emulated"] += 1
        rec = self._recorder
        rec.start(check_races)
        try:
            result = self.runner.run(inputs, **options)
        finally:
            rec.active = False
        if result.trap is None and not rec.failure:
            self._insert(root, f32, result)
        return result

    def _insert(self, root: Node, f32: np.ndarray, result: RunResult) -> None:
        """Record the path the recorder saw, checking each outcome against the predicate the walk will use."""
        node = root
        for obs, outcome in self._recorder.observations:
            if obs.outcome(f32) != outcome:
                return self._disable(f"pc {obs.pc}: the emulator's outcome {outcome!r} differs from the predicted "
                                     f"{obs.outcome(f32)!r}")
            if node.observation is None and node.leaf is None:
                node.observation = obs
            elif node.observation != obs:  # the same prefix must lead to the same observation (module docstring)
                return self._disable(f"pc {obs.pc}: a path prefix led to two different observations")
            node = node.children.setdefault(outcome, Node())
        if node.observation is not None:
            return self._disable("a path prefix led both to the end of the run and to an observation")
        if node.leaf is None:
            state = MachineState(list(self.runner.machine.regs), [])
            stored = RunResult(result.outputs, result.report, result.exit_layer, machine=state)  # type: ignore[arg-type]
            node.leaf = (stored, self.runner.machine.entropy_used)
            self.stats["paths"] += 1
        return None

    def _disable(self, why: str) -> None:
        """Stop serving from the cache (every later run is emulated): the recorded paths break the argument."""
        self.stats["disabled"] = why
        self._roots.clear()


@dataclass
class MachineState:
    """What a cached run keeps of the machine's final state: the scalar registers and the entropy log (what
    `edgebert.emulator.bench.modes` reads of a run besides its report)."""

    regs: list[int]
    entropy_log: list[float]


def _walk(node: Node, f32: np.ndarray) -> RunResult | None:
    """The cached result of the path entropy vector `f32` takes, or None (not recorded, or not predictable)."""
    while node.observation is not None:
        outcome = node.observation.outcome(f32)
        node = node.children.get(outcome) if outcome is not None else None
        if node is None:
            return None
    if node.leaf is None:
        return None
    result, needed = node.leaf
    if needed > len(f32):
        return None  # the run would trap: the trace has fewer entropies than the path consumes
    # the registers at halt are the path's (its observations fix every value the control unit computed); the entropy
    # log is this sentence's own values, rounded to float32 as the `entropy` instruction writes them
    state = MachineState(list(result.machine.regs), [float(v) for v in f32[:needed]])  # type: ignore[union-attr]
    return RunResult(result.outputs, dict(result.report), result.exit_layer, machine=state)  # type: ignore[arg-type]
