"""Processing-unit semantics: `matmul` (dense or bitmask-sparse b, fp32 or AdaptivFloat-8 operands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgebert.emulator.memory import SRAM, Fault, Tiles, check_range, tile
from edgebert.emulator.shadow import sparse_nnz
from edgebert.isa.adaptivfloat import DECODE_TABLE
from edgebert.isa.bits import sparse_mask_bytes
from edgebert.isa.encoding import Inst
from edgebert.isa.table import FORMATS

if TYPE_CHECKING:
    from edgebert.emulator.machine import Machine

AF8 = FORMATS.index("af8")


def compile_matmul(inst: Inst, m: Machine) -> Callable[[], int]:
    """dst (+)= a @ b (+ bias).

    Rounding points: p = a @ b rounded once to fp32 (computed exactly in float64 when both operands
    are AF8, with float32 BLAS otherwise); then dst + p if `acc`; then + bias if `has_bias`.
    """
    v = inst.values
    mm, k, n = v["m"], v["k"], v["n"]
    a_af8, b_af8 = v["a_fmt"] == AF8, v["b_fmt"] == AF8
    a_dec = DECODE_TABLE[v["a_exp"]] if a_af8 else None
    b_dec = DECODE_TABLE[v["b_exp"]] if b_af8 else None
    a_size, b_size = (1 if a_af8 else 4), (1 if b_af8 else 4)
    acc_flag, has_bias, trans_b, sparse = v["acc"], v["has_bias"], v["trans_b"], v["sparse"]
    exact = a_af8 and b_af8
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    costs = m.costs
    dense_cycles = costs.matmul(mm, k, n, a_size, b_size)
    by_nnz: dict[int, int] = {}  # sparse b: cycles by its mask's popcount (configs that skip zeros)

    def sparse_cycles(nnz: int) -> int:
        cycles = by_nnz.get(nnz)
        if cycles is None:
            cycles = by_nnz[nnz] = costs.matmul(mm, k, n, a_size, b_size, nnz)
        return cycles

    a_base, a_off, a_stride = v["a_base"], v["a"], v["a_stride"]
    b_base, b_off, b_stride = v["b_base"], v["b"], v["b_stride"]
    d_base, d_off, d_stride = v["dst_base"], v["dst"], v["dst_stride"]
    bias_base, bias_off = v["bias_base"], v["bias"]
    mask_bytes = sparse_mask_bytes(k, n)
    regs, mem, acc = m.regs, m.mem, m.acc
    f32, u8, size = mem.f32[SRAM], mem.u8[SRAM], mem.sizes[SRAM]
    fixed_read = mm * k * a_size + (n * 4 if has_bias else 0) + (mm * n * 4 if acc_flag else 0)
    written = mm * n * 4
    # The numeric path's operand views, memoised by address.
    a_tile = Tiles(u8 if a_af8 else f32, size, SRAM, mm, k, a_stride, a_size, acc, False, "a")
    b_tile = Tiles(u8 if b_af8 else f32, size, SRAM, b_rows, b_cols, b_stride, b_size, acc, False, "b")
    d_tile = Tiles(f32, size, SRAM, mm, n, d_stride, 4, acc, True, "dst")
    bias_tile = Tiles(f32, size, SRAM, 1, n, 0, 4, acc, False, "bias")

    def check_mask(addr: int) -> None:
        """b's bitmask is aligned and inside SRAM."""
        if addr % b_size:
            raise Fault(f"misaligned b: address {addr:#x} is not a multiple of {b_size}")
        check_range(size, SRAM, addr, mask_bytes, "b bitmask")

    def claim_nonzeros(addr: int, nnz: int) -> int:
        """Check b's `nnz` non-zeros fit after its mask, record the read of both; return the bytes read."""
        check_range(size, SRAM, addr + mask_bytes, nnz * b_size, "b non-zeros")
        nbytes = mask_bytes + nnz * b_size
        acc.append((SRAM, addr, 1, nbytes, nbytes, False))
        return nbytes

    def charge(macs: int, b_read: int, cycles: int) -> int:
        """Count the MACs and SRAM traffic of one execution; return its cycles."""
        seg = m.seg
        if exact:
            seg.mac_af8 += macs
        else:
            seg.mac_f32 += macs
        seg.read[SRAM] += fixed_read + b_read
        seg.written[SRAM] += written
        return cycles

    def load_sparse_b(addr: int) -> tuple[np.ndarray, int, int]:
        """b expanded to dense, its non-zero count and the bytes read."""
        check_mask(addr)
        bits = np.unpackbits(u8[addr : addr + mask_bytes], count=k * n, bitorder="little").view(bool)
        nnz = int(np.count_nonzero(bits))
        b_read = claim_nonzeros(addr, nnz)
        vals_addr = addr + mask_bytes
        if b_af8:
            dense = np.zeros(k * n, dtype=np.uint8)
            dense[bits] = u8[vals_addr : vals_addr + nnz]
        else:
            dense = np.zeros(k * n, dtype=np.float32)
            dense[bits] = f32[vals_addr // 4 : vals_addr // 4 + nnz]
        return dense.reshape(b_rows, b_cols), nnz, b_read

    def run_timing() -> int:
        tile(None, size, SRAM, regs[a_base] + a_off, mm, k, a_stride, a_size, acc, False, "a")
        b_addr = regs[b_base] + b_off
        if sparse:
            check_mask(b_addr)
            nnz = sparse_nnz(m, b_addr, mask_bytes, k * n)
            b_read, macs, cycles = claim_nonzeros(b_addr, nnz), mm * nnz, sparse_cycles(nnz)
        else:
            tile(None, size, SRAM, b_addr, b_rows, b_cols, b_stride, b_size, acc, False, "b")
            b_read, macs, cycles = k * n * b_size, mm * k * n, dense_cycles
        tile(None, size, SRAM, regs[d_base] + d_off, mm, n, d_stride, 4, acc, True, "dst")
        if has_bias:
            tile(None, size, SRAM, regs[bias_base] + bias_off, 1, n, 0, 4, acc, False, "bias")
        return charge(macs, b_read, cycles)

    def run() -> int:
        if m.timing_only:
            return run_timing()
        a = a_tile(regs[a_base] + a_off)
        if a_af8:
            a = a_dec[a]
        b_addr = regs[b_base] + b_off
        if sparse:
            b, nnz, b_read = load_sparse_b(b_addr)
            macs, cycles = mm * nnz, sparse_cycles(nnz)
        else:
            b = b_tile(b_addr)
            b_read, macs, cycles = k * n * b_size, mm * k * n, dense_cycles
        if b_af8:
            b = b_dec[b]
        if trans_b:
            b = b.T
        d = d_tile(regs[d_base] + d_off)
        if exact:
            p = np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
        elif not (acc_flag or has_bias):
            p = None  # matmul writes straight into SRAM (numpy copes with overlapping operands)
        else:
            p = np.matmul(a, b)
        if p is None:
            np.matmul(a, b, out=d)
        elif has_bias:
            bias = bias_tile(regs[bias_base] + bias_off)
            if acc_flag:
                np.add(d, p, out=p)
            np.add(p, bias, out=d)
        elif acc_flag:
            np.add(d, p, out=d)
        else:
            d[...] = p
        return charge(macs, b_read, cycles)

    return run


FACTORIES = {"matmul": compile_matmul}
