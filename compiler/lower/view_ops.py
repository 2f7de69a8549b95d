"""Plain-op handlers for data movement the encoder zoo adds: `split` (question-answering heads), `strided_slice`
(MobileBERT's shifted embeddings), constant-mode `nn.pad`, and gathers with constant indices (`gather_nd`,
`gather_elements`). A result is a strided view of its input where strides express it (no instruction), a `vmov`
copy otherwise; pad writes its constant border with `ld`s from one eNVM constant and copies the input inside.
`VIEW_OPS` maps relax op names to handlers (compiler/lower/op_table.py merges it with the others).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.lower.core import Const, Dest, Lowerer, Scope, Tensor, shape_of
from edgebert.compiler.views import View
from edgebert.isa.errors import CompileError

#: Copies a non-affine gather may emit (one `vmov` per contiguous run) before it is refused.
MAX_GATHER_COPIES = 4096


def _ints(expr: Any) -> list[int]:
    """The integers of a Relax tuple / shape argument (PrimValues or IntImms)."""
    fields = getattr(expr, "fields", None)
    if fields is None:
        fields = getattr(expr, "values", [])
    return [int(getattr(getattr(f, "value", f), "value", getattr(f, "value", f))) for f in fields]


def _h_split(scope: Scope, var, expr, args):
    """A tuple of views, one per part along `axis` (the parts' sizes as Relax inferred them: uneven sections too)."""
    x = args[0]
    shape = x.array.shape if isinstance(x, Const) else x.shape
    axis = int(expr.attrs.axis) % len(shape)
    sizes = [shape_of_type(t)[axis] for t in var.ty.fields]
    bounds = np.cumsum([0, *sizes]).tolist()
    if bounds[-1] != shape[axis]:
        raise CompileError(f"binding '{var.name}': split parts {sizes} do not add up to {shape[axis]}")
    if isinstance(x, Const):
        return tuple(Const(np.take(x.array, range(b, e), axis=axis), x.dtype)
                     for b, e in zip(bounds[:-1], bounds[1:], strict=True))
    return tuple(Tensor(x.view.index(axis, b, e - b), x.dtype) for b, e in zip(bounds[:-1], bounds[1:], strict=True))


def shape_of_type(ty: Any) -> tuple[int, ...]:
    """The static shape of a tensor type."""
    try:
        return tuple(int(d) for d in ty.shape.values)
    except (AttributeError, TypeError):
        raise CompileError("split part: shape is not static") from None


def _h_strided_slice(scope: Scope, var, expr, args):
    """x[begin:end:stride] along the given axes: a view (negative strides through a copy of each row)."""
    x = args[0]
    axes, begin, end = (_ints(a) for a in expr.args[1:4])
    strides = _ints(expr.args[4]) if len(expr.args) > 4 and expr.args[4] is not None else [1] * len(axes)
    shape = x.array.shape if isinstance(x, Const) else x.shape
    index = [slice(None)] * len(shape)
    for axis, b, e, st in zip(axes, begin, end, strides, strict=True):
        index[axis % len(shape)] = slice(b, e, st)
    if isinstance(x, Const):
        return Const(np.ascontiguousarray(x.array[tuple(index)]), x.dtype)
    view = x.view
    for axis, sl in enumerate(index):
        start, stop, step = sl.indices(shape[axis])
        count = len(range(start, stop, step))
        if step < 0:
            return _copy_gather(scope.low, Dest.of(var), x, _slice_sources(shape, index))
        view = view.index(axis, start, count, step)
    return _shaped(scope.low, Tensor(view, x.dtype), shape_of(var), var.name)


def _shaped(low: Lowerer, t: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
    """`t` viewed with `shape` (same elements in row-major order), through a dense copy when no strides express it."""
    if t.shape == tuple(shape):
        return t
    view = t.view.reshape(tuple(shape))
    if view is None:
        view = low.dense_copy(t, name).view.reshape(tuple(shape))
    return Tensor(view, t.dtype)


def _slice_sources(shape: tuple[int, ...], index: list[slice]) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape)[tuple(index)]


def _h_pad(scope: Scope, var, expr, args):
    """Constant-mode pad: the border regions loaded from one constant of the pad value, the input copied inside."""
    x = args[0]
    attrs = expr.attrs
    if str(attrs.pad_mode) != "constant":
        raise CompileError(f"binding '{var.name}': pad mode {attrs.pad_mode} (constant only)")
    widths = [int(w) for w in attrs.pad_width]
    shape = x.array.shape if isinstance(x, Const) else x.shape
    before, after = widths[0::2], widths[1::2]
    if min(widths) < 0:
        raise CompileError(f"binding '{var.name}': negative pads {widths}")
    value = float(attrs.pad_value)
    if isinstance(x, Const):
        return Const(np.pad(x.array, list(zip(before, after, strict=True)), constant_values=value), x.dtype)
    low = scope.low
    out_shape = shape_of(var)
    out = low.new_tensor(var.name, out_shape, x.dtype)
    for axis in range(len(shape)):
        for start, count in ((0, before[axis]), (before[axis] + shape[axis], after[axis])):
            if count:
                region = out.view.index(axis, start, count)
                fill = low.const_buffer(np.full(region.shape, value, np.float32), "float32")
                em.emit_dma(low.prog, "ld", region, fill)
    inner = out.view
    for axis in range(len(shape)):
        inner = inner.index(axis, before[axis], shape[axis])
    em.emit_unary(low.prog, "vmov", inner, x.view)
    return out


def _h_gather_nd(scope: Scope, var, expr, args):
    data, idx = args
    if not isinstance(idx, Const):
        raise CompileError(f"binding '{var.name}': gather_nd with run-time indices")
    if int(expr.attrs.batch_dims) != 0:
        raise CompileError(f"binding '{var.name}': gather_nd with batch_dims")
    shape = data.array.shape if isinstance(data, Const) else data.shape
    ids = idx.array.astype(np.int64)
    flat = np.arange(int(np.prod(shape))).reshape(shape)[tuple(np.moveaxis(ids, -1, 0))]
    if isinstance(data, Const):
        return Const(data.array.reshape(-1)[flat], data.dtype)
    return gathered(scope.low, Dest.of(var), data, flat)


def _h_gather_elements(scope: Scope, var, expr, args):
    data, idx = args
    if not isinstance(idx, Const):
        raise CompileError(f"binding '{var.name}': gather_elements with run-time indices")
    shape = data.array.shape if isinstance(data, Const) else data.shape
    axis = int(expr.attrs.axis) % len(shape)
    ids = np.where(idx.array < 0, idx.array + shape[axis], idx.array).astype(np.int64)
    flat = np.take_along_axis(np.arange(int(np.prod(shape))).reshape(shape), ids, axis)
    if isinstance(data, Const):
        return Const(data.array.reshape(-1)[flat], data.dtype)
    return gathered(scope.low, Dest.of(var), data, flat)


def _affine(offsets: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """(offset, strides) when `offsets[i0, i1, ...] = offset + sum(i_k * strides_k)` for every index, else None."""
    nd = offsets.ndim
    base = int(offsets.reshape(-1)[0]) if offsets.size else 0
    strides = []
    for k in range(nd):
        if offsets.shape[k] > 1:
            strides.append(int(np.take(offsets, 1, axis=k).reshape(-1)[0] - base))
        else:
            strides.append(0)
    grid = np.indices(offsets.shape).reshape(nd, -1) if nd else np.zeros((0, 1), np.int64)
    want = base + (np.asarray(strides, np.int64)[:, None] * grid).sum(axis=0)
    return (base, tuple(strides)) if np.array_equal(want, offsets.reshape(-1)) else None


def gathered(low: Lowerer, dest: Dest, data: Tensor, flat: np.ndarray) -> Tensor:
    """The elements of `data` at row-major positions `flat` (shaped like the result): a view when their buffer offsets
    are affine in the result's index, else copies of contiguous runs."""
    grid = np.indices(data.shape).reshape(len(data.shape), -1)
    element = data.view.offset + (np.asarray(data.view.strides, np.int64)[:, None] * grid).sum(axis=0)
    offsets = element[flat.reshape(-1)].reshape(flat.shape)
    found = _affine(offsets)
    if found is not None and all(s >= 0 for s in found[1]):
        view = View(data.view.buffer, found[0], tuple(flat.shape), found[1], data.view.dtype)
        return _shaped(low, Tensor(view, data.dtype), dest.shape, dest.name)
    return _copy_gather(low, dest, data, flat)


def _copy_gather(low: Lowerer, dest: Dest, data: Tensor, flat: np.ndarray) -> Tensor:
    """`vmov` each output row (last axis) that is a view of `data`, element by element otherwise."""
    out = low.new_tensor(dest.name, tuple(flat.shape), data.dtype)
    grid = np.indices(data.shape).reshape(len(data.shape), -1)
    element = data.view.offset + (np.asarray(data.view.strides, np.int64)[:, None] * grid).sum(axis=0)
    rows = flat.reshape(-1, flat.shape[-1] if flat.ndim else 1)
    dst_rows = out.view.reshape(rows.shape)
    copies = 0
    for r, row in enumerate(element[rows]):
        found = _affine(row)
        runs = [(0, len(row), found)] if found is not None and found[1][0] >= 0 else \
            [(c, 1, (int(row[c]), (0,))) for c in range(len(row))]
        for c0, n, (off, st) in runs:
            copies += 1
            if copies > MAX_GATHER_COPIES:
                raise CompileError(f"binding '{dest.name}': gather with constant indices needs more than "
                                   f"{MAX_GATHER_COPIES} copies")
            src = View(data.view.buffer, off, (1, n), (0, st[0] if n > 1 else 1), data.view.dtype)
            em.emit_unary(low.prog, "vmov", dst_rows.index(0, r, 1).index(1, c0, n), src)
    return _shaped(low, out, dest.shape, dest.name)


VIEW_OPS = {
    "relax.split": _h_split,
    "relax.strided_slice": _h_strided_slice,
    "relax.nn.pad": _h_pad,
    "relax.gather_nd": _h_gather_nd,
    "relax.gather_elements": _h_gather_elements,
}

__all__ = ["VIEW_OPS", "gathered"]
