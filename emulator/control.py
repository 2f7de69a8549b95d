"""Front-end (ctl) semantics: scalar ALU, loads/stores of words, branches, early exits (entropy and forced), LUT,
DVFS, halt."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgebert.emulator.memory import Fault, word_address
from edgebert.isa.bits import bits_f32
from edgebert.isa.encoding import Inst
from edgebert.isa.table import BIN_MODES, EXIT_COMPARES

if TYPE_CHECKING:
    from edgebert.emulator.machine import Machine

#: Handlers of ctl instructions return None, or for dvfs/dvfsr the requested operating point.
Run = Callable[[], int | None]
NEAREST = BIN_MODES.index("nearest")
LE = EXIT_COMPARES.index("le")


def wrap32(x: int) -> int:
    """Two's-complement 32-bit wrap-around."""
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def compile_li(inst: Inst, m: Machine) -> Run:
    rd, imm, regs = inst["rd"], wrap32(inst["imm"]), m.regs

    def run() -> None:
        if rd:
            regs[rd] = imm

    return run


def compile_addi(inst: Inst, m: Machine) -> Run:
    rd, rs1, imm, regs = inst["rd"], inst["rs1"], inst["imm"], m.regs

    def run() -> None:
        if rd:
            regs[rd] = wrap32(regs[rs1] + imm)

    return run


def _alu(op: Callable[[int, int], int]) -> Callable[[Inst, Machine], Run]:
    def factory(inst: Inst, m: Machine) -> Run:
        rd, rs1, rs2, regs = inst["rd"], inst["rs1"], inst["rs2"], m.regs

        def run() -> None:
            if rd:
                regs[rd] = wrap32(op(regs[rs1], regs[rs2]))

        return run

    return factory


def _word(inst: Inst, m: Machine, name: str, write: bool) -> Callable[[], tuple[int, int]]:
    """Resolve the aligned word address `name` (space, word index), charge 4 bytes and record the access."""
    space, base, off = inst[f"{name}_space"], inst[f"{name}_base"], inst[name]
    regs, size, acc = m.regs, m.mem.sizes[space], m.acc

    def resolve() -> tuple[int, int]:
        addr = regs[base] + off
        index = word_address(size, space, addr, name)
        acc.append((space, addr, 1, 4, 4, write))
        if write:
            m.seg.written[space] += 4
        else:
            m.seg.read[space] += 4
        return space, index

    return resolve


def compile_lw(inst: Inst, m: Machine) -> Run:
    rd, resolve, i32, regs = inst["rd"], _word(inst, m, "src", False), m.mem.i32, m.regs

    def run() -> None:
        space, index = resolve()
        if rd:
            regs[rd] = int(i32[space][index])

    return run


def compile_sw(inst: Inst, m: Machine) -> Run:
    rs, resolve, i32, regs = inst["rs"], _word(inst, m, "dst", True), m.mem.i32, m.regs

    def run() -> None:
        space, index = resolve()
        i32[space][index] = regs[rs]
        m.dirty.append((space, 4 * index, 4 * index + 4))

    return run


def compile_flw(inst: Inst, m: Machine) -> Run:
    fd, resolve, f32, fregs = inst["fd"], _word(inst, m, "src", False), m.mem.f32, m.fregs

    def run() -> None:
        space, index = resolve()
        fregs[fd] = float(f32[space][index])

    return run


def compile_fli(inst: Inst, m: Machine) -> Run:
    fd, value, fregs = inst["fd"], bits_f32(inst["imm"]), m.fregs

    def run() -> None:
        fregs[fd] = value

    return run


def _branch(cond: Callable[[int, int], bool]) -> Callable[[Inst, Machine], Run]:
    def factory(inst: Inst, m: Machine) -> Run:
        rs1, rs2, target, regs = inst["rs1"], inst["rs2"], inst["target"], m.regs

        def run() -> None:
            if cond(regs[rs1], regs[rs2]):
                m.next_pc = target

        return run

    return factory


def compile_jmp(inst: Inst, m: Machine) -> Run:
    target = inst["target"]

    def run() -> None:
        m.next_pc = target

    return run


