"""`run(program, inputs)`: place inputs and data segments, execute, read outputs, build the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.emulator.machine import Machine, default_instruction_budget
from edgebert.emulator.memory import SPACE_INDEX, SRAM, Fault, check_range
from edgebert.emulator.report import build_report
from edgebert.isa.errors import EdgebertError, EmulatorTrap, MetadataError
from edgebert.isa.hardware import HardwareConfig, default_config
from edgebert.isa.paused_gc import paused_gc
from edgebert.isa.program import Program
from edgebert.isa.program_config import program_config
from edgebert.isa.program_metadata import check_metadata

#: Metadata dtype name -> (numpy dtype stored in memory, numpy dtype returned to the user).
DTYPES = {
    "float32": (np.float32, np.float32),
    "int32": (np.int32, np.int32),
    "int64": (np.int32, np.int64),  # ONNX token ids: stored as int32
    "uint8": (np.uint8, np.uint8),
}
DEFAULT_MAX_CYCLES = 10**9
#: `max_instructions` default: a budget derived from the program (`default_instruction_budget`).
AUTO = "auto"


class EmulatorInputError(EdgebertError):
    """Inputs, outputs or data segments do not match the program's metadata or the memories."""


@dataclass
class RunResult:
    """What a run produced: outputs by name, the report dict, the exit layer, and the final machine state."""

    outputs: dict[str, np.ndarray]
    report: dict[str, Any]
    exit_layer: int | None
    trap: EmulatorTrap | None = None
    machine: Machine | None = field(default=None, repr=False)

    def memory(self, space: str) -> np.ndarray:
        """The raw bytes of a memory space after the run (a live view)."""
        assert self.machine is not None
        return self.machine.mem.u8[SPACE_INDEX[space]]


def _space(entry: Mapping[str, Any], what: str) -> int:
    space = entry.get("space")
    if space not in SPACE_INDEX:
        raise EmulatorInputError(f"{what}: unknown memory space {space!r}")
    return SPACE_INDEX[space]


