"""Strided views and tiling against numpy: reshapes/transposes as address arithmetic, tiles covering ops."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebert.compiler.tile_ir import Buffer
from edgebert.compiler.tiling import plan_tiles
from edgebert.compiler.views import View, fresh_view, reshape_strides


def _gather(mem: np.ndarray, v: View) -> np.ndarray:
    idx = v.offset + sum(
        np.arange(d).reshape([-1 if k == i else 1 for k in range(len(v.shape))]) * s
        for i, (d, s) in enumerate(zip(v.shape, v.strides, strict=True))
    )
    return mem[np.broadcast_to(idx, v.shape)]


@st.composite
def shape_perm_reshape(draw):
    dims = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    perm = draw(st.permutations(range(len(dims))))
    n = int(np.prod(dims))
    factors = [f for f in range(1, n + 1) if n % f == 0]
    a = draw(st.sampled_from(factors))
    b = draw(st.sampled_from([f for f in range(1, n // a + 1) if (n // a) % f == 0]))
    return tuple(dims), tuple(perm), (a, b, n // a // b)


@settings(max_examples=200, deadline=None)
@given(shape_perm_reshape())
def test_reshape_is_a_view_exactly_when_numpy_can(case):
    dims, perm, new = case
    base = np.arange(int(np.prod(dims)))
    arr = base.reshape(dims).transpose(perm)
    view = fresh_view(Buffer("b", base.size * 4, "act"), dims, "f32").permute(perm)
    strides = reshape_strides(view.shape, view.strides, new)
    want = arr.reshape(new)
    if strides is None:
        assert not np.shares_memory(want, arr) or want.size <= 1
    else:
        got = _gather(base, View(view.buffer, 0, new, strides, "f32"))
        assert np.array_equal(got, want)


def _apply(mem, tiles, views, op):
    """Run a binary op tile by tile with the ISA's semantics (row strides, `bcast` of b)."""
    d, a, b = views
    for t in tiles:

        def grid(v_off, stride, rows, cols):
            s = stride or cols
            return v_off + np.arange(rows)[:, None] * s + np.arange(cols)[None, :]

        av = mem[grid(t.offsets[1], t.row_strides[1], t.rows, t.cols)]
        if t.bcast == "none":
            bv = mem[grid(t.offsets[2], t.row_strides[2], t.rows, t.cols)]
        elif t.bcast == "row":
            bv = mem[t.offsets[2] + np.arange(t.cols)][None, :]
        elif t.bcast == "col":
            bv = mem[t.offsets[2] + np.arange(t.rows)][:, None]
        else:
            bv = mem[t.offsets[2]]
        mem[grid(t.offsets[0], t.row_strides[0], t.rows, t.cols)] = op(av, bv)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_binary_tiles_compute_numpy_broadcasting(shape, data):
    shape = tuple(shape)
    nd = len(shape)
    b_shape = tuple(d if data.draw(st.booleans()) else 1 for d in shape)
    a_perm = tuple(data.draw(st.permutations(range(nd))))
    n = int(np.prod(shape))
    rng = np.random.default_rng(0)
    mem = rng.standard_normal(3 * n + 8)
    buf = Buffer("m", mem.size * 8, "act")
    a_phys = fresh_view(buf, tuple(shape[p] for p in a_perm), "f32")
    inv = tuple(np.argsort(a_perm))
    a = View(buf, 0, shape, tuple(a_phys.strides[i] for i in inv), "f32")
    b = View(buf, n, b_shape, fresh_view(buf, b_shape, "f32").strides, "f32").broadcast_to(shape)
    dst = View(buf, 2 * n, shape, fresh_view(buf, shape, "f32").strides, "f32")
    want = _gather(mem, a) - _gather(mem, b)
    _apply(mem, plan_tiles([dst, a, b], b_last=True), (dst, a, b), np.subtract)
    assert np.allclose(_gather(mem, dst), want)


def test_broadcast_rows_use_one_instruction():
    buf = Buffer("m", 1 << 16, "act")
    dst = fresh_view(buf, (12, 128, 128), "f32")
    mask = View(buf, 0, (1, 1, 128), (0, 0, 1), "f32").broadcast_to((12, 128, 128))
    tiles = plan_tiles([dst, dst, mask], b_last=True)
    assert len(tiles) == 1 and tiles[0].bcast == "row" and tiles[0].rows == 12 * 128
