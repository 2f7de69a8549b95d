"""Exact cycle, time and energy figures of tiny programs, worked out by hand from the config's primitives."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import program

from edgebert.emulator import run
from edgebert.isa.encoding import make
from edgebert.isa.hardware import default_config
from edgebert.isa.table import SPACES, UNITS

LD, PU, SFU, ST, CTL = (1 << UNITS.index(u) for u in UNITS)
DRAM = SPACES.index("dram")


@pytest.fixture(scope="module")
def hw():
    """The figures below are derived from these config values: fail loudly if they change."""
    hw = default_config()
    assert (hw.memory.dram.latency_cycles, hw.memory.dram.bandwidth) == (100, 16)
    assert (hw.memory.sram.latency_cycles, hw.memory.sram.bandwidth) == (2, 64)
    assert hw.name == "ideal-256mac"
    assert (hw.pu.job_cycles, hw.pu.macs_per_cycle, hw.pu.operand_feed, hw.pu.launch_cycles) == (6, 256, "free", 0)
    assert (hw.pu.block_m, hw.pu.block_k, hw.pu.block_n, hw.pu.writeback_cycles) == (1, 1, 1, 0)
    vadd = hw.sfu.ops["vadd"]
    assert (vadd.fixed_cycles, hw.sfu.lanes, vadd.states, vadd.passes, hw.sfu.pad_rows) == (8, 16, 1, 1, False)
    assert (hw.dma.setup_cycles, hw.dma.burst_overhead_cycles) == (0, 0)
    assert hw.frontend.queue_depth == 8
    e = hw.energy
    assert (e.mac_f32_pj, e.sfu_op_pj, e.ctl_op_pj, e.leakage_mw) == (0.92, 0.3, 0.1, 5.0)
    assert (hw.memory.sram.read_pj_per_byte, hw.memory.sram.write_pj_per_byte) == (0.5, 0.6)
    assert (hw.memory.dram.read_pj_per_byte, hw.memory.dram.write_pj_per_byte) == (20.0, 20.0)
    assert not hw.memory.dram.scales_with_voltage
    assert hw.dvfs.initial == hw.dvfs.nominal == 6
    assert (hw.dvfs.points[6].volts, hw.dvfs.points[6].mhz) == (0.8, 800.0)
    assert (hw.dvfs.points[0].volts, hw.dvfs.points[0].mhz) == (0.5, 200.0)
    assert (hw.dvfs.switch_ns, hw.dvfs.switch_nj) == (500.0, 5.0)
    return hw


def test_guarded_tiled_matmul_cycles_and_energy(hw) -> None:
    code = [
        make("ld", dst=0x000, src=0x000, src_space=DRAM, rows=4, cols=8),  # a: 128 B
        make("ld", dst=0x100, src=0x400, src_space=DRAM, rows=8, cols=4, signal=PU),  # b: 128 B
        make("matmul", dst=0x200, a=0x000, b=0x100, m=4, k=8, n=4, wait=LD, signal=ST),
        make("st", dst=0x800, dst_space=DRAM, src=0x200, rows=4, cols=4, wait=PU),  # c: 64 B
    ]
    a, b = np.ones((4, 8), np.float32), np.full((8, 4), 2.0, np.float32)
    p = program(code, {0x000: a, 0x400: b}, space="dram")
    r = run(p, {}, hw, trace=True).report
    # ld a:   dispatch 0, start 0,   max(100, 2) + ceil(128 / min(16, 64)) = 108 -> end 108
    # ld b:   dispatch 1, start 108 (ld busy), 108 cycles                        -> end 216, token ld->pu @216
    # matmul: dispatch 2, start 216 (token), 6 + ceil(4*8*4 / 256) = 7           -> end 223, token pu->st @223
    # st:     dispatch 3, start 223 (token), 100 + ceil(64 / 16) = 104          -> end 327
    # halt:   dispatch 4, drains to 327, one cycle                               -> end 328
    assert r["cycles"] == 328
    assert r["seconds"] == pytest.approx(328 / 800e6, rel=1e-12)
    assert r["units"]["ld"]["busy_cycles"] == 216 and r["units"]["pu"]["busy_cycles"] == 7
    assert r["units"]["st"]["busy_cycles"] == 104 and r["units"]["ctl"]["busy_cycles"] == 1
    assert r["race_count"] == 0
    assert r["traffic_bytes"] == {
        "dram": {"read": 256, "write": 64},
        "envm": {"read": 0, "write": 0},
        "sram": {"read": 128 + 128 + 64, "write": 128 + 128 + 64},  # matmul reads a, b; st reads c
    }
    pj = {
        "mac_f32": 128 * 0.92,  # 117.76
        "sram": 320 * 0.5 + 320 * 0.6,  # 352
        "dram": 256 * 20.0 + 64 * 20.0,  # 6400
        "ctl": 1 * 0.1,  # halt
        "leakage": 5e-3 * (328 / 800e6) * 1e12,  # 5 mW x 410 ns = 2050 pJ
    }
    for name, value in pj.items():
        assert r["energy_breakdown_j"][name] == pytest.approx(value * 1e-12, rel=1e-12), name
    assert r["energy_j"] == pytest.approx(8919.86e-12, rel=1e-12)


def test_dvfs_switch_scales_energy_by_v_squared(hw) -> None:
    vadd = make("vadd", dst=0x2000, a=0x0, b=0x1000, rows=4, cols=64)
    slow = run(program([make("dvfs", point=0), vadd]), {}, hw).report
    # dvfs: dispatch 0, nothing to drain: switch at cycle 0 (0.5 V, 200 MHz), end 1
    # vadd: dispatch 1, 8 + ceil(256 / 16) = 24 cycles -> end 25; halt -> end 26
    assert slow["cycles"] == 26
    assert slow["seconds"] == pytest.approx(26 / 200e6 + 500e-9, rel=1e-12)  # 630 ns
    first, second = slow["dvfs"]
    assert (first["point"], first["cycles"], first["energy_j"]) == (6, 0, 0.0)
    assert (second["point"], second["volts"], second["mhz"], second["cycles"]) == (0, 0.5, 200.0, 26)
    assert second["start_s"] == 0.0 and second["switch_s"] == pytest.approx(500e-9)
    v2 = (0.5 / 0.8) ** 2  # 0.390625
    pj = {
        "sfu": 256 * 0.3 * v2,  # 30
        "ctl": 2 * 0.1 * v2,  # dvfs + halt: 0.078125
        "sram": (2048 * 0.5 + 1024 * 0.6) * v2,  # 640
        "leakage": 5e-3 * (0.5 / 0.8) * 630e-9 * 1e12,  # 1968.75
        "dvfs_switch": 5000.0,
    }
    for name, value in pj.items():
        assert slow["energy_breakdown_j"][name] == pytest.approx(value * 1e-12, rel=1e-12), name
    assert slow["energy_j"] == pytest.approx(7638.828125e-12, rel=1e-12)
    fast = run(program([vadd]), {}, hw).report
    assert fast["cycles"] == 25  # vadd 24 + halt 1
    assert slow["energy_breakdown_j"]["sfu"] == pytest.approx(fast["energy_breakdown_j"]["sfu"] * v2, rel=1e-12)


def test_front_end_stalls_on_a_full_unit_queue(hw) -> None:
    ops = [make("vadd", dst=0x2000 + 64 * i, a=0x0, b=0x1000, rows=1, cols=16) for i in range(12)]
    r = run(program([*ops, make("li", rd=1, imm=1)]), {}, hw, trace=True)
    # each vadd: 8 + ceil(16 / 16) = 9 cycles; the SFU runs them back to back: op i starts at 9 i.
    # op i (i >= 8) can only be dispatched once op i-8 has left the 8-deep queue (started at 9 (i-8)):
    # dispatch of op 10 = 18, op 11 = 27; li is dispatched next at 28; halt drains to 9 * 12 = 108 -> 109.
    starts = {pc: start for unit, start, end, pc in r.machine.trace}
    assert [starts[i] for i in range(12)] == [9 * i for i in range(12)]
    assert starts[12] == 28
    assert r.report["cycles"] == 109
    assert r.report["units"]["sfu"]["busy_cycles"] == 108


def test_bexit_waits_for_the_entropy_it_reads(hw) -> None:
    code = [
        make("entropy", fd=1, src=0x0, n=32),  # 8 + ceil(32 * 3 / 16) = 14 cycles: 0 -> 14
        make("bexit", fs=1, threshold=0, target=2),  # dispatch 1, waits until 14, end 15
    ]
    r = run(program(code, {0: np.zeros(32, np.float32)}), {}, hw, trace=True)
    assert hw.sfu.ops["entropy"].states == 3
    assert [(s, e) for _, s, e, _ in r.machine.trace] == [(0, 14), (14, 15), (15, 16)]
