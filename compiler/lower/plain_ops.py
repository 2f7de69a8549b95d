"""Lowering of plain Relax ops, `{relax op name: handler}`, and the element-wise, row-wise and data-movement building
blocks the composite handlers share with them."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.lower.core import (
    Const,
    Dest,
    Lowerer,
    Out,
    Scope,
    Tensor,
    Value,
    is_var,
    scalar_of,
    shape_of,
)
from edgebert.compiler.lower.matmul_values import lower_matmul, matmul_shape
from edgebert.compiler.views import View
from edgebert.isa.bits import f32_bits
from edgebert.isa.errors import CompileError

COMMUTATIVE = {"vadd", "vmul", "vmax", "vmin"}


def _float_only(var: Any, *vals: Value) -> None:
    for v in vals:
        dt = v.dtype if isinstance(v, Tensor | Const) else "tuple"
        if dt not in ("float32", "bool"):
            raise CompileError(f"binding '{var.name}': {dt} arithmetic is not supported (float32 only)")


# ---- building blocks -----------------------------------------------------------------------------------------------


def binary(low: Lowerer, out: Out, mnemonic: str, a: Value, b: Value, dst: Tensor | None = None) -> Tensor:
    """a (op) b with numpy broadcasting into `dst` (default: `out`); scalar constants become immediates where exact."""
    shape = out.dest.shape if dst is None else dst.shape
    sa = a.array.reshape(-1)[0] if isinstance(a, Const) and a.array.size == 1 else None
    sb = b.array.reshape(-1)[0] if isinstance(b, Const) and b.array.size == 1 else None
    if sb is not None and isinstance(a, Tensor) and a.shape == shape:
        imm = _immediate_form(mnemonic, float(sb))
        if imm is not None:
            dst = dst or out.tensor(low, a)
            em.emit_immediate(low.prog, imm[0], dst.view, a.view, imm[1])
            return dst
    if sa is not None and isinstance(b, Tensor) and b.shape == shape and mnemonic in COMMUTATIVE:
        return binary(low, out.swapped(), mnemonic, b, a, dst)
    if sa is not None and isinstance(b, Tensor) and b.shape == shape and mnemonic == "vsub":
        dst = dst or out.swapped().tensor(low, b)
        em.emit_immediate(low.prog, "vmuli", dst.view, b.view, -1.0)
        em.emit_immediate(low.prog, "vaddi", dst.view, dst.view, float(sa))
        return dst
    name = out.dest.name
    ta = low.to_sram(a, name)
    tb = low.to_sram(b, name)
    if mnemonic in COMMUTATIVE and _zeros(ta.view.broadcast_to(shape)) > _zeros(tb.view.broadcast_to(shape)):
        ta, tb = tb, ta
        out = out.swapped()
    like = ta if ta.shape == shape else (tb if tb.shape == shape else None)
    dst = dst or out.tensor(low, like)
    em.emit_binary(low.prog, mnemonic, dst.view, ta.view.broadcast_to(shape), tb.view.broadcast_to(shape))
    return dst


def _zeros(v: View) -> int:
    return sum(1 for d, s in zip(v.shape, v.strides, strict=True) if s == 0 and d > 1)


def _immediate_form(mnemonic: str, c: float) -> tuple[str, float] | None:
    """(vaddi|vmuli, imm) computing x (op) c exactly, or None."""
    if mnemonic == "vadd":
        return "vaddi", c
    if mnemonic == "vsub":
        return "vaddi", -c
    if mnemonic == "vmul":
        return "vmuli", c
    if mnemonic == "vdiv" and c != 0 and np.isfinite(c):
        m, e = np.frexp(c)
        if m in (0.5, -0.5):  # power of two: the reciprocal is exact
            return "vmuli", 1.0 / c
    return None


def unary(low: Lowerer, out: Out, mnemonic: str, x: Value) -> Tensor:
    """op(x) element-wise (an SFU unary: gelu, tanh, exp, ...)."""
    x = low.to_sram(x, out.dest.name)
    dst = out.tensor(low, x)
    em.emit_unary(low.prog, mnemonic, dst.view, x.view)
    return dst


def softmax(low: Lowerer, out: Out, x: Value, axis: int) -> Tensor:
    """Softmax over `axis` (rows of the last axis; another axis through a transposed copy)."""
    shape = out.dest.shape
    nd = len(shape)
    x = low.to_sram(x, out.dest.name)
    if nd and axis != nd - 1:
        # softmax over another axis: copy with that axis innermost, softmax the rows, copy back
        perm = tuple(a for a in range(nd) if a != axis) + (axis,)
        moved = low.dense_copy(Tensor(x.view.permute(perm), x.dtype), f"{out.dest.name}.t")
        em.emit_row_op(low.prog, "softmax", moved.view, moved.view)
        dst = low.new_tensor(out.dest.name, shape, "float32")
        em.emit_unary(low.prog, "vmov", dst.view.permute(perm), moved.view)
        return dst
    return _row_op(low, "softmax", out.tensor(low, x), x, out.dest.name)


def _row_op(low: Lowerer, mnemonic: str, dst: Tensor, x: Tensor, name: str, rows: dict[str, View] | None = None,
            **fields: int) -> Tensor:
    """A row-wise SFU op; through a dense copy when the rows are not contiguous."""
    if not em.emit_row_op(low.prog, mnemonic, dst.view, x.view, rows, **fields):
        x = low.dense_copy(x, name)
        tmp = low.new_tensor(name, x.shape, "float32")
        em.emit_row_op(low.prog, mnemonic, tmp.view, x.view, rows, **fields)
        em.emit_unary(low.prog, "vmov", dst.view, tmp.view)
    return dst


def layer_norm(low: Lowerer, out: Out, x: Value, gamma: Value, beta: Value, axes: list[int], epsilon: float,
               scale: bool = True, center: bool = True) -> Tensor:
    """Layer norm over trailing `axes` (several are viewed as one row)."""
    name = out.dest.name
    shape = x.array.shape if isinstance(x, Const) else x.shape
    nd = len(shape)
    norm = sorted(a % nd for a in axes)
    if norm != list(range(nd - len(norm), nd)):
        raise CompileError(f"binding '{name}': layer_norm over axes {axes} (trailing axes only)")
    if len(norm) > 1:  # normalise trailing axes together: view them as one row
        n = int(np.prod(shape[nd - len(norm) :]))
        flat = shape[: nd - len(norm)] + (n,)
        xt = low.to_sram(x, name)
        xv = xt.view.reshape(flat) or low.dense_copy(xt, name).view.reshape(flat)
        gb = [
            Const(v.array.reshape(n), "float32")
            if isinstance(v, Const)
            else Tensor(low.dense_copy(v, name).view.reshape((n,)), "float32")
            for v in (gamma, beta)
        ]
        dst = low.new_tensor(name, tuple(shape), "float32")
        _layer_norm_rows(low, Out(Dest(name, flat)), Tensor(xv, "float32"), gb[0], gb[1], epsilon, scale, center,
                         Tensor(dst.view.reshape(flat), "float32"))
        return dst
    return _layer_norm_rows(low, out, x, gamma, beta, epsilon, scale, center)


def _layer_norm_rows(low: Lowerer, out: Out, x: Value, gamma: Value, beta: Value, epsilon: float, scale: bool,
                     center: bool, dst: Tensor | None = None) -> Tensor:
    name = out.dest.name
    n = out.dest.shape[-1]
    g = gamma if scale else Const(np.ones(n, np.float32), "float32")
    bt = beta if center else Const(np.zeros(n, np.float32), "float32")
    rows = {}
    for key, val in (("gamma", g), ("beta", bt)):
        if isinstance(val, Const):
            val = Const(np.broadcast_to(val.array, (n,)).astype(np.float32), "float32")
        t = low.to_sram(val, f"{name}.{key}")
        if t.view.size != n and not (t.shape[-1] == n and t.view.size == n):
            raise CompileError(f"binding '{name}': {key} must hold one row of {n} elements")
        if t.view.strides[-1] != 1:
            t = low.dense_copy(t, f"{name}.{key}")
        rows[key] = t.view
    xt = low.to_sram(x, name)
    dst = dst or out.tensor(low, xt)
    return _row_op(low, "layernorm", dst, xt, name, rows, eps=f32_bits(float(epsilon)))


def reshape(low: Lowerer, dest: Dest, x: Value) -> Value:
    """`x` with another shape: a view, or a dense copy when no strides express it."""
    if isinstance(x, Const):
        return Const(x.array.reshape(dest.shape), x.dtype)
    v = x.view.reshape(dest.shape)
    if v is None:
        x = low.dense_copy(x, dest.name)
        v = x.view.reshape(dest.shape)
    return Tensor(v, dest.dtype)


def permute(x: Value, axes: tuple[int, ...]) -> Value:
    if isinstance(x, Const):
        return Const(np.transpose(x.array, axes), x.dtype)
    return Tensor(x.view.permute(axes), x.dtype)


def cast(low: Lowerer, dest: Dest, x: Value) -> Value:
    """astype(x, dest.dtype): free between int widths and bool -> float32, `itof` (and != 0 for bool) from ints."""
    src, dst = x.dtype, dest.dtype
    if src == dst or (src in ("int64", "int32") and dst in ("int64", "int32")) or (src == "bool" and dst == "float32"):
        return Tensor(x.view, dst) if isinstance(x, Tensor) else Const(x.array.astype(dst), dst)
    if src in ("int64", "int32") and dst in ("float32", "bool"):
        f = low.new_tensor(dest.name, x.shape, "float32")
        em.emit_unary(low.prog, "itof", f.view, x.view)
        if dst == "bool":
            # x != 0 for integers: min(x * x, 1)
            em.emit_binary(low.prog, "vmul", f.view, f.view, f.view)
            one = low.to_sram(Const(np.ones(1, np.float32), "float32"), dest.name)
            em.emit_binary(low.prog, "vmin", f.view, f.view, one.view.broadcast_to(f.shape))
        return Tensor(f.view, dst)
    raise CompileError(f"binding '{dest.name}': cast from {src} to {dst} is not supported")


def _select_term(low: Lowerer, dest: Dest, mask: Tensor, val: Value, what: str) -> Tensor:
    """mask * val for a 0/1 mask, exact: 0 where mask is 0 (even for an infinite scalar val), val where 1."""
    shape = dest.shape
    out = low.new_tensor(f"{dest.name}.{what}", shape, "float32")
    if isinstance(val, Const) and val.array.size == 1:
        v = float(val.array.reshape(-1)[0])
        src = mask.view.broadcast_to(shape)
        if np.isfinite(v):
            em.emit_immediate(low.prog, "vmuli", out.view, src, v)
        else:  # 1 * FLT_MAX * 2 overflows to inf while 0 stays 0 (0 * inf would be NaN)
            em.emit_immediate(low.prog, "vmuli", out.view, src, float(np.sign(v)) * float(np.finfo(np.float32).max))
            em.emit_immediate(low.prog, "vmuli", out.view, out.view, 2.0)
        return out
    return binary(low, Out(dest), "vmul", mask, val, dst=out)


def select(low: Lowerer, out: Out, cond: Value, x: Value, y: Value) -> Tensor:
    """where(cond, x, y) = cond * x + (1 - cond) * y, exact for cond in {0, 1} and finite (or scalar infinite) x, y."""
    dest = out.dest
    if cond.dtype != "bool":
        raise CompileError(f"binding '{dest.name}': where with a {cond.dtype} condition")
    for c in (x, y):
        if isinstance(c, Const) and np.any(np.isnan(c.array)):
            raise CompileError(f"binding '{dest.name}': where with NaN constants is not supported")
        if isinstance(c, Const) and c.array.size > 1 and not np.all(np.isfinite(c.array)):
            raise CompileError(f"binding '{dest.name}': where with non-finite constant tensors is not supported")
    c = low.to_sram(cond, dest.name)
    inv = low.new_tensor(f"{dest.name}.not", c.shape, "float32")
    em.emit_immediate(low.prog, "vmuli", inv.view, c.view, -1.0)
    em.emit_immediate(low.prog, "vaddi", inv.view, inv.view, 1.0)
    cx = _select_term(low, dest, c, x, "x")
    cy = _select_term(low, dest, inv, y, "y")
    dst = out.tensor(low, cx)
    em.emit_binary(low.prog, "vadd", dst.view, cx.view, cy.view)
    return dst


def take(low: Lowerer, dest: Dest, data: Value, idx: Value, axis: int, into: Tensor | None = None) -> Value:
    """data[idx] along `axis`: constant indices as views (or copies), runtime indices as a `gather` (axis 0) into
    `into` when given (a dense [rows, cols] tensor), else a fresh tensor."""
    dshape = data.array.shape if isinstance(data, Const) else data.shape
    axis %= len(dshape)
    if isinstance(idx, Const):
        ids = idx.array.astype(np.int64).reshape(-1)
        ids = np.where(ids < 0, ids + dshape[axis], ids)
        if ids.size and (ids.min() < 0 or ids.max() >= dshape[axis]):
            raise CompileError(f"binding '{dest.name}': take index out of range")
        if isinstance(data, Const):
            return Const(np.take(data.array, ids.reshape(idx.array.shape), axis=axis), data.dtype)
        step = int(ids[1] - ids[0]) if ids.size > 1 else 1
        if ids.size >= 1 and np.array_equal(ids, ids[0] + step * np.arange(ids.size)) and step >= 0:
            v = data.view.index(axis, int(ids[0]), ids.size, step)
            v2 = v.reshape(dest.shape)
            if v2 is not None:
                return Tensor(v2, data.dtype)
        out = low.new_tensor(dest.name, (*dshape[:axis], ids.size, *dshape[axis + 1 :]), data.dtype)
        for j, i in enumerate(ids):
            em.emit_unary(low.prog, "vmov", out.view.index(axis, j, 1), data.view.index(axis, int(i), 1))
        return Tensor(out.view.reshape(dest.shape), data.dtype)
    if idx.dtype not in ("int64", "int32"):
        raise CompileError(f"binding '{dest.name}': take indices must be integers")
    if axis != 0:
        raise CompileError(f"binding '{dest.name}': take with runtime indices along axis {axis} (axis 0 only)")
    table = low.const_buffer(data.array, data.dtype) if isinstance(data, Const) else data.view
    rows = idx.view.size
    table2 = table.reshape((dshape[0], int(np.prod(dshape[1:])) if len(dshape) > 1 else 1))
    if table2 is None or table2.strides[1] != 1 and table2.shape[1] > 1:
        table2 = low.dense_copy(Tensor(table, data.dtype), dest.name).view.reshape(table2.shape if table2 else None)
    iv = idx.view.reshape((rows,))
    if iv is None or iv.strides[0] != 1 and rows > 1:
        iv = low.dense_copy(idx, f"{dest.name}.idx").view.reshape((rows,))
    out = into if into is not None else low.new_tensor(dest.name, (rows, table2.shape[1]), data.dtype)
    em.emit_gather(low.prog, out.view, table2, iv)
    return Tensor(out.view.reshape(dest.shape), data.dtype)


# ---- plain-op handlers: handler(scope, binding var, call, lowered args) ----------------------------------------------


def _h_binary(mnemonic: str):
    def handler(scope: Scope, var, expr, args):
        _float_only(var, *args)
        return binary(scope.low, scope.out(var, [a for a in expr.args if is_var(a)]), mnemonic, args[0], args[1])

    return handler


def _h_unary(mnemonic: str):
    def handler(scope: Scope, var, expr, args):
        _float_only(var, *args)
        return unary(scope.low, scope.out(var, [expr.args[0]]), mnemonic, args[0])

    return handler


def _h_negative(scope: Scope, var, expr, args):
    return binary(scope.low, scope.out(var), "vmul", args[0], Const(np.array(-1.0, np.float32), "float32"))


def _h_power(scope: Scope, var, expr, args):
    _float_only(var, *args)
    p = scalar_of(expr.args[1])
    if p not in (1.0, 2.0, 3.0):
        raise CompileError(f"binding '{var.name}': power with exponent {expr.args[1]} is not supported (1, 2, 3 only)")
    x = scope.low.to_sram(args[0], var.name)
    if p == 1.0:
        return x
    out = scope.out_tensor(var, x)
    em.emit_binary(scope.prog, "vmul", out.view, x.view, x.view)
    if p == 3.0:
        em.emit_binary(scope.prog, "vmul", out.view, out.view, x.view)
    return out


def _h_matmul(scope: Scope, var, expr, args):
    _float_only(var, *args)
    if len(shape_of(expr.args[0])) < 1 or len(shape_of(expr.args[1])) < 1:
        raise CompileError(f"binding '{var.name}': matmul of scalars")
    return lower_matmul(scope.low, scope.out(var), args[0], args[1])


def _h_layer_norm(scope: Scope, var, expr, args):
    _float_only(var, args[0])
    attrs = expr.attrs
    return layer_norm(scope.low, scope.out(var, [expr.args[0]]), *args, [int(a) for a in attrs.axes],
                      float(attrs.epsilon), bool(attrs.scale), bool(attrs.center))


def _h_softmax(scope: Scope, var, expr, args):
    _float_only(var, *args)
    nd = len(shape_of(var))
    return softmax(scope.low, scope.out(var, [expr.args[0]]), args[0], int(expr.attrs.axis) % max(nd, 1))


def _h_reshape(scope: Scope, var, expr, args):
    return reshape(scope.low, Dest.of(var), args[0])


def _h_permute(scope: Scope, var, expr, args):
    x = args[0]
    nd = len(x.array.shape if isinstance(x, Const) else x.shape)
    return permute(x, tuple(int(a) for a in expr.attrs.axes) if expr.attrs.axes is not None else tuple(range(nd))[::-1])


def _h_broadcast_to(scope: Scope, var, expr, args):
    x = args[0]
    shape = shape_of(var)
    if isinstance(x, Const):
        return Const(np.broadcast_to(x.array, shape), x.dtype)
    return Tensor(x.view.broadcast_to(shape), x.dtype)


def _h_astype(scope: Scope, var, expr, args):
    return cast(scope.low, Dest(var.name, shape_of(var), str(expr.attrs.dtype)), args[0])


def _h_logical(mnemonic: str):
    def handler(scope: Scope, var, expr, args):
        for a in args:
            if a.dtype != "bool":
                raise CompileError(f"binding '{var.name}': logical op on {a.dtype}")
        return binary(scope.low, scope.out(var, [a for a in expr.args if is_var(a)]), mnemonic, args[0], args[1])

    return handler


def _h_logical_not(scope: Scope, var, expr, args):
    x = scope.low.to_sram(args[0], var.name)
    out = scope.out_tensor(var, x, [expr.args[0]])
    em.emit_immediate(scope.prog, "vmuli", out.view, x.view, -1.0)
    em.emit_immediate(scope.prog, "vaddi", out.view, out.view, 1.0)
    return out


def _h_where(scope: Scope, var, expr, args):
    _float_only(var, *args[1:])
    return select(scope.low, scope.out(var), *args)


def _h_take(scope: Scope, var, expr, args):
    axis = int(expr.attrs.axis) if expr.attrs.axis is not None else 0
    return take(scope.low, Dest.of(var), args[0], args[1], axis)


def _h_concat(scope: Scope, var, expr, args):
    parts = args[0]
    axis = int(expr.attrs.axis) % len(shape_of(var))
    if all(isinstance(p, Const) for p in parts):
        return Const(np.concatenate([p.array for p in parts], axis=axis), parts[0].dtype)
    out = scope.low.new_tensor(var.name, shape_of(var), str(var.ty.dtype))
    off = 0
    for p in parts:
        t = scope.low.to_sram(p, var.name)
        em.emit_unary(scope.prog, "vmov", out.view.index(axis, off, t.shape[axis]), t.view)
        off += t.shape[axis]
    return out


def _negated(scope: Scope, var, args, suffix: str) -> tuple[Tensor, Tensor]:
    """(x, -x in a fresh buffer) for a float unary op."""
    _float_only(var, *args)
    x = scope.low.to_sram(args[0], var.name)
    neg = scope.low.new_tensor(f"{var.name}.{suffix}", x.shape, "float32")
    em.emit_immediate(scope.prog, "vmuli", neg.view, x.view, -1.0)
    return x, neg


def _h_abs(scope: Scope, var, expr, args):
    x, neg = _negated(scope, var, args, "neg")
    out = scope.out_tensor(var, x, [expr.args[0]])
    em.emit_binary(scope.prog, "vmax", out.view, x.view, neg.view)
    return out


def _h_sigmoid(scope: Scope, var, expr, args):
    """1 / (1 + exp(-x)); the ones numerator is a constant tile (only b of a binary op broadcasts)."""
    x, t = _negated(scope, var, args, "t")
    em.emit_unary(scope.prog, "exp", t.view, t.view)
    em.emit_immediate(scope.prog, "vaddi", t.view, t.view, 1.0)
    ones = scope.low.to_sram(Const(np.ones(x.shape, np.float32), "float32"), f"{var.name}.ones")
    out = scope.out_tensor(var, x, [expr.args[0]])
    em.emit_binary(scope.prog, "vdiv", out.view, ones.view, t.view)
    return out


PLAIN_OPS = {
    "relax.add": _h_binary("vadd"),
    "relax.subtract": _h_binary("vsub"),
    "relax.multiply": _h_binary("vmul"),
    "relax.divide": _h_binary("vdiv"),
    "relax.maximum": _h_binary("vmax"),
    "relax.minimum": _h_binary("vmin"),
    "relax.power": _h_power,
    "relax.tanh": _h_unary("tanh"),
    "relax.exp": _h_unary("exp"),
    "relax.nn.relu": _h_unary("relu"),
    "relax.nn.gelu": _h_unary("gelu_erf"),
    "relax.nn.gelu_tanh": _h_unary("gelu"),
    "relax.negative": _h_negative,
    "relax.abs": _h_abs,
    "relax.sigmoid": _h_sigmoid,
    "relax.matmul": _h_matmul,
    "relax.nn.layer_norm": _h_layer_norm,
    "relax.nn.softmax": _h_softmax,
    "relax.reshape": _h_reshape,
    "relax.permute_dims": _h_permute,
    "relax.broadcast_to": _h_broadcast_to,
    "relax.astype": _h_astype,
    "relax.logical_and": _h_logical("vmul"),
    "relax.logical_or": _h_logical("vmax"),
    "relax.logical_not": _h_logical_not,
    "relax.where": _h_where,
    "relax.take": _h_take,
    "relax.concat": _h_concat,
    "relax.squeeze": _h_reshape,
    "relax.expand_dims": _h_reshape,
    "relax.flatten": _h_reshape,
}

#: numpy folds for ops whose operands are all constants (what FoldConstant left behind).
FOLDABLE = {
    "relax.add": lambda e, a, b: a + b,
    "relax.subtract": lambda e, a, b: a - b,
    "relax.multiply": lambda e, a, b: a * b,
    "relax.logical_and": lambda e, a, b: np.logical_and(a, b),
    "relax.logical_or": lambda e, a, b: np.logical_or(a, b),
    "relax.broadcast_to": lambda e, a, *_: np.broadcast_to(a, tuple(int(d) for d in e.ty.shape.values)),
}

__all__ = ["FOLDABLE", "PLAIN_OPS", "binary", "cast", "layer_norm", "matmul_shape", "permute", "reshape", "select",
           "softmax", "take", "unary"]