def check_input_value(what: str, value: Any, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """`value` as the array the program's input expects, or EmulatorInputError naming what does not match.

    Integer inputs (token ids) take integer arrays only (no bool, no float truncation) whose values fit the
    stored int32/uint8; float32 inputs take real float arrays (float64 rounds to float32). Shapes must be equal.
    """
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise EmulatorInputError(f"{what}: not an array ({exc})") from None
    kind = value.dtype.kind
    if dtype == "float32":
        if kind != "f":
            raise EmulatorInputError(f"{what}: {value.dtype} array given, the program takes float32")
    elif kind not in "iu":
        raise EmulatorInputError(f"{what}: {value.dtype} array given, the program takes integer {dtype} "
                                 "(ids are never converted from bool, float or complex)")
    if value.shape != shape:
        raise EmulatorInputError(f"{what}: shape {value.shape} does not match the program's {shape}")
    stored = np.dtype(DTYPES[dtype][0])
    if kind in "iu" and value.size:
        info = np.iinfo(stored)
        lo, hi = int(value.min()), int(value.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise EmulatorInputError(f"{what}: value {bad} does not fit the {stored} the accelerator stores")
    return np.ascontiguousarray(value.astype(stored, copy=False))


def _place_inputs(
    m: Machine, program: Program, inputs: Mapping[str, np.ndarray], allow_missing: bool = False
) -> None:
    declared = program.metadata.get("inputs", [])
    names = {e["name"] for e in declared}
    extra = sorted(str(k) for k in set(inputs) - names)
    if extra:
        raise EmulatorInputError(f"input '{extra[0]}' is not an input of the program (inputs: {sorted(names)})")
    for entry in declared:
        name = entry["name"]
        what = f"input '{name}'"
        if name not in inputs:
            if allow_missing:
                continue  # timing-only: the memory keeps zeros
            raise EmulatorInputError(f"{what} is missing")
        data = check_input_value(what, inputs[name], entry.get("dtype", "float32"), tuple(entry["shape"]))
        try:
            m.mem.write_bytes(_space(entry, what), int(entry["address"]), data.reshape(-1))
        except Fault as exc:
            raise EmulatorInputError(f"{what}: {exc}") from None


def _read_outputs(m: Machine, program: Program) -> dict[str, np.ndarray]:
    outputs = {}
    for entry in program.metadata.get("outputs", []):
        name = entry["name"]
        what = f"output '{name}'"
        stored, returned = DTYPES[entry.get("dtype", "float32")]
        shape = tuple(entry["shape"])
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(stored).itemsize
        space, address = _space(entry, what), int(entry["address"])
        if address % np.dtype(stored).itemsize:
            raise EmulatorInputError(f"{what}: address {address:#x} is not aligned to its element size")
        try:
            check_range(m.mem.sizes[space], space, address, nbytes, what)
        except Fault as exc:
            raise EmulatorInputError(str(exc)) from None
        raw = m.mem.u8[space][address : address + nbytes]
        outputs[name] = raw.view(stored).reshape(shape).astype(returned)  # astype copies
    return outputs


def _read_exit_layer(m: Machine, program: Program) -> int | None:
    entry = program.metadata.get("exit_layer")
    if not entry:
        return None
    try:
        raw = m.mem.read_bytes(_space(entry, "exit_layer"), int(entry["address"]), 4)
    except Fault as exc:
        raise EmulatorInputError(f"exit_layer: {exc}") from None
    return int(raw.view(np.int32)[0])


def _check_program(program: Program) -> None:
    """The metadata contract (a Program built in Python skips the `.ebin` reader's check)."""
    try:
        check_metadata(program.metadata)
    except MetadataError as exc:
        raise EmulatorInputError(str(exc)) from None


class Runner:
    """Decode a program once, then run it on many inputs (memories and state are reset between runs).

    `Runner(program, hw).run(inputs, ...)` gives the same result as `run(program, inputs, hw, ...)`; only the
    bytes a run wrote are reset (all of SRAM after a full run; `st`/`sw` targets and inputs elsewhere), so
    per-sentence runs cost what the program does, not the size of the memories.
    """

    def __init__(
        self,
        program: Program,
        hw: HardwareConfig | None = None,
        *,
        max_cycles: int | None = DEFAULT_MAX_CYCLES,
        max_instructions: int | str | None = AUTO,
        trace: bool = False,
        check_uninitialized: bool = False,
        profile: bool = False,
    ) -> None:
        _check_program(program)
        self.program = program
        # Without `hw`: the config the program was built for (embedded or bundled), else the default.
        self.hw = hw or program_config(program.metadata, program.hw_fingerprint, "program") or default_config()
        self.check_uninitialized = check_uninitialized
        budget = default_instruction_budget(program) if max_instructions == AUTO else max_instructions
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
            raise EmulatorInputError(f"max_instructions: expected a positive integer, 'auto' or None, got {budget!r}")
        self.machine = Machine(
            program, self.hw, max_cycles=max_cycles, max_instructions=budget, trace=trace,
            check_uninitialized=check_uninitialized, profile=profile,
        )
        self._check_io_ranges()
        self._has_entropy = any(inst.mnemonic == "entropy" for inst in program.code)
        self._load_segments()
        self._inputs = [(_space(e, f"input '{e.get('name')}'"), int(e.get("address", 0)), e)
                        for e in program.metadata.get("inputs", [])]
        self.machine.constant_ranges = self._constant_ranges()
        self._dirty: list[tuple[int, int, int]] = []
        self._sram_dirty = False

    def _check_io_ranges(self) -> None:
        """Every declared input, output and the exit-layer word lies inside its memory (before anything runs)."""
        mem, meta = self.machine.mem, self.program.metadata
        for key in ("inputs", "outputs"):
            for entry in meta.get(key, []):
                what = f"{key[:-1]} '{entry['name']}'"
                itemsize = np.dtype(DTYPES[entry.get("dtype", "float32")][0]).itemsize
                space, address = SPACE_INDEX[entry["space"]], entry["address"]
                if address % itemsize:
                    raise EmulatorInputError(f"{what}: address {address:#x} is not aligned to its element size")
                try:
                    check_range(mem.sizes[space], space, address, _input_bytes(entry), what)
                except Fault as exc:
                    raise EmulatorInputError(str(exc)) from None
        regions = [("exit_layer word", meta.get("exit_layer"), 4)]
        mt = meta.get("multitask")
        if mt:
            regions.append(("multitask task_select word", mt["task_select"], 4))
            regions.append(("multitask loaded_word", mt.get("loaded_word"), 4))
            region = mt.get("task_region")
            regions.append(("multitask task_region", region, region["bytes"] if region else 0))
            regions += [(f"task '{t['name']}' block", t["block"], t["block"]["bytes"]) for t in mt["tasks"]]
        for what, entry, nbytes in regions:
            if entry:
                space = SPACE_INDEX[entry["space"]]
                try:
                    check_range(mem.sizes[space], space, entry["address"], nbytes, what)
                except Fault as exc:
                    raise EmulatorInputError(str(exc)) from None

    def _load_segments(self) -> None:
        m = self.machine
        for seg in self.program.segments:
            what = f"data segment '{seg.name or '?'}'"
            try:
                m.mem.write_bytes(_space({"space": seg.space}, what), seg.address, seg.data)
            except Fault as exc:
                raise EmulatorInputError(f"{what}: {exc}") from None

    def _constant_ranges(self) -> list[tuple[int, int, int]]:
        """Data segments no input overlaps (their bytes are the same in every run until the program writes)."""
        out = []
        for seg in self.program.segments:
            space, lo, hi = SPACE_INDEX[seg.space], seg.address, seg.address + len(seg.data)
            if not any(s == space and a < hi and lo < a + _input_bytes(e) for s, a, e in self._inputs):
                out.append((space, lo, hi))
        return out

    def _reset_memory(self) -> None:
        """Zero what the previous run wrote and restore the data segments under it."""
        m = self.machine
        if self.check_uninitialized:
            m.mem.track_initialized()
            for seg in self.program.segments:
                m.mem.initialized[SPACE_INDEX[seg.space]][seg.address : seg.address + len(seg.data)] = 1  # type: ignore[index]
        ranges = list(self._dirty)
        if self._sram_dirty:
            ranges.append((SRAM, 0, m.mem.sizes[SRAM]))
        if not ranges:
            return
        for space, lo, hi in ranges:
            lo, hi = max(lo, 0), min(hi, m.mem.sizes[space])
            m.mem.u8[space][lo:hi] = 0
        for seg in self.program.segments:
            space, lo, hi = SPACE_INDEX[seg.space], seg.address, seg.address + len(seg.data)
            for s, a, b in ranges:
                if s == space and a < hi and lo < b:
                    x, y = max(a, lo), min(b, hi)
                    m.mem.u8[space][x:y] = np.frombuffer(seg.data, dtype=np.uint8)[x - lo : y - lo]
        self._dirty, self._sram_dirty = [], False

    def run(
        self,
        inputs: Mapping[str, np.ndarray] | None = None,
        *,
        entropy_values: Sequence[float] | None = None,
        timing_only: bool = False,
        disable_early_exit: bool = False,
        disable_dvfs: bool = False,
        raise_on_trap: bool = True,
        check_races: bool = True,
        task: str | None = None,
        resident_task: str | None = None,
    ) -> RunResult:
        """One run; `RunResult.machine` is the Runner's machine (valid until the next run). See `run`.

        `check_races=False` skips race detection (faster; the report's `race_count` is None). With
        `Runner(..., profile=True)` the report has a `breakdown` section (see `run`).
        `task` selects the task of a multi-task program; `resident_task`: that task's weights are already in
        the SRAM task region (an earlier sentence's), so no block is loaded when it equals `task`.
        """
        from edgebert.emulator import multitask

        preload = multitask.task_preload(self.program, task, resident_task)
        m = self.machine
        if timing_only:
            if self.check_uninitialized:
                raise EmulatorInputError("timing_only and check_uninitialized exclude each other (no data moves)")
            if self._has_entropy and entropy_values is None:
                raise EmulatorInputError("timing_only needs entropy_values: the program's entropies are not computed")
        if entropy_values is not None:
            try:
                entropy_values = [float(x) for x in entropy_values]
            except (TypeError, ValueError) as exc:
                raise EmulatorInputError(f"entropy_values: not a sequence of numbers ({exc})") from None
        self._reset_memory()
        m.reset(entropy_values, timing_only=timing_only, disable_early_exit=disable_early_exit,
                disable_dvfs=disable_dvfs)
        self._sram_dirty = not timing_only
        m.check_races = check_races
        try:
            _place_inputs(m, self.program, inputs or {}, allow_missing=timing_only)
        finally:
            self._dirty.extend((s, a, a + _input_bytes(e)) for s, a, e in self._inputs)
        for space, address, data in preload:
            m.mem.write_bytes(SPACE_INDEX[space], address, np.frombuffer(data, np.uint8))
            self._dirty.append((SPACE_INDEX[space], address, address + len(data)))
        try:
            with paused_gc(), np.errstate(all="ignore"):  # the run makes no cycles: collections only rescan the ops
                m.execute()
        finally:
            self._dirty.extend(m.dirty)
        outputs = _read_outputs(m, self.program) if m.trap is None else {}
        exit_layer = _read_exit_layer(m, self.program) if m.trap is None else None
        report = build_report(m, exit_layer)
        if m.profile is not None:
            from edgebert.emulator.profile import breakdown

            report["breakdown"] = breakdown(m, m.profile, report)
        report["what_if"] = {
            "timing_only": timing_only, "disable_early_exit": disable_early_exit, "disable_dvfs": disable_dvfs,
        }
        if task is not None:
            outputs = multitask.slice_outputs(self.program, task, outputs)
            report["multitask"] = multitask.multitask_section(self.program, task, resident_task, report, self.hw)
        result = RunResult(outputs, report, exit_layer, m.trap, m)
        if m.trap is not None and raise_on_trap:
            m.trap.result = result  # type: ignore[attr-defined]
            raise m.trap
        return result


def _input_bytes(entry: Mapping[str, Any]) -> int:
    """Bytes an input or output entry occupies in memory (0 when its shape is not declared)."""
    dtype = DTYPES.get(entry.get("dtype", "float32"), (np.float32,))[0]
    shape = entry.get("shape")
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize if shape is not None else 0


def run(
    program: Program,
    inputs: Mapping[str, np.ndarray] | None = None,
    hw: HardwareConfig | None = None,
    *,
    max_cycles: int | None = DEFAULT_MAX_CYCLES,
    max_instructions: int | str | None = AUTO,
    entropy_values: Sequence[float] | None = None,
    trace: bool = False,
    check_uninitialized: bool = False,
    raise_on_trap: bool = True,
    timing_only: bool = False,
    disable_early_exit: bool = False,
    disable_dvfs: bool = False,
    task: str | None = None,
    resident_task: str | None = None,
    profile: bool = False,
) -> RunResult:
    """Execute `program` on the emulated accelerator described by `hw` (when None: the config the program was
    built for, see `isa.program_config.program_config`, else the default config).

    `inputs` are placed per the program metadata (names, shapes and dtypes checked, see `check_input_value`);
    data segments are loaded first. `max_cycles` traps a run whose emulated time passes that many cycles;
    `max_instructions` ("auto": `default_instruction_budget(program)`, None: no limit) traps one that executes
    more instructions, so a runaway loop ends in seconds. `entropy_values`
    replaces the result of the i-th executed `entropy` instruction by its i-th value. `check_uninitialized`
    traps on a read of bytes never written since reset (by segments, inputs or the program). On a trap, raises
    EmulatorTrap (with `.result` holding the partial RunResult) unless `raise_on_trap` is False, in which
    case the partial result is returned with `.trap` set.

    What-if switches (the same binary, other behaviour; see docs/emulator.md):
    `timing_only` skips the numerics of ld/st/gather/matmul/SFU instructions while charging the same cycles,
    traffic and energy (missing inputs read as zeros; needs `entropy_values` when the program has `entropy` instructions; valid only when
    control flow depends on nothing computed but entropies); `disable_early_exit` never takes bexit/bexitr/bexitp;
    `disable_dvfs` ignores dvfs/dvfsr requests (the machine stays at `hw.dvfs.initial`).
    `task` / `resident_task`: a multi-task program's task (docs/multitask.md; logits keep the task's labels).
    `profile`: the report gains `breakdown` (cycles and energy per op class and per layer, a roofline view per op
    class; emulator/profile.py), at some cost in speed.
    """
    runner = Runner(program, hw, max_cycles=max_cycles, max_instructions=max_instructions, trace=trace,
                    check_uninitialized=check_uninitialized, profile=profile)
    return runner.run(
        inputs, entropy_values=entropy_values, timing_only=timing_only, disable_early_exit=disable_early_exit,
        disable_dvfs=disable_dvfs, raise_on_trap=raise_on_trap, task=task, resident_task=resident_task,
    )
