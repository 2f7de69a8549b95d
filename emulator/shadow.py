"""Timing-only provenance of memory bytes: which transfer last wrote them, so sparse-matmul masks can be found.

In timing-only mode data-path instructions move no bytes, yet a sparse matmul's cost depends on the number of
set bits of its b mask in SRAM. Every write is logged here instead: a DMA copy (`ld`/`st`) as "these bytes came
from there", an `sw` as "real" (the word was really written), anything computed (PU, SFU, `gather`) as opaque.
Resolving a byte range walks the log backwards (newest writer first), follows copies to their sources as they
were at the time, and ends in memory that holds real bytes (data segments, inputs, `sw` words). A mask that
resolves to computed data is an error: its nnz is not knowable without the numerics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgebert.emulator.memory import SRAM, Access, Fault

if TYPE_CHECKING:
    from edgebert.emulator.machine import Machine

#: Record kinds by mnemonic (instructions that write memory); others write nothing.
COPY, REAL, OPAQUE = "copy", "real", "opaque"
_COPIES = {"ld", "st"}
_REAL = {"sw"}

#: One log record: (sequence number, lo, hi, rows, pitch, row bytes, source) with source None (computed),
#: REAL (memory holds the bytes) or (source space, source address, source pitch).
Record = tuple[int, int, int, int, int, int, object]
#: A resolved piece of real memory: (space, address, bytes).
Piece = tuple[int, int, int]


def shadow_kind(mnemonic: str) -> str:
    """How an instruction's writes are logged in timing-only mode."""
    if mnemonic in _COPIES:
        return COPY
    if mnemonic in _REAL:
        return REAL
    return OPAQUE


class ShadowLog:
    """Per-space list of write records of one timing-only run, in program order."""

    def __init__(self, nspaces: int) -> None:
        self.records: list[list[Record]] = [[] for _ in range(nspaces)]
        self.seq = 0

    def log(self, kind: str, acc: list[Access]) -> None:
        """Log the write accesses of one instruction (`acc` as recorded by its handler)."""
        self.seq += 1
        if kind == COPY:
            src, dst = acc[0], acc[1]
            if dst[2] and dst[4]:
                self._add(dst, (src[0], src[1], src[3]))
            return
        for a in acc:
            if a[5] and a[2] and a[4]:
                self._add(a, REAL if kind == REAL else None)

    def _add(self, a: Access, source: object) -> None:
        space, lo, rows, pitch, row_bytes = a[0], a[1], a[2], a[3], a[4]
        self.records[space].append((self.seq, lo, lo + (rows - 1) * pitch + row_bytes, rows, pitch, row_bytes, source))

    def resolve(self, space: int, lo: int, hi: int, before: int | None = None) -> tuple[list[Piece], bool]:
        """Real-memory pieces holding bytes [lo, hi) of `space` as of record `before` (default: now).

        Returns the pieces in address order of the request and whether no `sw` word was involved (then the
        bytes come from segments/inputs only). Faults when a byte was last written by a computing instruction.
        """
        out: list[tuple[int, Piece]] = []
        stable = self._resolve(space, lo, hi, self.seq + 1 if before is None else before, lo, out)
        out.sort(key=lambda x: x[0])
        return [p for _, p in out], stable

    def _resolve(self, space: int, lo: int, hi: int, before: int, origin: int, out: list[tuple[int, Piece]]) -> bool:
        stable = True
        pending = [(lo, hi)]
        records = self.records[space]
        for i in range(len(records) - 1, -1, -1):
            if not pending:
                break
            seq, rlo, rhi, rows, pitch, row_bytes, source = records[i]
            if seq >= before:
                continue
            left: list[tuple[int, int]] = []
            for a, b in pending:
                if b <= rlo or a >= rhi:
                    left.append((a, b))
                    continue
                solid = rows == 1 or pitch == row_bytes and (not isinstance(source, tuple) or source[2] == pitch)
                if solid:
                    pieces = [(0, rlo, rhi)]  # one row spanning the record
                    eff_pitch = 0
                else:
                    first, last = max(0, (a - rlo) // pitch), min(rows - 1, (b - 1 - rlo) // pitch)
                    pieces = [(r, rlo + r * pitch, rlo + r * pitch + row_bytes) for r in range(first, last + 1)]
                    eff_pitch = pitch
                cursor = a
                for r, x0, x1 in pieces:
                    x, y = max(a, x0), min(b, x1)
                    if x >= y:
                        continue
                    if x > cursor:
                        left.append((cursor, x))
                    cursor = y
                    if source is None:
                        raise Fault(
                            f"timing-only: {_space_name(space)} bytes [{x:#x}, {y:#x}) were computed by the program, "
                            "not loaded (a sparse mask must come from memory); run without timing_only"
                        )
                    if source == REAL:
                        out.append((origin + (x - lo), (space, x, y - x)))
                        stable = False
                    else:
                        s_space, s_addr, s_pitch = source  # type: ignore[misc]
                        sx = s_addr + (r * s_pitch if eff_pitch else 0) + (x - x0)
                        stable &= self._resolve(s_space, sx, sx + (y - x), seq, origin + (x - lo), out)
                if cursor < b:
                    left.append((cursor, b))
            pending = left
        for a, b in pending:
            out.append((origin + (a - lo), (space, a, b - a)))
        return stable


def _space_name(space: int) -> str:
    from edgebert.isa.table import SPACES

    return SPACES[space]


def sparse_nnz(m: Machine, address: int, mask_bytes: int, nbits: int) -> int:
    """Set bits among the first `nbits` of the SRAM mask at `address`, found through the shadow log."""
    pieces, stable = m.shadow.resolve(SRAM, address, address + mask_bytes)
    key = (tuple(pieces), nbits)
    cache = m.nnz_cache
    if stable and key in cache:
        return cache[key]
    raw = np.concatenate([m.mem.u8[s][a : a + n] for s, a, n in pieces]) if len(pieces) != 1 else (
        m.mem.u8[pieces[0][0]][pieces[0][1] : pieces[0][1] + pieces[0][2]]
    )
    full, rest = divmod(nbits, 8)
    nnz = int(np.bitwise_count(raw[:full]).sum(dtype=np.int64))
    if rest:
        nnz += int(raw[full] & ((1 << rest) - 1)).bit_count()
    if stable and all(m.is_constant(s, a, n) for s, a, n in pieces):
        cache[key] = nnz
    return nnz