def _exit_compare(inst: Inst) -> Callable[[float, float], bool]:
    """The early-exit comparison of `inst` (field cmp): fs < threshold (lt) or fs <= threshold (le)."""
    return operator.le if inst["cmp"] == LE else operator.lt


def compile_bexit(inst: Inst, m: Machine) -> Run:
    fs, threshold, target, fregs = inst["fs"], bits_f32(inst["threshold"]), inst["target"], m.fregs
    passes = _exit_compare(inst)

    def run() -> None:
        if passes(fregs[fs], threshold) and not m.disable_early_exit:
            m.next_pc = target

    return run


def compile_bexitr(inst: Inst, m: Machine) -> Run:
    fs, ft, target, fregs = inst["fs"], inst["ft"], inst["target"], m.fregs
    passes = _exit_compare(inst)

    def run() -> None:
        if passes(fregs[fs], fregs[ft]) and not m.disable_early_exit:
            m.next_pc = target

    return run


def compile_bexitp(inst: Inst, m: Machine) -> Run:
    """Forced exit at the predicted layer: taken when R[rs1] >= R[rs2], unless early exit is disabled."""
    rs1, rs2, target, regs = inst["rs1"], inst["rs2"], inst["target"], m.regs

    def run() -> None:
        if regs[rs1] >= regs[rs2] and not m.disable_early_exit:
            m.next_pc = target

    return run


def compile_lut(inst: Inst, m: Machine) -> Run:
    """rd = int32 table[clamp(floor or rint(F[fs] * scale), 0, nbins - 1)] (product rounded to fp32)."""
    rd, fs, nbins, regs, fregs = inst["rd"], inst["fs"], inst["nbins"], m.regs, m.fregs
    scale, nearest = np.float32(bits_f32(inst["scale"])), inst["mode"] == NEAREST
    space, base, off = inst["table_space"], inst["table_base"], inst["table"]
    i32, size, acc = m.mem.i32[space], m.mem.sizes[space], m.acc

    def run() -> None:
        if nbins == 0:
            raise Fault("lut with nbins = 0")
        x = float(np.float32(fregs[fs]) * scale)
        if math.isnan(x):
            raise Fault(f"lut of NaN (f{fs} = {fregs[fs]})")
        b = float(np.rint(x)) if nearest else math.floor(x) if math.isfinite(x) else x
        b = int(min(max(b, 0), nbins - 1))
        addr = regs[base] + off + 4 * b
        index = word_address(size, space, addr, "table")
        acc.append((space, addr, 1, 4, 4, False))
        m.seg.read[space] += 4
        if rd:
            regs[rd] = int(i32[index])

    return run


def compile_dvfs(inst: Inst, m: Machine) -> Run:
    point = inst["point"]
    return lambda: point


def compile_dvfsr(inst: Inst, m: Machine) -> Run:
    rs, regs = inst["rs"], m.regs
    return lambda: regs[rs]


def compile_nothing(inst: Inst, m: Machine) -> Run:
    """barrier, nop and halt: their effect is on timing and control, handled by the run loop."""
    return lambda: None


FACTORIES: dict[str, Callable[[Inst, Machine], Run]] = {
    "li": compile_li,
    "addi": compile_addi,
    "add": _alu(lambda a, b: a + b),
    "sub": _alu(lambda a, b: a - b),
    "mul": _alu(lambda a, b: a * b),
    "lw": compile_lw,
    "sw": compile_sw,
    "flw": compile_flw,
    "fli": compile_fli,
    "beq": _branch(lambda a, b: a == b),
    "bne": _branch(lambda a, b: a != b),
    "blt": _branch(lambda a, b: a < b),
    "bge": _branch(lambda a, b: a >= b),
    "jmp": compile_jmp,
    "bexit": compile_bexit,
    "bexitr": compile_bexitr,
    "bexitp": compile_bexitp,
    "lut": compile_lut,
    "dvfs": compile_dvfs,
    "dvfsr": compile_dvfsr,
    "barrier": compile_nothing,
    "nop": compile_nothing,
    "halt": compile_nothing,
}
