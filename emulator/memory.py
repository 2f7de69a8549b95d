"""Emulated memories: flat byte spaces with typed views, and bounds/alignment-checked tile views."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.table import DTYPES, SPACES

DRAM, ENVM, SRAM = (SPACES.index(s) for s in ("dram", "envm", "sram"))
SPACE_INDEX = {name: i for i, name in enumerate(SPACES)}
#: Element size in bytes of each DTYPES entry (f32, af8, i32, u8).
ELEMENT_BYTES = tuple({"f32": 4, "af8": 1, "i32": 4, "u8": 1}[d] for d in DTYPES)

#: One recorded memory access, for race detection:
#: (space, byte address, rows, row pitch in bytes, bytes per row, is_write).
Access = tuple[int, int, int, int, int, bool]


class Fault(Exception):
    """A trap raised inside an instruction's semantics; the run loop adds the PC and instruction."""


class DirtyRanges:
    """(space, lo, hi) byte ranges a run wrote, kept bounded however long the run: repeats are dropped, and past
    `limit` ranges each space collapses to one range covering all of its writes (reset then clears a bit more)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.ranges: dict[tuple[int, int, int], None] = {}

    def append(self, item: tuple[int, int, int]) -> None:
        ranges = self.ranges
        ranges[item] = None
        if len(ranges) > self.limit:
            cover: dict[int, tuple[int, int]] = {}
            for space, lo, hi in ranges:
                a, b = cover.get(space, (lo, hi))
                cover[space] = (min(a, lo), max(b, hi))
            self.ranges = {(space, lo, hi): None for space, (lo, hi) in cover.items()}

    def __iter__(self):
        return iter(list(self.ranges))

    def __len__(self) -> int:
        return len(self.ranges)


class Memories:
    """The three memory spaces as zero-filled uint8 arrays with float32/int32 views of the same bytes."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.sizes = [hw.memory.level(s).size_bytes for s in SPACES]
        # np.zeros is calloc-backed: a 1 GiB DRAM costs nothing until pages are touched.
        self.u8 = [np.zeros(size, dtype=np.uint8) for size in self.sizes]
        self.f32 = [buf[: len(buf) // 4 * 4].view(np.float32) for buf in self.u8]
        self.i32 = [buf[: len(buf) // 4 * 4].view(np.int32) for buf in self.u8]
        #: Optional byte masks of initialized memory (1 = written since reset), see `track_initialized`.
        self.initialized: list[np.ndarray] | None = None

    def track_initialized(self) -> None:
        """Start tracking which bytes were ever written (call before loading segments and inputs)."""
        self.initialized = [np.zeros(size, dtype=np.uint8) for size in self.sizes]

    def check_initialized(self, accesses: list[Access]) -> None:
        """Fault on a read of never-written bytes, then mark the written ones (reads come first)."""
        masks = self.initialized
        assert masks is not None
        for space, address, rows, pitch, row_bytes, write in accesses:
            if not write and rows and row_bytes:
                view = byte_view(masks[space], address, rows, pitch, row_bytes)
                if not view.all():
                    r, c = np.argwhere(view == 0)[0]
                    raise Fault(f"read of uninitialized {SPACES[space]} byte {address + r * pitch + c:#x}")
        for space, address, rows, pitch, row_bytes, write in accesses:
            if write and rows and row_bytes:
                byte_view(masks[space], address, rows, pitch, row_bytes)[...] = 1

    def write_bytes(self, space: int, address: int, data: bytes | np.ndarray) -> None:
        """Copy raw bytes into a space (segments, inputs); raises Fault when out of range."""
        raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data.view(np.uint8)
        raw = raw.reshape(-1)
        check_range(self.sizes[space], space, address, len(raw), "data")
        self.u8[space][address : address + len(raw)] = raw
        if self.initialized is not None:
            self.initialized[space][address : address + len(raw)] = 1

    def read_bytes(self, space: int, address: int, nbytes: int) -> np.ndarray:
        """A copy of `nbytes` raw bytes of a space."""
        check_range(self.sizes[space], space, address, nbytes, "data")
        return self.u8[space][address : address + nbytes].copy()


def byte_view(buf: np.ndarray, address: int, rows: int, pitch: int, row_bytes: int) -> np.ndarray:
    """The (rows, row_bytes) byte view of a recorded access (already bounds-checked)."""
    return as_strided(buf[address:], shape=(rows, row_bytes), strides=(pitch, 1))


def check_range(size: int, space: int, address: int, nbytes: int, what: str) -> None:
    """Fault unless [address, address + nbytes) lies inside a space of `size` bytes."""
    if address < 0 or address + nbytes > size:
        raise Fault(
            f"{what} [{address:#x}, {address + nbytes:#x}) lies outside {SPACES[space]} ({size:#x} bytes)"
        )


def tile(
    buf: np.ndarray | None,
    size: int,
    space: int,
    address: int,
    rows: int,
    cols: int,
    stride: int,
    itemsize: int,
    acc: list[Access],
    write: bool,
    what: str,
) -> np.ndarray:
    """A (rows, cols) view of typed array `buf` at byte `address`, row stride `stride` elements (0: packed).

    Checks natural alignment and bounds, and records the access in `acc` for race detection. With `buf` None
    (timing-only runs) only checks and records, and returns None.
    """
    if address % itemsize:
        raise Fault(f"misaligned {what}: address {address:#x} is not a multiple of {itemsize}")
    pitch = stride or cols
    extent = (rows - 1) * pitch + cols if rows and cols else 0
    if address < 0 or address + extent * itemsize > size:
        raise Fault(
            f"{what} tile [{address:#x}, {address + extent * itemsize:#x}) lies outside "
            f"{SPACES[space]} ({size:#x} bytes)"
        )
    acc.append((space, address, rows, pitch * itemsize, cols * itemsize, write))
    if buf is None:
        return None  # type: ignore[return-value]
    i = address // itemsize
    if pitch == cols:
        return buf[i : i + rows * cols].reshape(rows, cols)
    if pitch > cols and i + rows * pitch <= len(buf):
        return buf[i : i + rows * pitch].reshape(rows, pitch)[:, :cols]
    return as_strided(buf[i:], shape=(rows, cols), strides=(pitch * itemsize, itemsize), writeable=write)


class Tiles:
    """`tile` of one operand of one instruction, memoised by address: the checks, the recorded access and the
    view depend on nothing else (the memories never move), and a program reuses few addresses per instruction.
    At most `limit` addresses are kept (a loop walking memory does not grow the memo without bound)."""

    __slots__ = ("buf", "size", "space", "shape", "itemsize", "acc", "write", "what", "memo", "limit")

    def __init__(
        self, buf: np.ndarray, size: int, space: int, rows: int, cols: int, stride: int, itemsize: int,
        acc: list[Access], write: bool, what: str, limit: int = 64,
    ) -> None:
        self.buf, self.size, self.space, self.itemsize = buf, size, space, itemsize
        self.shape = (rows, cols, stride)
        self.acc, self.write, self.what = acc, write, what
        self.memo: dict[int, tuple[np.ndarray, Access]] = {}
        self.limit = limit

    def __call__(self, address: int) -> np.ndarray:
        """The view at byte `address` (its access recorded), as `tile` gives it; faults as `tile` does."""
        hit = self.memo.get(address)
        if hit is None:
            rows, cols, stride = self.shape
            recorded: list[Access] = []
            view = tile(self.buf, self.size, self.space, address, rows, cols, stride, self.itemsize, recorded,
                        self.write, self.what)
            if len(self.memo) >= self.limit:
                self.memo.clear()
            hit = self.memo[address] = (view, recorded[0])
        self.acc.append(hit[1])
        return hit[0]


def word_address(size: int, space: int, address: int, what: str) -> int:
    """Index of the aligned 4-byte word at `address` (checked)."""
    if address % 4:
        raise Fault(f"misaligned {what}: address {address:#x} is not a multiple of 4")
    check_range(size, space, address, 4, what)
    return address // 4


def accesses_overlap(a: Access, b: Access) -> bool:
    """Whether two recorded accesses touch a common byte (exact for strided tiles)."""
    if a[0] != b[0]:
        return False
    a_lo, a_hi = a[1], a[1] + (a[2] - 1) * a[3] + a[4] if a[2] else a[1]
    b_lo, b_hi = b[1], b[1] + (b[2] - 1) * b[3] + b[4] if b[2] else b[1]
    if a_hi <= a_lo or b_hi <= b_lo or a_hi <= b_lo or b_hi <= a_lo:
        return False
    a_solid = a[2] == 1 or a[3] <= a[4]
    b_solid = b[2] == 1 or b[3] <= b[4]
    if a_solid and b_solid:
        return True
    if b_solid:
        a, b = b, a
    # b is a set of disjoint, sorted row intervals; test every row of a against it.
    b_starts = b[1] + np.arange(b[2], dtype=np.int64) * b[3]
    b_ends = b_starts + b[4]
    if a_solid:
        a_starts = np.array([a[1]], dtype=np.int64)
        a_ends = np.array([a_hi], dtype=np.int64)
    else:
        a_starts = a[1] + np.arange(a[2], dtype=np.int64) * a[3]
        a_ends = a_starts + a[4]
    j = np.searchsorted(b_ends, a_starts, side="right")
    inside = j < len(b_starts)
    return bool(np.any(b_starts[np.minimum(j, len(b_starts) - 1)][inside] < a_ends[inside]))
