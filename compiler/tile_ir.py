"""The tile program: ISA instructions over symbolic buffers, before memory planning and scheduling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.isa.table import BY_MNEMONIC

#: Element size in bytes of the dtypes a buffer holds.
ITEMSIZE = {"f32": 4, "i32": 4, "af8": 1, "u8": 1}


@dataclass(eq=False)
class Buffer:
    """A block of memory the planner places: activations in SRAM, constants in eNVM/DRAM, I/O in DRAM."""

    name: str
    nbytes: int
    kind: str  # "act" (SRAM, planned by liveness), "stage" (SRAM, whole program), "const", "input", "output"
    space: str = "sram"
    data: bytes | None = None  # initial contents of a constant
    address: int | None = None  # byte address, set by the memory planner
    what: str = ""  # for error messages: the tensor's dtype and shape, e.g. "float32[1, 16, 64]"

    def __repr__(self) -> str:
        return f"Buffer({self.name}, {self.nbytes} B, {self.kind}@{self.space})"


@dataclass(frozen=True)
class Ref:
    """A byte range of a buffer touched by one instruction operand (for liveness and dependencies)."""

    buffer: Buffer
    offset: int  # bytes from the buffer start to the operand's first element
    extent: int  # bytes from the first to one past the last element touched
    write: bool


@dataclass(eq=False)
class TileInst:
    """One instruction: concrete field values plus symbolic addresses (field name -> (buffer, byte offset))."""

    mnemonic: str
    fields: dict[str, int] = field(default_factory=dict)
    addrs: dict[str, tuple[Buffer, int]] = field(default_factory=dict)
    refs: list[Ref] = field(default_factory=list)
    target: str | None = None  # label of a branch target

    @property
    def unit(self) -> str:
        return BY_MNEMONIC[self.mnemonic].unit


@dataclass
class LoopRange:
    """Instructions [start, end) form a counted loop body executed `trips` times."""

    label: str
    start: int
    end: int
    trips: int


@dataclass
class TileProgram:
    """The lowered program: instructions, labels, loops, buffers, and the I/O description."""

    insts: list[TileInst] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    loops: list[LoopRange] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=list)
    inputs: list[tuple[str, Buffer, tuple[int, ...], str]] = field(default_factory=list)  # name, buf, shape, dtype
    outputs: list[tuple[str, Buffer, tuple[int, ...], str]] = field(default_factory=list)
    #: indices of instructions the scheduler must not move anything across (label targets, control ops)
    fences: set[int] = field(default_factory=set)
    #: compressed weights (matmul.PackedWeight: AF8 / bitmask-sparse tiles), in lowering order
    packed_weights: list = field(default_factory=list)
    #: early exit: "looped" (layers and heads in one loop) or "unrolled[: why]"; None without early exit
    exit_layout: str | None = None
    #: the op trace the lowering recorded (hierarchy.optrace.OpTrace): what the memory-hierarchy plan reads
    trace: Any = None

    def buffer(self, name: str, nbytes: int, kind: str, space: str = "sram", data: bytes | None = None) -> Buffer:
        buf = Buffer(name, nbytes, kind, space, data)
        self.buffers.append(buf)
        return buf

    def constant(self, name: str, array: np.ndarray) -> Buffer:
        """A constant buffer holding `array` (fp32 or int32); placed in eNVM/DRAM by the planner."""
        return self.buffer(name, array.nbytes, "const", "envm", array.tobytes())

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insts)
        self.fences.add(len(self.insts))

    def emit(self, inst: TileInst) -> TileInst:
        if inst.unit == "ctl":
            self.fences.add(len(self.insts))
            self.fences.add(len(self.insts) + 1)
        self.insts.append(inst)
        return inst


def format_tile_program(prog: TileProgram) -> str:
    """A readable listing of the tile program (symbolic buffers, addresses once planned)."""
    labels = {v: k for k, v in prog.labels.items()}
    lines = []
    for i, inst in enumerate(prog.insts):
        if i in labels:
            lines.append(f"{labels[i]}:")
        ops = ", ".join(
            f"{k}={b.name}+{off}" + (f"@{b.address + off:#x}" if b.address is not None else "")
            for k, (b, off) in inst.addrs.items()
        )
        fields = " ".join(f"{k}={v}" for k, v in inst.fields.items())
        lines.append(f"  {i:5d} {inst.mnemonic:9s} {ops} {fields}" + (f" -> {inst.target}" if inst.target else ""))
    for b in prog.buffers:
        lines.append(
            f"# {b.name}: {b.nbytes} B {b.kind} {b.space}" + (f" @{b.address:#x}" if b.address is not None else "")
        )
    return "\n".join(lines) + "\n"
