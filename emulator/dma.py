"""Load/store unit semantics: `ld`, `st` and `gather` move raw elements between memory spaces."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgebert.emulator.memory import ELEMENT_BYTES, SRAM, Fault, tile
from edgebert.isa.encoding import Inst
from edgebert.isa.table import SPACES

if TYPE_CHECKING:
    from edgebert.emulator.machine import Machine


def _port(m: Machine, space: int, address: int, rows: int, row_bytes: int, pitch: int) -> int:
    """The narrowest SRAM buffer port a tile of `space` touches (no limit outside SRAM)."""
    if space != SRAM:
        return 1 << 62
    return m.costs.sram_port(address, address + (rows - 1) * (pitch or row_bytes) + row_bytes if rows else address)


def _cycles_by_port(m: Machine, src: int, dst: int, nbytes: int, bursts: int) -> Callable[[int], int]:
    """cycles(port) of one transfer, memoised (a program's tiles touch few distinct buffer ports)."""
    memo: dict[int, int] = {}

    def cycles(port: int) -> int:
        c = memo.get(port)
        if c is None:
            c = memo[port] = m.costs.dma(src, dst, nbytes, bursts, port)
        return c

    return cycles


def _copy(inst: Inst, m: Machine, src_space: int, dst_space: int, track: bool = False) -> Callable[[], int]:
    """A rows x cols tile copy from src_space to dst_space (the dtype only sets the element size)."""
    v = inst.values
    rows, cols, esize = v["rows"], v["cols"], ELEMENT_BYTES[v["dtype"]]
    src_base, src, src_stride = v["src_base"], v["src"], v["src_stride"]
    dst_base, dst, dst_stride = v["dst_base"], v["dst"], v["dst_stride"]
    nbytes = rows * cols * esize
    regs, mem, acc = m.regs, m.mem, m.acc
    src_buf, dst_buf = mem.u8[src_space], mem.u8[dst_space]
    src_size, dst_size = mem.sizes[src_space], mem.sizes[dst_space]
    # Byte-level tiles: `cols * esize` bytes per row, pitch `stride * esize` bytes; alignment checked first.
    bcols, bsrc_stride, bdst_stride = cols * esize, src_stride * esize, dst_stride * esize
    # Bursts follow the bus side (the level that is not SRAM; the source for SRAM -> SRAM).
    bus_stride = dst_stride if src_space == SRAM and dst_space != SRAM else src_stride
    bursts = m.costs.bursts(rows, bcols, rows <= 1 or bus_stride in (0, cols))
    cycles_at = _cycles_by_port(m, src_space, dst_space, nbytes, bursts)
    static = cycles_at(m.costs.sram_port(0, 0)) if m.costs.uniform_port else None  # no run-time port lookup
    by_sram_address: dict[tuple[int, int], int] = {}  # cycles by the SRAM side's addresses (they fix the ports)
    # Fast path of an aligned, in-bounds copy (anything else goes through `tile`, which faults).
    src_pitch, dst_pitch = bsrc_stride or bcols, bdst_stride or bcols
    src_extent = (rows - 1) * src_pitch + bcols if rows and bcols else 0
    dst_extent = (rows - 1) * dst_pitch + bcols if rows and bcols else 0
    packed = src_pitch == bcols and dst_pitch == bcols  # both sides one run of bytes

    def cycles(s_addr: int, d_addr: int) -> int:
        key = (s_addr if src_space == SRAM else -1, d_addr if dst_space == SRAM else -1)
        c = by_sram_address.get(key)
        if c is None:
            if len(by_sram_address) >= 256:
                by_sram_address.clear()
            c = by_sram_address[key] = cycles_at(
                min(_port(m, src_space, s_addr, rows, bcols, bsrc_stride),
                    _port(m, dst_space, d_addr, rows, bcols, bdst_stride)))
        return c

    def run() -> int:
        s_addr, d_addr = regs[src_base] + src, regs[dst_base] + dst
        if s_addr % esize or d_addr % esize:
            bad, what = (s_addr, "src") if s_addr % esize else (d_addr, "dst")
            raise Fault(f"misaligned {what}: address {bad:#x} is not a multiple of {esize}")
        t = m.timing_only
        if 0 <= s_addr <= src_size - src_extent and 0 <= d_addr <= dst_size - dst_extent:
            acc.append((src_space, s_addr, rows, src_pitch, bcols, False))
            acc.append((dst_space, d_addr, rows, dst_pitch, bcols, True))
            if t:
                pass
            elif packed:
                dst_buf[d_addr : d_addr + nbytes] = src_buf[s_addr : s_addr + nbytes]
            else:
                _rows(dst_buf, d_addr, rows, dst_pitch, bcols, True)[...] = _rows(
                    src_buf, s_addr, rows, src_pitch, bcols, False)
        else:
            s = tile(None if t else src_buf, src_size, src_space, s_addr, rows, bcols, bsrc_stride, 1, acc, False,
                     "src")
            d = tile(None if t else dst_buf, dst_size, dst_space, d_addr, rows, bcols, bdst_stride, 1, acc, True,
                     "dst")
            if not t:
                d[...] = s
        if track and not t and rows and bcols:
            m.dirty.append((dst_space, d_addr, d_addr + dst_extent))
        seg = m.seg
        seg.read[src_space] += nbytes
        seg.written[dst_space] += nbytes
        return static if static is not None else cycles(s_addr, d_addr)

    return run


def _rows(buf: np.ndarray, address: int, rows: int, pitch: int, row_bytes: int, write: bool) -> np.ndarray:
    """The (rows, row_bytes) view of bytes at `address`, rows `pitch` apart (in bounds), as `tile` builds it."""
    if pitch == row_bytes:
        return buf[address : address + rows * row_bytes].reshape(rows, row_bytes)
    if pitch > row_bytes and address + rows * pitch <= len(buf):
        return buf[address : address + rows * pitch].reshape(rows, pitch)[:, :row_bytes]
    return as_strided(buf[address:], shape=(rows, row_bytes), strides=(pitch, 1), writeable=write)


def compile_ld(inst: Inst, m: Machine) -> Callable[[], int]:
    """ld: any space -> SRAM."""
    return _copy(inst, m, inst["src_space"], SRAM)


def compile_st(inst: Inst, m: Machine) -> Callable[[], int]:
    """st: SRAM -> any space."""
    return _copy(inst, m, SRAM, inst["dst_space"], track=True)


def compile_gather(inst: Inst, m: Machine) -> Callable[[], int]:
    """gather: dst[r] = table[idx[r]] (rows of `cols` elements); an index outside the table traps (the table is
    the sized symbol or data segment holding it, else the rest of its memory space)."""
    v = inst.values
    rows, cols, esize = v["rows"], v["cols"], ELEMENT_BYTES[v["dtype"]]
    space = v["table_space"]
    table_base, table, pitch = v["table_base"], v["table"], (v["table_stride"] or v["cols"]) * esize
    idx_base, idx, dst_base, dst = v["idx_base"], v["idx"], v["dst_base"], v["dst"]
    row_bytes = cols * esize
    nbytes = rows * row_bytes
    cycles_at = _cycles_by_port(m, space, SRAM, nbytes, m.costs.bursts(rows, row_bytes, False))
    static = cycles_at(m.costs.sram_port(0, 0)) if m.costs.uniform_port else None
    regs, mem, acc = m.regs, m.mem, m.acc
    size = mem.sizes[space]

    def run() -> int:
        t_addr = regs[table_base] + table
        if t_addr % esize:
            raise Fault(f"misaligned table: address {t_addr:#x} is not a multiple of {esize}")
        ids = tile(mem.i32[SRAM], mem.sizes[SRAM], SRAM, regs[idx_base] + idx, 1, rows, 0, 4, acc, False, "idx")[0]
        d = tile(mem.u8[SRAM], mem.sizes[SRAM], SRAM, regs[dst_base] + dst, rows, row_bytes, 0, 1, acc, True, "dst")
        if t_addr < 0 or t_addr + row_bytes > size:
            raise Fault(f"table address {t_addr:#x} lies outside the {size:#x}-byte space")
        if rows and not pitch:
            raise Fault("gather with cols = 0 and table_stride = 0: the table rows have no pitch")
        available, where = _table_rows(m, space, t_addr, row_bytes, pitch, size)
        if rows and m.timing_only:
            # The indices are data: race detection sees every row the table space could hold.
            acc.append((space, t_addr, available, pitch, row_bytes, False))
        elif rows:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= available:
                bad = int(np.flatnonzero((ids < 0) | (ids >= available))[0])
                raise Fault(
                    f"gather index {int(ids[bad])} (row {bad}) out of range for a table of {available} rows "
                    f"({where}; like onnxruntime's Gather, ids must lie in 0..{available - 1})"
                )
            # Race detection sees the span of rows touched (a superset of the gathered rows).
            acc.append((space, t_addr + lo * pitch, hi - lo + 1, pitch, row_bytes, False))
            rows_view = np.lib.stride_tricks.as_strided(
                mem.u8[space][t_addr:], shape=(available, row_bytes), strides=(pitch, 1), writeable=False
            )
            d[...] = rows_view[ids]
        seg = m.seg
        seg.read[space] += nbytes
        seg.read[SRAM] += rows * 4
        seg.written[SRAM] += nbytes
        return static if static is not None else cycles_at(_port(m, SRAM, regs[dst_base] + dst, rows, row_bytes, 0))

    return run


def _table_rows(m: Machine, space: int, t_addr: int, row_bytes: int, pitch: int, size: int) -> tuple[int, str]:
    """Rows of a gather table at `t_addr` and where they are: the rows inside the object holding the table (the
    compiler gives every constant a sized symbol and its own data segment: that is the embedding matrix), else
    the rows that fit in the memory space."""
    obj = m.object_at(space, t_addr, row_bytes)
    if obj is not None:
        lo, hi, what = obj
        return (hi - t_addr - row_bytes) // pitch + 1, f"{what} [{lo:#x}, {hi:#x})"
    return (size - t_addr - row_bytes) // pitch + 1, f"the {SPACES[space]} space"


FACTORIES = {"ld": compile_ld, "st": compile_st, "gather": compile_gather}
