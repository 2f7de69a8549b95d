"""Strided tensor views over buffers: reshapes, transposes, broadcasts and slices as address arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

from edgebert.compiler.tile_ir import ITEMSIZE, Buffer


@dataclass(frozen=True)
class View:
    """An N-D tensor: element (i0, i1, ...) lives at buffer + itemsize * (offset + sum(i_k * strides[k]))."""

    buffer: Buffer
    offset: int  # elements
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # elements; 0 along broadcast dimensions
    dtype: str  # storage dtype: "f32" or "i32"

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def is_contiguous(self) -> bool:
        return self.strides == contiguous_strides(self.shape) or self.size <= 1

    def permute(self, axes: tuple[int, ...]) -> View:
        return View(
            self.buffer,
            self.offset,
            tuple(self.shape[a] for a in axes),
            tuple(self.strides[a] for a in axes),
            self.dtype,
        )

    def broadcast_to(self, shape: tuple[int, ...]) -> View:
        """Numpy broadcasting: prepend size-1 dims, then stretch size-1 dims with stride 0."""
        pad = len(shape) - len(self.shape)
        if pad < 0:
            raise ValueError(f"cannot broadcast {self.shape} to {shape}")
        src_shape = (1,) * pad + self.shape
        src_strides = (0,) * pad + self.strides
        strides = []
        for s_dim, d_dim, st in zip(src_shape, shape, src_strides, strict=True):
            if s_dim == d_dim:
                strides.append(st if d_dim != 1 else 0)
            elif s_dim == 1:
                strides.append(0)
            else:
                raise ValueError(f"cannot broadcast {self.shape} to {shape}")
        return View(self.buffer, self.offset, tuple(shape), tuple(strides), self.dtype)

    def reshape(self, shape: tuple[int, ...]) -> View | None:
        """The same elements with a new shape as a view, or None when a copy is needed."""
        strides = reshape_strides(self.shape, self.strides, shape)
        if strides is None:
            return None
        return View(self.buffer, self.offset, tuple(shape), strides, self.dtype)

    def index(self, axis: int, start: int, count: int, step: int = 1) -> View:
        """Elements start, start+step, ... (count of them) along `axis`."""
        shape = list(self.shape)
        strides = list(self.strides)
        offset = self.offset + start * strides[axis]
        shape[axis] = count
        strides[axis] = strides[axis] * step
        return View(self.buffer, offset, tuple(shape), tuple(strides), self.dtype)

    def extent_bytes(self) -> tuple[int, int]:
        """(first byte offset, one past the last byte) touched, relative to the buffer start."""
        lo = self.offset
        hi = self.offset
        for d, s in zip(self.shape, self.strides, strict=True):
            if d > 1:
                if s >= 0:
                    hi += (d - 1) * s
                else:
                    lo += (d - 1) * s
        return lo * self.itemsize, (hi + 1) * self.itemsize


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    acc = 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def fresh_view(buffer: Buffer, shape: tuple[int, ...], dtype: str, order: tuple[int, ...] | None = None) -> View:
    """A dense view of a new buffer; `order` lists the dims from outermost to innermost in memory."""
    order = order or tuple(range(len(shape)))
    physical = tuple(shape[a] for a in order)
    pstrides = contiguous_strides(physical)
    strides = [0] * len(shape)
    for pos, axis in enumerate(order):
        strides[axis] = pstrides[pos]
    return View(buffer, 0, tuple(shape), tuple(strides), dtype)


def memory_order(view: View) -> tuple[int, ...]:
    """The dims of `view` sorted from the largest stride to the smallest (ties keep logical order)."""
    return tuple(sorted(range(len(view.shape)), key=lambda a: (-view.strides[a], a)))


def reshape_strides(shape: tuple[int, ...], strides: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...] | None:
    """Strides giving `new` over the same row-major element order, or None (numpy's no-copy reshape rule)."""
    old = [(d, s) for d, s in zip(shape, strides, strict=True) if d != 1]
    new_nz = [d for d in new if d != 1]
    out: list[int] = []
    i = j = 0
    while i < len(old) and j < len(new_nz):
        np_, op = new_nz[j], old[i][0]
        ni, oi = j + 1, i + 1
        while np_ != op:
            if np_ < op:
                np_ *= new_nz[ni]
                ni += 1
            else:
                op *= old[oi][0]
                oi += 1
        # old dims i..oi-1 must be mutually contiguous
        for k in range(i, oi - 1):
            if old[k][1] != old[k + 1][0] * old[k + 1][1]:
                return None
        st = old[oi - 1][1]
        chunk = []
        for k in range(ni - 1, j - 1, -1):
            chunk.append(st)
            st *= new_nz[k]
        out.extend(reversed(chunk))
        i, j = oi, ni
    if (i != len(old) or j != len(new_nz)) and (any(d != 1 for d in new_nz[j:]) or old[i:]):
        return None
    result = []
    it = iter(out)
    for d in new:
        result.append(0 if d == 1 else next(it))
    return tuple(result)
