"""Cycle costs of one instruction on its unit, computed only from the hardware config's primitives.

Pure functions of the config (no emulator state), so the emulator charges and the compiler can score tilings
with the same formulas.

One model covers every config (docs/emulator.md, "Timing model"): a matmul is a pipeline of blocks and output
tiles with a write-back stage, an SFU instruction is a state machine stepping over vectors with memory reads
whose latency depends on the buffer they come from, a DMA pays setup, latency, the narrowest bandwidth on its
path and a per-burst overhead. The idealised and the faithful machine differ only in their numbers.
"""

from __future__ import annotations

import bisect
from collections import deque
from fractions import Fraction

from edgebert.isa.hardware import PU, HardwareConfig
from edgebert.isa.table import SPACES

SRAM = SPACES.index("sram")


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for non-negative integers."""
    return -(-a // b)


def ceil_fraction(x: Fraction) -> int:
    """ceil(x) for a non-negative rational."""
    return -(-x.numerator // x.denominator)


def tile_pipeline(pu: PU, tiles: int, tile_cycles: Fraction, accumulates: bool) -> Fraction:
    """Cycles from a matmul job's start until its last output tile is handed to the write-back path.

    Tile t computes from c_t to e_t = c_t + tile_cycles; its results are handed over at h_t = e_t + drain and
    written back from s_t = max(h_t, s_{t-1} + writeback_cycles). The PU is free for the next tile at h_t when
    the tile accumulated over several blocks (the drain reads the accumulator), at e_t otherwise (results bypass
    it); and tile t cannot start before the write-back of tile t - writeback_slots has run for
    writeback_release_cycles (its slot is free). All tiles are alike, so the pipeline turns periodic: once its
    state repeats, whole periods are added at once (ALBERT-sized jobs and 1x1x1-block configs stay cheap).
    """
    slots, wb, release, drain = pu.writeback_slots, pu.writeback_cycles, pu.writeback_release_cycles, pu.tile_drain_cycles
    free = handed = Fraction(0)
    starts: deque[Fraction] = deque(maxlen=slots)  # write-back starts of the last `slots` tiles
    seen: dict[tuple[Fraction, ...], tuple[int, Fraction]] = {}
    t = 0
    while t < tiles:
        if len(starts) == slots:
            state = tuple(s - free for s in starts)
            if state in seen:
                t0, free0 = seen.pop(state)
                period, growth = t - t0, free - free0
                reps = (tiles - t) // period
                if reps:
                    shift = reps * growth
                    free, handed, t = free + shift, handed + shift, t + reps * period
                    starts = deque((s + shift for s in starts), maxlen=slots)
                    seen.clear()
                    continue
            seen[state] = (t, free)
            start = max(free, starts[0] + release)
        else:
            start = free
        end = start + tile_cycles
        handed = end + drain
        starts.append(max(handed, starts[-1] + wb) if starts else handed)
        free = handed if accumulates else end
        t += 1
    return handed


class Costs:
    """The cost model of one config: derived tables built once, then one method per kind of instruction."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        sram = hw.memory.sram
        self.regions = sram.regions("sram")
        self._region_starts = [lo for lo, _, _ in self.regions]
        self.uniform_port = len({b.port_bytes_per_cycle for _, _, b in self.regions}) == 1
        self.read_latency = {b.name: b.read_latency_cycles for _, _, b in self.regions}
        operand = sram.buffer("sram", hw.pu.operand_buffer)
        assert operand is not None  # validated with the config
        self.operand_port = operand.port_bytes_per_cycle
        self._matmul_cycles: dict[tuple, int] = {}  # matmul(): a program repeats its shapes (blocked ones by the 1000)

    # ---- processing unit -----------------------------------------------------------------------------
    def block_cycles(self, a_bytes: int, b_bytes: int, density: Fraction = Fraction(1)) -> Fraction:
        """Cycles of one block on the PU: operand loads and compute as `operand_feed` says, then the sync.

        `density`: the share of MACs computed (a sparse b's non-zeros, on configs that skip zeros)."""
        pu = self.hw.pu
        compute = pu.compute_cycles_per_block * density
        # Each operand block streams from its own buffer port: the two loads run side by side.
        load = Fraction(max(pu.block_m * pu.block_k * a_bytes, pu.block_k * pu.block_n * b_bytes), self.operand_port)
        if pu.operand_feed == "serial":
            block = load + compute
        elif pu.operand_feed == "overlapped":
            block = max(load, compute)
        else:
            block = compute
        return block + pu.block_sync_cycles

    def peak_macs_per_cycle(self, a_bytes: int = 1, b_bytes: int = 1) -> Fraction:
        """MACs per cycle of a long dense job (the roofline's compute ceiling): about 124 for edgebert-cmod's AF8
        blocks (4096 MACs per 33 cycles), 256 for ideal-256mac."""
        return Fraction(self.hw.pu.block_macs) / self.block_cycles(a_bytes, b_bytes)

    def matmul(self, m: int, k: int, n: int, a_bytes: int, b_bytes: int, nnz: int | None = None) -> int:
        """One matmul instruction: launch + job overhead + the block/tile pipeline.

        `a_bytes`/`b_bytes`: operand element sizes (AF8 1, fp32 4). `nnz`: set bits of a sparse b's mask
        (only configs with `skip_zero_macs` charge by it).
        """
        pu = self.hw.pu
        key = (m, k, n, a_bytes, b_bytes, nnz if pu.skip_zero_macs else None)
        cycles = self._matmul_cycles.get(key)
        if cycles is None:
            cycles = self._matmul_cycles[key] = self._matmul(m, k, n, a_bytes, b_bytes, key[5])
        return cycles

    def _matmul(self, m: int, k: int, n: int, a_bytes: int, b_bytes: int, nnz: int | None) -> int:
        pu = self.hw.pu
        fixed = pu.launch_cycles + pu.job_cycles
        tiles = ceil_div(m, pu.block_m) * ceil_div(n, pu.block_n)
        blocks = ceil_div(k, pu.block_k)
        if tiles == 0 or blocks == 0:
            return fixed
        density = Fraction(nnz, k * n) if nnz is not None else Fraction(1)
        block = self.block_cycles(a_bytes, b_bytes, density)
        return fixed + ceil_fraction(tile_pipeline(pu, tiles, blocks * block, blocks > 1))

    # ---- special function unit -----------------------------------------------------------------------
    def sfu_passes(self, mnemonic: str) -> int:
        """Element-passes per element of an SFU instruction (its energy is sfu_op_pj per element-pass)."""
        return self.hw.sfu.ops[mnemonic].passes

    def sfu(self, mnemonic: str, rows: int, cols: int) -> int:
        """An SFU instruction over a rows x cols tile (`entropy`: one row of n).

        Per job (at most max_rows rows of at most max_vectors vectors): launch + fixed; per row and job:
        row_cycles; per vector: states + reads x (read_cycles + the buffer's read latency).
        """
        sfu = self.hw.sfu
        op = sfu.ops[mnemonic]
        per_row = ceil_div(cols, sfu.lanes)
        vectors = Fraction(rows * per_row) if sfu.pad_rows else Fraction(rows * cols, sfu.lanes)
        row_jobs = ceil_div(per_row, sfu.max_vectors)
        jobs = max(1, ceil_div(rows, sfu.max_rows) * row_jobs)
        per_vector = op.states + sum(count * (sfu.read_cycles + self.read_latency[buf]) for buf, count in op.reads.items())
        total = jobs * (op.launch_cycles + op.fixed_cycles) + rows * row_jobs * op.row_cycles + vectors * per_vector
        return ceil_fraction(total)

    # ---- front end -----------------------------------------------------------------------------------
    def ctl(self, mnemonic: str) -> int:
        """A ctl instruction: one cycle; `lut` (entropy -> operating point) is the DVFS unit's decision."""
        if mnemonic == "lut":
            return self.hw.dvfs.decision_launch_cycles + self.hw.dvfs.decision_cycles
        return 1

    # ---- data movement -------------------------------------------------------------------------------
    def sram_port(self, lo: int, hi: int) -> int:
        """The narrowest port of the SRAM buffers bytes [lo, hi) touch."""
        if self.uniform_port or hi <= lo:
            return self.regions[0][2].port_bytes_per_cycle
        first = max(bisect.bisect_right(self._region_starts, lo) - 1, 0)
        last = max(bisect.bisect_right(self._region_starts, hi - 1) - 1, first)
        return min(b.port_bytes_per_cycle for _, _, b in self.regions[first : last + 1])

    def bursts(self, rows: int, row_bytes: int, contiguous: bool) -> int:
        """Bus bursts of a transfer: one run of bytes when its rows are contiguous, else per row."""
        burst = self.hw.dma.burst_bytes
        if contiguous:
            return ceil_div(rows * row_bytes, burst)
        return rows * ceil_div(row_bytes, burst)

    def dma(self, src: int, dst: int, nbytes: int, bursts: int, port: int) -> int:
        """Move `nbytes` between two levels: setup, the slower latency, the narrowest of both levels' bandwidth
        and the SRAM buffer `port`, and the burst overheads."""
        a, b = self.hw.memory.level(SPACES[src]), self.hw.memory.level(SPACES[dst])
        dma = self.hw.dma
        width = min(a.bandwidth, b.bandwidth, port)
        return (dma.setup_cycles + max(a.latency_cycles, b.latency_cycles) + ceil_div(nbytes, width)
                + dma.burst_overhead_cycles * bursts)
