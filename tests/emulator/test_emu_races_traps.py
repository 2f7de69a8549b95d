"""Race detection, every trap (naming the PC and instruction, partial report kept) and entropy injection."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import program, run_sram

from edgebert.emulator import run
from edgebert.emulator.memory import accesses_overlap
from edgebert.isa.bits import f32_bits
from edgebert.isa.encoding import Inst, make
from edgebert.isa.errors import EmulatorTrap
from edgebert.isa.hardware import default_config
from edgebert.isa.program import Program
from edgebert.isa.table import SPACES, UNITS

LD, PU, SFU, ST, CTL = (1 << UNITS.index(u) for u in UNITS)
DRAM, SRAM = SPACES.index("dram"), SPACES.index("sram")


def _ld_then_matmul(guarded: bool) -> list[Inst]:
    return [
        make("ld", dst=0x100, src=0x0, src_space=DRAM, rows=8, cols=8, signal=PU if guarded else 0),
        make("matmul", dst=0x400, a=0x100, b=0x100, m=8, k=8, n=8, wait=LD if guarded else 0),
    ]


def test_unguarded_ld_matmul_is_a_race() -> None:
    r = run_sram(_ld_then_matmul(guarded=False))
    assert r.report["race_count"] >= 1
    race = r.report["races"][0]
    assert (race["pc"], race["unit"], race["access"]) == (1, "pu", "read")
    assert (race["other_pc"], race["other_unit"], race["other_access"]) == (0, "ld", "write")
    assert race["instruction"].startswith("matmul") and race["other_instruction"].startswith("ld")


def test_token_guarded_ld_matmul_is_not_a_race() -> None:
    assert run_sram(_ld_then_matmul(guarded=True)).report["race_count"] == 0


def test_disjoint_strided_tiles_do_not_race() -> None:
    # ld fills columns 0..7 of a 16-wide matrix while the SFU writes columns 8..15 of the same rows.
    code = [
        make("ld", dst=0x1000, src=0x0, src_space=DRAM, rows=8, cols=8, dst_stride=16),
        make("vaddi", dst=0x1020, src=0x0, rows=8, cols=8, dst_stride=16, imm=f32_bits(1.0)),
    ]
    assert run_sram(code).report["race_count"] == 0


def test_access_overlap_is_exact_for_interleaved_rows() -> None:
    a = (SRAM, 0, 4, 64, 32, True)  # bytes [0, 32), [64, 96), ...
    b = (SRAM, 32, 4, 64, 32, False)  # bytes [32, 64), [96, 128), ...
    c = (SRAM, 60, 1, 8, 8, False)  # bytes [60, 68): touches a's second row
    assert not accesses_overlap(a, b)
    assert accesses_overlap(a, c) and accesses_overlap(c, a)
    assert not accesses_overlap(a, (DRAM, 0, 1, 4, 4, True))


def _trap(code: list[Inst], **kw) -> tuple[str, dict]:
    with pytest.raises(EmulatorTrap) as info:
        run(program(code), {}, **kw)
    return str(info.value), info.value.result.report


@pytest.mark.parametrize(
    ("code", "pc", "needle"),
    [
        ([make("li", rd=1, imm=4), make("ld", dst=0, src=2**31, src_space=DRAM, rows=1, cols=4)], 1, "outside dram"),
        ([make("vadd", dst=0x2, a=0, b=0, rows=1, cols=1)], 0, "misaligned dst"),
        ([make("matmul", dst=0, a=default_config().memory.sram.size_bytes - 16, b=0, m=4, k=4, n=4)], 0, "lies outside sram"),
        ([make("dvfs", point=7)], 0, "operating point 7 out of range"),
        ([make("li", rd=3, imm=-1), make("dvfsr", rs=3)], 1, "operating point -1 out of range"),
        ([make("vadd", dst=0, a=0, b=0, rows=1, cols=1, wait=PU)], 0, "token deadlock"),
        ([make("gather", dst=0x100, table=0, table_space=DRAM, idx=0x40, rows=1, cols=4)], 0, "ok"),
        ([make("jmp", target=5)], 0, "outside the code"),
        ([make("li", rd=1, imm=-4), make("lw", rd=2, src=0, src_base=1, src_space=SRAM)], 1, "outside sram"),
    ],
)
def test_traps_name_pc_and_instruction(code: list[Inst], pc: int, needle: str) -> None:
    if needle == "ok":  # gather with index 0 succeeds: guard that the parametrised trap cases are real
        run(program(code), {})
        return
    msg, report = _trap(code)
    assert msg.startswith(f"pc {pc} ") and needle in msg
    assert report["trap"] == msg and report["instructions"] == pc + 1


def test_gather_index_out_of_range_traps() -> None:
    dram_bytes = default_config().memory.dram.size_bytes
    code = [make("gather", dst=0x100, table=0, table_space=DRAM, idx=0x40, rows=2, cols=4)]
    for bad in (-1, dram_bytes // 16):
        p = program(code, {0x40: np.array([0, bad], np.int32)})
        with pytest.raises(EmulatorTrap, match=rf"pc 0 \(gather.*gather index {bad} \(row 1\) out of range"):
            run(p, {})


def test_unknown_opcode_traps_when_executed() -> None:
    p = Program([make("nop"), Inst("bogus", {"opcode": 0xEE}), make("halt")])
    with pytest.raises(EmulatorTrap, match=r"pc 1 \(bogus.*unknown instruction"):
        run(p, {})


def test_cycle_budget_stops_a_runaway_loop_with_a_partial_report() -> None:
    result = run(program([make("jmp", target=0)]), {}, max_cycles=1000, raise_on_trap=False)
    assert result.trap is not None and "cycle budget of 1000 cycles exceeded" in str(result.trap)
    assert str(result.trap).startswith("pc 0 (jmp")
    # one cycle per jmp: the 1001st would end at cycle 1001 > 1000 and traps (it is counted)
    assert result.report["instructions"] == 1001 and result.report["cycles"] == 1001


def test_entropy_injection_replays_values_in_order() -> None:
    code = [make("entropy", fd=1, src=0, n=4), make("entropy", fd=2, src=0, n=4)]
    r = run(program(code), {}, entropy_values=[0.125, 3.5, 9.0])
    assert r.machine.fregs[1:3] == [0.125, 3.5]
    assert r.report["entropy_injected"] == 2


def test_entropy_injection_exhausted_traps() -> None:
    code = [make("entropy", fd=1, src=0, n=4), make("entropy", fd=2, src=0, n=4)]
    with pytest.raises(EmulatorTrap, match=r"pc 1 .*entropy trace exhausted.*more than 1"):
        run(program(code), {}, entropy_values=[0.5])


def test_uninitialized_read_traps_only_when_tracked() -> None:
    code = [
        make("vaddi", dst=0x100, src=0x0, rows=2, cols=4, imm=f32_bits(1.0)),  # src 0x0..0x1f preloaded
        make("vmov", dst=0x200, src=0x100, rows=2, cols=4),  # reads what vaddi wrote
        make("vmov", dst=0x300, src=0x100, rows=2, cols=5, src_stride=8),  # bytes 0x120.. never written
    ]
    p = program(code, {0x0: np.zeros(8, np.float32)})
    assert run(p, {}).trap is None
    with pytest.raises(EmulatorTrap, match=r"pc 2 \(vmov.*read of uninitialized sram byte 0x120"):
        run(p, {}, check_uninitialized=True)
