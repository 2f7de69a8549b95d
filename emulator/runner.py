"""`run(program, inputs)`: place inputs and data segments, execute, read outputs, build the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.emulator.machine import Machine
from edgebert.emulator.memory import SPACE_INDEX, Fault, check_range
from edgebert.emulator.report import build_report
from edgebert.isa.errors import EdgebertError, EmulatorTrap
from edgebert.isa.hardware import HardwareConfig, default_config
from edgebert.isa.program import Program

#: Metadata dtype name -> (numpy dtype stored in memory, numpy dtype returned to the user).
DTYPES = {
    "float32": (np.float32, np.float32),
    "int32": (np.int32, np.int32),
    "int64": (np.int32, np.int64),  # ONNX token ids: stored as int32
    "uint8": (np.uint8, np.uint8),
}
DEFAULT_MAX_CYCLES = 10**9


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


def _place_inputs(m: Machine, program: Program, inputs: Mapping[str, np.ndarray]) -> None:
    declared = program.metadata.get("inputs", [])
    names = {e.get("name") for e in declared}
    extra = sorted(set(inputs) - names)
    if extra:
        raise EmulatorInputError(f"input '{extra[0]}' is not an input of the program (inputs: {sorted(names)})")
    for entry in declared:
        name = entry.get("name")
        what = f"input '{name}'"
        if name not in inputs:
            raise EmulatorInputError(f"{what} is missing")
        dtype = entry.get("dtype", "float32")
        if dtype not in DTYPES:
            raise EmulatorInputError(f"{what}: unsupported dtype {dtype!r}")
        value = np.asarray(inputs[name])
        shape = tuple(entry.get("shape", value.shape))
        if value.shape != shape:
            raise EmulatorInputError(f"{what}: shape {value.shape} does not match the program's {shape}")
        stored_dtype = DTYPES[dtype][0]
        if dtype == "int64" and value.size and (value.min() < -(2**31) or value.max() >= 2**31):
            raise EmulatorInputError(f"{what}: int64 values do not fit the int32 the accelerator stores")
        data = np.ascontiguousarray(value.astype(stored_dtype, copy=False))
        try:
            m.mem.write_bytes(_space(entry, what), int(entry["address"]), data.reshape(-1))
        except Fault as exc:
            raise EmulatorInputError(f"{what}: {exc}") from None


def _read_outputs(m: Machine, program: Program) -> dict[str, np.ndarray]:
    outputs = {}
    for entry in program.metadata.get("outputs", []):
        name = entry.get("name")
        what = f"output '{name}'"
        dtype = entry.get("dtype", "float32")
        if dtype not in DTYPES:
            raise EmulatorInputError(f"{what}: unsupported dtype {dtype!r}")
        stored, returned = DTYPES[dtype]
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


def run(
    program: Program,
    inputs: Mapping[str, np.ndarray] | None = None,
    hw: HardwareConfig | None = None,
    *,
    max_cycles: int | None = DEFAULT_MAX_CYCLES,
    entropy_values: Sequence[float] | None = None,
    trace: bool = False,
    check_uninitialized: bool = False,
    raise_on_trap: bool = True,
) -> RunResult:
    """Execute `program` on the emulated accelerator described by `hw` (default config when None).

    `inputs` are placed per the program metadata; data segments are loaded first. `entropy_values`
    replaces the result of the i-th executed `entropy` instruction by its i-th value. `check_uninitialized`
    traps on a read of bytes never written since reset (by segments, inputs or the program). On a trap, raises
    EmulatorTrap (with `.result` holding the partial RunResult) unless `raise_on_trap` is False, in which
    case the partial result is returned with `.trap` set.
    """
    hw = hw or default_config()
    m = Machine(
        program, hw, max_cycles=max_cycles, entropy_values=entropy_values, trace=trace,
        check_uninitialized=check_uninitialized,
    )
    for seg in program.segments:
        what = f"data segment '{seg.name or '?'}'"
        try:
            m.mem.write_bytes(_space({"space": seg.space}, what), seg.address, seg.data)
        except Fault as exc:
            raise EmulatorInputError(f"{what}: {exc}") from None
    _place_inputs(m, program, inputs or {})
    with np.errstate(all="ignore"):
        m.execute()
    outputs = _read_outputs(m, program) if m.trap is None else {}
    exit_layer = _read_exit_layer(m, program) if m.trap is None else None
    report = build_report(m, exit_layer)
    result = RunResult(outputs, report, exit_layer, m.trap, m)
    if m.trap is not None and raise_on_trap:
        m.trap.result = result  # type: ignore[attr-defined]
        raise m.trap
    return result
