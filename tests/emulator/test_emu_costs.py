"""Exact cycle, time and energy figures of tiny programs, worked out by hand from the config's primitives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from emu_helpers import program

from edgebert.emulator import run
from edgebert.emulator.fidelity import standalone_config
from edgebert.isa.assembler import assemble_file
from edgebert.isa.bits import f32_bits
from edgebert.isa.encoding import make
from edgebert.isa.hardware import load_config
from edgebert.isa.table import FORMATS, SPACES, UNITS

LD, PU, SFU, ST, CTL = (1 << UNITS.index(u) for u in UNITS)
DRAM = SPACES.index("dram")
AF8 = FORMATS.index("af8")


@pytest.fixture(scope="module")
def hw():
    """The figures below are derived from these config values: fail loudly if they change."""
    hw = load_config("ideal-256mac")
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


# ---- ideal-256mac keeps the machine of before the configurable cost model: figures measured before the change ------
ASM = Path(__file__).resolve().parents[2] / "examples" / "asm"


@pytest.mark.parametrize(
    ("name", "cycles", "energy_j", "traffic"),
    [
        ("early_exit.s", 284, 1.3882391796875e-08, {"dram": (0, 20), "envm": (1348, 0), "sram": (2992, 1632)}),
        ("softmax_layernorm.s", 1325, 2.7252455e-07, {"dram": (4096, 8192), "envm": (512, 0), "sram": (16896, 12800)}),
        ("tiled_matmul.s", 3225, 7.544872300000001e-07, {"dram": (0, 16384), "envm": (32768, 0),
                                                          "sram": (147456, 98304)}),
    ],
)
def test_ideal_config_keeps_the_old_figures(hw, name, cycles, energy_j, traffic) -> None:
    r = run(assemble_file(ASM / name), {}, hw).report
    assert r["cycles"] == cycles
    assert r["energy_j"] == pytest.approx(energy_j, rel=1e-12)
    assert {k: (v["read"], v["write"]) for k, v in r["traffic_bytes"].items()} == traffic


# ---- edgebert-cmod: the SystemC model's closed forms (../shared/data/edgebert-cmod/README.md), by hand ------------
@pytest.fixture(scope="module")
def cmod():
    """The formulas below follow from these primitives: fail loudly if they change."""
    hw = load_config("edgebert-cmod")
    pu = hw.pu
    assert (pu.block_m, pu.block_k, pu.block_n, pu.operand_feed, pu.skip_zero_macs) == (16, 16, 16, "serial", False)
    assert (pu.block_sync_cycles, pu.tile_drain_cycles, pu.job_cycles, pu.launch_cycles) == (1, 8, 26, 5)
    assert (pu.writeback_cycles, pu.writeback_slots, pu.writeback_release_cycles) == (43, 2, 40)
    assert {b.name: (b.port_bytes_per_cycle, b.read_latency_cycles) for b in hw.memory.sram.buffers} == {
        "input": (16, 14), "mask": (2, 0), "aux": (16, 3), "dvfs": (16, 0)}
    assert (hw.sfu.read_cycles, hw.sfu.max_rows, hw.dma.setup_cycles, hw.dma.burst_overhead_cycles) == (1, 255, 8, 5)
    assert (hw.memory.dram.bandwidth, hw.memory.dram.latency_cycles, hw.dma.burst_bytes) == (8, 0, 2048)
    return hw


def _cycles(hw, insts, data=None) -> int:
    """Duration of the last instruction of `insts` (the job) on its unit."""
    r = run(program(insts, data), {}, hw, trace=True)
    pc = len(insts) - 1
    return next(end - start for _, start, end, at in r.machine.trace if at == pc)


def _matmul(m, k, n, **kw):
    return make("matmul", dst=0x8000, a=0, b=0x4000, m=m, k=k, n=n, a_fmt=AF8, b_fmt=AF8, **kw)


def test_cmod_matmul_is_blocks_then_tiles(cmod) -> None:
    # 64x64x64: T = 16 output tiles of Mb = 4 blocks; 33 cycles per block (16 load + 16 compute + 1 token),
    # 8 per tile (drain), 26 per job, 5 for the controller: T (33 Mb + 8) + 26 + 5
    assert _cycles(cmod, [_matmul(64, 64, 64)]) == 16 * (33 * 4 + 8) + 26 + 5 == 2271
    # 32x512x16: T = 2, Mb = 32; unaligned 20x40x24 pads to T = 4, Mb = 3
    assert _cycles(cmod, [_matmul(32, 512, 16)]) == 2 * (33 * 32 + 8) + 26 + 5
    assert _cycles(cmod, [_matmul(20, 40, 24)]) == 4 * (33 * 3 + 8) + 26 + 5
    # fp32 operands (the reference path, ASSUMPTION): a 16x16 block of 4-byte operands loads in 64 cycles
    assert _cycles(cmod, [make("matmul", dst=0x8000, a=0, b=0x4000, m=16, k=32, n=16)]) == 2 * (64 + 16 + 1) + 8 + 31


def test_cmod_matmul_at_m16_is_write_back_bound(cmod) -> None:
    # one block per tile: 43 cycles of write-back per tile, two result tiles in flight; measured 67, 100, 147 for
    # T = 1, 2, 3 (this model gives 148 at T = 3) and 43 T + 19 from T = 4 on; + 5 through the controller
    got = [_cycles(cmod, [_matmul(16 * t, 16, 16)]) - 5 for t in (1, 2, 3, 4, 5, 16)]
    assert got == [67, 100, 148, 43 * 4 + 19, 43 * 5 + 19, 43 * 16 + 19]


def test_cmod_matmul_cycles_ignore_density_energy_does_not(cmod) -> None:
    mask = np.zeros(64 * 64 // 8, np.uint8)
    mask[::4] = 0xFF  # a quarter of b's elements are non-zero
    data = {0x4000: np.concatenate([mask, np.full(1024, 0x38, np.uint8)])}
    dense = run(program([_matmul(64, 64, 64)]), {}, cmod).report
    sparse = run(program([_matmul(64, 64, 64, sparse=1)], data), {}, cmod).report
    assert sparse["units"]["pu"]["busy_cycles"] == dense["units"]["pu"]["busy_cycles"] == 2271
    assert (dense["macs"], sparse["macs"]) == (64 * 64 * 64, 64 * 1024)
    assert sparse["energy_breakdown_j"]["mac_af8"] == pytest.approx(dense["energy_breakdown_j"]["mac_af8"] / 4)


def test_cmod_sfu_state_machines(cmod) -> None:
    # per vector: states + reads x (1 + buffer latency): layer norm 9 + 2 x 15 + 2 x 4 = 47, softmax 9 + 3 x 15 + 4
    # = 58, entropy 4 + 2 x 15 = 34, element-wise add 6 + 2 x 15 = 36; then per row and per job overheads
    nv, nt = 3, 5
    ln = make("layernorm", dst=0x4000, src=0, gamma=0x3000, beta=0x3100, rows=nt, cols=16 * nv)
    assert _cycles(cmod, [ln]) == nt * (47 * nv + 2) + 8 == 723
    sm = make("softmax", dst=0x4000, src=0, mask=0x3000, has_mask=1, rows=nt, cols=16 * nv)
    assert _cycles(cmod, [sm]) == nt * (58 * nv + 1) + 9 == 884
    assert _cycles(cmod, [make("entropy", fd=1, src=0, n=16 * nv)]) == 34 * nv + 10 == 112
    va = make("vadd", dst=0x4000, a=0, b=0x2000, rows=nt, cols=16 * nv)
    assert _cycles(cmod, [va]) == nt * (36 * nv + 1) + 8 == 553  # measured: one cycle more per row
    # cols not a multiple of 16 pad to whole vectors; more than 255 rows (num_timestep is 8 bit) is two jobs
    assert _cycles(cmod, [make("layernorm", dst=0x4000, src=0, gamma=0x3000, beta=0x3100, rows=2, cols=20)]) == 2 * (
        47 * 2 + 2) + 8
    big = make("layernorm", dst=0x10000, src=0, gamma=0x3000, beta=0x3100, rows=300, cols=16)
    assert _cycles(cmod, [big]) == 300 * (47 + 2) + 2 * 8


def test_cmod_standalone_units_pay_memory_latency(cmod) -> None:
    # SFU_param(LAT = L): no controller launch, every read answered L cycles late: NT ((13 + 4L) NV + 2) + 2
    alone = standalone_config(cmod, latency=4)
    ln = make("layernorm", dst=0x4000, src=0, gamma=0x3000, beta=0x3100, rows=8, cols=16 * 8)
    assert _cycles(alone, [ln]) == 8 * ((13 + 4 * 4) * 8 + 2) + 2 == 1874  # a row of cycles.csv
    assert _cycles(alone, [make("entropy", fd=1, src=0, n=48 * 16)]) == (6 + 2 * 4) * 48 + 4 == 676


def test_cmod_dma_and_dvfs_decision(cmod) -> None:
    # AXI: 8 bytes per beat, bursts of <= 256 beats with 5 cycles each, 8 per transfer: 2V + 5 ceil(2V/256) + 8
    v = 300
    ld = make("ld", dst=0, src=0, src_space=DRAM, rows=v, cols=16, dtype=3)
    assert _cycles(cmod, [ld]) == 2 * v + 5 * 3 + 8 == 623
    # mask memory (from 0x20000): one 16-bit word per cycle: V + 5 ceil(V/1024) + 8
    words = 1500
    ld = make("ld", dst=0x20000, src=0, src_space=DRAM, rows=words, cols=2, dtype=3)
    assert _cycles(cmod, [ld]) == words + 5 * 2 + 8 == 1518
    # strided rows are separate bursts: 4 rows of 64 B with a 128-B source pitch
    ld = make("ld", dst=0, src=0, src_space=DRAM, rows=4, cols=64, src_stride=128, dtype=3)
    assert _cycles(cmod, [ld]) == 8 + 256 // 8 + 5 * 4
    # the DVFS decision (`lut`): 5 cycles in the unit, 7 through the controller
    code = [make("fli", fd=1, imm=f32_bits(0.3)), make("lut", rd=1, fs=1, table=0, nbins=16, scale=f32_bits(8.0))]
    assert _cycles(cmod, code) == 12
