"""Tiling of strided tensor views into the 2-D tiles (rows x cols, row stride) that instructions take."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from edgebert.compiler.views import View

MAX_FIELD = 0xFFFF  # rows, cols and strides are 16-bit instruction fields


@dataclass(frozen=True)
class Tile:
    """One tile of several operands: per-operand element offsets and row strides, common rows x cols."""

    offsets: tuple[int, ...]
    row_strides: tuple[int, ...]  # 0 means packed (or a single row)
    rows: int
    cols: int
    bcast: str  # broadcast mode of the last operand when it is the `b` of a binary op, else "none"


def _merged_dims(views: list[View]) -> tuple[list[int], list[list[int]]]:
    """Dims (sizes) and per-view strides with size-1 dims dropped and contiguous neighbours merged."""
    ref = views[0]
    order = sorted((a for a in range(len(ref.shape)) if ref.shape[a] != 1), key=lambda a: (-abs(ref.strides[a]), a))
    sizes = [ref.shape[a] for a in order]
    strides = [[v.strides[a] for a in order] for v in views]
    k = 0
    while k + 1 < len(sizes):
        if all(st[k] == st[k + 1] * sizes[k + 1] for st in strides):
            sizes[k] *= sizes[k + 1]
            for st in strides:
                st[k] = st[k + 1]
                del st[k + 1]
            del sizes[k + 1]
        else:
            k += 1
    return sizes, strides


def _role_ok(sr: int | None, sc: int | None, rows: int, cols: int, is_b: bool) -> str | None:
    """The broadcast mode under which an operand with strides (sr, sc) fits a tile, or None."""
    col_unit = sc is None or cols == 1 or sc == 1
    row_ok = sr is None or rows == 1 or (0 < sr <= MAX_FIELD)
    if col_unit and row_ok:
        return "none"
    if not is_b:
        return None
    if (sr is None or rows == 1 or sr == 0) and (sc is None or cols == 1 or sc == 0):
        return "scalar"
    if sr == 0 and col_unit:
        return "row"
    if (sc == 0) and (sr is None or rows == 1 or sr == 1):
        return "col"
    return None


def plan_tiles(views: list[View], b_last: bool = False) -> list[Tile]:
    """Cover the common shape of `views` (dst first) with as few tiles as the strides allow.

    The last view may be broadcast (`bcast` row/col/scalar) when `b_last`; all others must be dense along
    the tile's columns with a positive row stride. Size-1 tiles always fit, so this never fails.
    """
    sizes, strides = _merged_dims(views)
    n = len(sizes)
    dims: list[int | None] = [*range(n), None]
    candidates = [(r, c) for r in dims for c in dims if r is None or r != c]
    # biggest tiles first; prefer the innermost dims (r < c keeps rows outside columns) on ties
    candidates.sort(
        key=lambda rc: (
            -(sizes[rc[0]] if rc[0] is not None else 1) * (sizes[rc[1]] if rc[1] is not None else 1),
            -(rc[1] if rc[1] is not None else -1),
            -(rc[0] if rc[0] is not None else -1),
        )
    )
    for r, c in candidates:
        rows = sizes[r] if r is not None else 1
        cols = sizes[c] if c is not None else 1
        modes = []
        for i, st in enumerate(strides):
            sr = st[r] if r is not None else None
            sc = st[c] if c is not None else None
            mode = _role_ok(sr, sc, rows, cols, b_last and i == len(strides) - 1)
            if mode is None:
                break
            modes.append(mode)
        else:
            return list(_enumerate(sizes, strides, views, r, c, modes[-1] if b_last else "none"))
    raise AssertionError("unreachable: 1x1 tiles always fit")


def _bases(sizes: list[int], strides: list[list[int]], views: list[View], loop_dims: list[int]) -> Iterator[list[int]]:
    """Per index of the dims a tile does not cover (outermost first): each view's element offset there."""
    for idx in itertools.product(*(range(sizes[d]) for d in loop_dims)):
        yield [v.offset + sum(i * st[d] for i, d in zip(idx, loop_dims, strict=True))
               for v, st in zip(views, strides, strict=True)]


def _enumerate(sizes, strides, views, r, c, bcast) -> Iterator[Tile]:
    rows_total = sizes[r] if r is not None else 1
    cols_total = sizes[c] if c is not None else 1
    for base in _bases(sizes, strides, views, [d for d in range(len(sizes)) if d not in (r, c)]):
        for r0 in range(0, rows_total, MAX_FIELD):
            rows = min(MAX_FIELD, rows_total - r0)
            for c0 in range(0, cols_total, MAX_FIELD):
                cols = min(MAX_FIELD, cols_total - c0)
                offs = []
                rstr = []
                for b, st in zip(base, strides, strict=True):
                    sr = st[r] if r is not None else 0
                    sc = st[c] if c is not None else 0
                    offs.append(b + r0 * sr + c0 * sc)
                    rstr.append(sr if rows > 1 and sr != cols else 0)
                yield Tile(tuple(offs), tuple(rstr), rows, cols, bcast)


def row_tiles(views: list[View]) -> list[Tile]:
    """Tiles for a row-wise op (softmax, layer norm, gather): the last dim stays whole and contiguous.

    Returns an empty list when some view's last dim is not contiguous (the caller copies first).
    """
    last = [v.strides[-1] for v in views]
    if views[0].shape[-1] > 1 and any(s != 1 for s in last):
        return []
    cols = views[0].shape[-1]
    lead = [View(v.buffer, v.offset, v.shape[:-1] or (1,), v.strides[:-1] or (0,), v.dtype) for v in views]
    sizes, strides = _merged_dims(lead)
    if not sizes:
        sizes, strides = [1], [[0] for _ in views]
    r = len(sizes) - 1
    if any(st[r] <= 0 or st[r] > MAX_FIELD for st in strides) and sizes[r] > 1:
        r = None
    tiles = []
    rows_total = sizes[r] if r is not None else 1
    for base in _bases(sizes, strides, views, [d for d in range(len(sizes)) if d != r]):
        for r0 in range(0, rows_total, MAX_FIELD):
            rows = min(MAX_FIELD, rows_total - r0)
            offs = tuple(b + (r0 * st[r] if r is not None else 0) for b, st in zip(base, strides, strict=True))
            rstr = tuple((st[r] if r is not None and rows > 1 and st[r] != cols else 0) for st in strides)
            tiles.append(Tile(offs, rstr, rows, cols, "none"))
    return tiles
