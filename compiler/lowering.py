"""Lowering of a Relax module (static shapes, batch 1), binding by binding, into a tile program."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.abi import R_LAYER, R_LAYER_LIMIT
from edgebert.compiler.compression import CompressionOptions
from edgebert.compiler.matmul import PackedWeight, StagingRing, emit_matmul, in_place_bias
from edgebert.compiler.patterns import Peepholes, const_array, find_peepholes, is_const, is_var, op_name, scalar_of
from edgebert.compiler.span import HANDLERS as SPAN_HANDLERS
from edgebert.compiler.tile_ir import Buffer, LoopRange, TileInst, TileProgram
from edgebert.compiler.views import View, fresh_view, memory_order
from edgebert.isa.bits import f32_bits
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig

#: Relax dtype -> storage dtype (bool is stored as fp32 0.0/1.0: masks feed float arithmetic).
STORAGE = {"float32": "f32", "bool": "f32", "int64": "i32", "int32": "i32"}


@dataclass
class Tensor:
    """A lowered tensor value: a view and its Relax dtype."""

    view: View
    dtype: str

    @property
    def shape(self) -> tuple[int, ...]:
        return self.view.shape


@dataclass
class Const:
    """A compile-time constant (kept as numpy until an instruction needs it in memory)."""

    array: np.ndarray
    dtype: str


Value = Tensor | Const | tuple


def _shape(expr: Any) -> tuple[int, ...]:
    ty = expr.ty
    try:
        return tuple(int(d) for d in ty.shape.values)
    except (AttributeError, TypeError):
        raise CompileError(f"'{getattr(expr, 'name', expr)}': shape is not static") from None


def _dtype(expr: Any) -> str:
    return str(expr.ty.dtype)


def _storage(dtype: str, what: str) -> str:
    if dtype not in STORAGE:
        raise CompileError(f"{what}: dtype {dtype} is not supported (float32, bool, int32/int64 indices only)")
    return STORAGE[dtype]


def _vars_in(expr: Any) -> list[Any]:
    if is_var(expr):
        return [expr]
    if type(expr).__name__ == "Tuple":
        return [v for f in expr.fields for v in _vars_in(f)]
    if type(expr).__name__ == "TupleGetItem":
        return _vars_in(expr.tuple_value)
    if hasattr(expr, "args"):
        return [v for a in expr.args for v in _vars_in(a)]
    return []


class Lowerer:
    """Walks Relax functions and appends tile instructions to `prog`."""

    def __init__(self, mod: Any, hw: HardwareConfig, prog: TileProgram, ring: StagingRing) -> None:
        self.mod, self.hw, self.prog, self.ring = mod, hw, prog, ring
        self._consts: dict[bytes, Buffer] = {}
        self._count = 0
        self.pinned: set[int] = set()  # ids of buffers never overwritten in place (inputs, loop carries)
        self.loop_depth = 0
        self.compression: CompressionOptions | None = None  # AF8 / sparse weights (compiler/compression.py)

    # ---- buffers ---------------------------------------------------------------------------------
    def _name(self, base: str) -> str:
        self._count += 1
        return f"{base}.{self._count}"

    def new_tensor(self, name: str, shape: tuple[int, ...], dtype: str, order: tuple[int, ...] | None = None) -> Tensor:
        st = _storage(dtype, name)
        size = int(np.prod(shape)) if shape else 1
        buf = self.prog.buffer(self._name(name), max(size, 1) * 4, "act")
        buf.what = f"{dtype}{list(shape)}"
        return Tensor(fresh_view(buf, shape, st, order), dtype)

    def const_buffer(self, array: np.ndarray, dtype: str) -> View:
        """An eNVM/DRAM constant holding `array` (deduplicated by content)."""
        st = _storage(dtype, "constant")
        if st == "f32":
            data = np.ascontiguousarray(array, dtype=np.float32)
        else:
            if array.size and (array.max() > 2**31 - 1 or array.min() < -(2**31)):
                raise CompileError("integer constant does not fit int32")
            data = np.ascontiguousarray(array, dtype=np.int32)
        raw = data.tobytes()
        key = hashlib.sha256(raw + st.encode()).digest()
        buf = self._consts.get(key)
        if buf is None:
            buf = self.prog.buffer(f"const.{len(self._consts)}", max(len(raw), 4), "const", "envm", raw)
            self._consts[key] = buf
        return fresh_view(buf, data.shape, st)

    def packed_weight(self, w: np.ndarray) -> PackedWeight | None:
        """The compressed storage (AF8 / bitmask-sparse) of a constant matmul weight, or None (dense fp32)."""
        if self.compression is None or w.ndim != 2:
            return None
        fmt = self.compression.weight_format(w)
        if fmt is None:
            return None
        packed = PackedWeight(np.ascontiguousarray(w, np.float32), fmt, self.raw_const)
        self.prog.packed_weights.append(packed)
        return packed

    def raw_const(self, raw: bytes, what: str) -> Buffer:
        """An eNVM constant holding `raw` bytes (deduplicated by content)."""
        key = hashlib.sha256(raw + b"raw").digest()
        buf = self._consts.get(key)
        if buf is None:
            buf = self.prog.buffer(f"const.{what}.{len(self._consts)}", max(len(raw), 4), "const", "envm", raw)
            self._consts[key] = buf
        return buf

    def to_sram(self, value: Value, what: str) -> Tensor:
        """A tensor in SRAM: constants are loaded (once per use) into a fresh activation buffer."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, Const):
            src = self.const_buffer(value.array, value.dtype)
            t = self.new_tensor(f"{what}.const", tuple(value.array.shape), value.dtype)
            em.emit_dma(self.prog, "ld", t.view, src)
            return t
        raise CompileError(f"{what}: tuple used as a tensor")

    def dense_copy(self, t: Tensor, what: str, order: tuple[int, ...] | None = None) -> Tensor:
        out = self.new_tensor(what, t.shape, t.dtype, order)
        em.emit_unary(self.prog, "vmov", out.view, t.view)
        return out

    # ---- functions -------------------------------------------------------------------------------
    def lower_function(self, func: Any, args: list[Value], name: str, exits: Any = None) -> Value:
        """Inline `func` with params bound to `args`; returns the value of its body.

        `exits` (an `early_exit.ExitLowering`, main only) reorders the bindings and emits each exit head's branch.
        """
        consts = {p: _relax_const(a) for p, a in zip(func.params, args, strict=True) if isinstance(a, Const)}
        if consts:  # composites take their weights as arguments: bind them so peepholes see constants
            func = func.bind_params(consts)
            args = [a for a in args if not isinstance(a, Const)]
        env: dict[Any, Value] = {}
        for p, a in zip(func.params, args, strict=True):
            env[p] = a
        body = func.body
        bindings = [b for blk in body.blocks for b in blk.bindings]
        users = _users(bindings, body.body)
        ph = find_peepholes(bindings, users)
        bindings = _needed(bindings, body.body, ph)
        loop_plan = None
        if exits is not None:
            bindings = exits.reorder(bindings, body.body)
            loop_plan = exits.loop_plan(bindings)
        users = _users(bindings, body.body)
        scope = _Scope(self, env, users, ph, name)
        scope.all_defs = {b.var: b.value for b in bindings}
        i = 0
        while i < len(bindings):
            if loop_plan is not None and i == loop_plan.calls[0]:  # early exit inside one layer loop
                from edgebert.compiler.early_exit_loop import lower_exit_loop

                lower_exit_loop(scope, bindings, loop_plan, exits)
                i = loop_plan.end
                continue
            run = self._loop_run(bindings, i, env)
            if run > 1:
                scope.lower_loop(bindings[i : i + run])
                i += run
                continue
            scope.lower_binding(bindings[i])
            if exits is not None and bindings[i].var in exits.exit_vars:
                exits.after_head(exits.exit_vars[bindings[i].var], scope.env[bindings[i].var], self)
            i += 1
        return scope.value_of(body.body)

    def _loop_run(self, bindings: list[Any], i: int, env: dict) -> int:
        """Length of the run of calls to one function chained through their first argument."""
        first = bindings[i].value
        gv = getattr(first, "op", None)
        if type(gv).__name__ != "GlobalVar" or self.loop_depth:
            return 1
        n = 1
        while i + n < len(bindings):
            nxt = bindings[i + n].value
            prev = bindings[i + n - 1]
            if not (type(getattr(nxt, "op", None)).__name__ == "GlobalVar" and nxt.op.same_as(gv)):
                break
            if not (is_var(nxt.args[0]) and nxt.args[0].same_as(prev.var)):
                break
            if len(nxt.args) != len(first.args) or not all(
                x.same_as(y) for x, y in zip(nxt.args[1:], first.args[1:], strict=True)
            ):
                break
            n += 1
        return n


def _composite_of(func: Any) -> str | None:
    attrs = getattr(func, "attrs", None)
    return str(attrs["Composite"]) if attrs is not None and "Composite" in attrs else None


def _users(bindings: list[Any], result: Any) -> dict[Any, list[Any]]:
    """var -> the binding vars using it (None for the function result)."""
    users: dict[Any, list[Any]] = defaultdict(list)
    for b in bindings:
        for v in _vars_in(b.value):
            users[v].append(b.var)
    for v in _vars_in(result):
        users[v].append(None)
    return users


def _needed(bindings: list[Any], result: Any, ph: Peepholes) -> list[Any]:
    """The bindings the result depends on, once peephole rewrites replaced their operands."""
    live = set(_vars_in(result))
    keep = []
    for b in reversed(bindings):
        if b.var not in live:
            continue
        keep.append(b)
        rw = ph.rewrites.get(b.var)
        if rw is None:
            live.update(_vars_in(b.value))
        elif rw[0] in ("alias", "gelu"):
            live.update(_vars_in(rw[1]))
    return keep[::-1]


def _broadcasts(view: View) -> bool:
    """True when some dim of size > 1 has stride 0 (several elements share one address)."""
    return any(s == 0 and d > 1 for d, s in zip(view.shape, view.strides, strict=True))


class _Scope:
    """Lowering state of one function body: its environment and use counts."""

    def __init__(self, low: Lowerer, env, users, ph: Peepholes, name: str) -> None:
        self.low, self.env, self.users, self.ph, self.fname = low, env, users, ph, name
        self.prog = low.prog
        self.fused: dict[Any, Any] = {}  # var of an absorbed binding -> var whose value it takes

    # ---- values ------------------------------------------------------------------------------------
    def value_of(self, expr: Any) -> Value:
        if is_var(expr):
            if expr not in self.env:
                raise CompileError(f"{self.fname}: '{expr.name}' used before definition")
            return self.env[expr]
        if is_const(expr):
            return Const(const_array(expr), _dtype(expr))
        kind = type(expr).__name__
        if kind == "Tuple":
            return tuple(self.value_of(f) for f in expr.fields)
        if kind == "TupleGetItem":
            return self.value_of(expr.tuple_value)[expr.index]
        if kind in ("ShapeExpr", "PrimValue", "StringImm", "DataTypeImm"):
            return None  # attributes carried as arguments; handlers read them from the call
        raise CompileError(f"{self.fname}: unsupported expression {kind}")

    def _dead_after(self, var: Any, binding_var: Any) -> bool:
        """True when `var`'s buffer holds no value needed after the binding of `binding_var`."""
        t = self.env.get(var)
        if not isinstance(t, Tensor) or t.view.buffer.kind != "act" or id(t.view.buffer) in self.low.pinned:
            return False
        for v, val in self.env.items():
            if isinstance(val, Tensor) and val.view.buffer is t.view.buffer:
                uses = [u for u in self.users.get(v, []) if u is not None]
                if None in self.users.get(v, []):
                    return False
                # every use of v must be this binding or an already-lowered one
                if any(u not in self.env and not u.same_as(binding_var) for u in uses):
                    return False
        return True

    def out_tensor(self, var: Any, like: Tensor | None = None, inplace: list[Any] = ()) -> Tensor:
        """The destination for `var`: in place over a dying same-layout input, else a fresh buffer."""
        shape, dtype = _shape(var), _dtype(var)
        for src in inplace:
            t = self.env.get(src) if is_var(src) else None
            if (
                isinstance(t, Tensor)
                and t.shape == shape
                and _storage(dtype, var.name) == t.view.dtype
                and not _broadcasts(t.view)
                and self._dead_after(src, var)
            ):
                return Tensor(t.view, dtype)
        order = self._preferred_order(var, shape)
        if order is None and like is not None and len(like.shape) == len(shape) and not _broadcasts(like.view):
            order = memory_order(like.view)
        return self.low.new_tensor(var.name, shape, dtype, order)

    def _preferred_order(self, var: Any, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Physical dim order making a sole permute_dims consumer a free view."""
        us = self.users.get(var, [])
        if len(us) != 1 or us[0] is None:
            return None
        call = self.all_defs.get(us[0])
        name = op_name(call) if call is not None else None
        if name == "relax.permute_dims" and call.attrs.axes is not None:
            return tuple(int(a) for a in call.attrs.axes)
        if name == "relax.reshape" and _shape(us[0]) == shape:
            return self._preferred_order(us[0], shape)
        return None

    # ---- bindings ----------------------------------------------------------------------------------
    def lower_binding(self, b: Any) -> None:
        var, expr = b.var, b.value
        rw = self.ph.rewrites.get(var)
        if var in self.fused:
            self.env[var] = self.env[self.fused[var]]
            return
        if rw is not None:
            if rw[0] == "skip":
                self.env[var] = ("skipped",)
                return
            if rw[0] == "alias":
                self.env[var] = self.value_of(rw[1])
                return
            if rw[0] == "gelu":
                x = self.low.to_sram(self.value_of(rw[1]), var.name)
                out = self.out_tensor(var, x, [rw[1]])
                em.emit_unary(self.prog, "gelu", out.view, x.view)
                self.env[var] = out
                return
        name = op_name(expr)
        if name is None:
            kind = type(expr).__name__
            if kind in ("Tuple", "TupleGetItem", "Var", "DataflowVar", "GenericConst"):
                self.env[var] = self.value_of(expr)
                return
            if kind == "Call" and type(expr.op).__name__ == "GlobalVar":
                callee = self.low.mod[expr.op]
                composite = _composite_of(callee)
                if composite in SPAN_HANDLERS:  # adaptive span: windowed attention, softmax span fields
                    self.env[var] = SPAN_HANDLERS[composite](self, var, expr, [self.value_of(a) for a in expr.args])
                    return
                args = [self.value_of(a) for a in expr.args]
                pins = set()
                for a_expr, a in zip(expr.args, args, strict=True):
                    if isinstance(a, Tensor) and not (is_var(a_expr) and self._dead_after(a_expr, var)):
                        pins.add(id(a.view.buffer))
                new_pins = pins - self.low.pinned
                self.low.pinned |= new_pins
                self.env[var] = self.low.lower_function(callee, args, expr.op.name_hint)
                self.low.pinned -= new_pins
                return
            raise CompileError(f"{self.fname}: binding '{var.name}' ({kind}) cannot be lowered")
        handler = HANDLERS.get(name)
        if handler is None:
            raise CompileError(
                f"{self.fname}: op {name} (binding '{var.name}') is not supported by the edgebert backend"
            )
        args = [self.value_of(a) for a in expr.args]
        if all(isinstance(a, Const) for a in args if a is not None and not isinstance(a, tuple)) and name in FOLDABLE:
            self.env[var] = Const(FOLDABLE[name](var, *[a.array for a in args if a is not None]), _dtype(var))
            return
        try:
            self.env[var] = handler(self, var, expr, args)
        except CompileError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, AssertionError) as exc:
            # a lowering bug must still end in one clear line naming the binding, not a numpy traceback
            raise CompileError(
                f"{self.fname}: internal error lowering '{var.name}' ({name}): {type(exc).__name__}: {exc}"
            ) from exc

    # ---- the layer loop ----------------------------------------------------------------------------
    def lower_loop(self, calls: list[Any]) -> None:
        """N chained calls of one function -> its body once inside a counted loop (r1 = layer index)."""
        low, prog = self.low, self.prog
        first = calls[0].value
        callee = low.mod[first.op]
        gv_name = first.op.name_hint
        init = low.to_sram(self.value_of(first.args[0]), gv_name)
        rest = [self.value_of(a) for a in first.args[1:]]
        carry = low.new_tensor(f"{gv_name}.carry", init.shape, init.dtype)
        low.pinned.add(id(carry.view.buffer))
        for a in rest:
            if isinstance(a, Tensor):
                low.pinned.add(id(a.view.buffer))
        em.emit_unary(prog, "vmov", carry.view, init.view)
        label = f"{gv_name}.loop{len(prog.loops)}"
        prog.emit(TileInst("li", {"rd": R_LAYER, "imm": 0}))
        prog.emit(TileInst("li", {"rd": R_LAYER_LIMIT, "imm": len(calls)}))
        prog.emit(TileInst("barrier"))
        prog.label(label)
        start = len(prog.insts)
        low.loop_depth += 1
        result = low.lower_function(callee, [carry, *rest], gv_name)
        low.loop_depth -= 1
        if not isinstance(result, Tensor) or result.shape != carry.shape:
            raise CompileError(f"{gv_name}: a layer-loop body must return one tensor shaped like its first argument")
        if result.view != carry.view:
            em.emit_unary(prog, "vmov", carry.view, result.view)
        prog.emit(TileInst("barrier"))
        prog.emit(TileInst("addi", {"rd": R_LAYER, "rs1": R_LAYER, "imm": 1}))
        prog.emit(TileInst("blt", {"rs1": R_LAYER, "rs2": R_LAYER_LIMIT}, target=label))
        prog.loops.append(LoopRange(label, start, len(prog.insts), len(calls)))
        for b in calls:
            self.env[b.var] = carry


# ---- op handlers -----------------------------------------------------------------------------------


def _relax_const(c: Const) -> Any:
    from tvm import relax

    return relax.const(c.array, c.dtype)


def _float_only(var: Any, *vals: Value) -> None:
    for v in vals:
        dt = v.dtype if isinstance(v, Tensor | Const) else "tuple"
        if dt not in ("float32", "bool"):
            raise CompileError(f"binding '{var.name}': {dt} arithmetic is not supported (float32 only)")


def _bcast(t: Tensor, shape: tuple[int, ...]) -> View:
    return t.view.broadcast_to(shape)


COMMUTATIVE = {"vadd", "vmul", "vmax", "vmin"}


def binary(
    scope: _Scope, var: Any, mnemonic: str, a: Value, b: Value, out: Tensor | None = None, inplace: list[Any] = ()
) -> Tensor:
    """out = a (op) b with numpy broadcasting; scalar constants become immediates where exact."""
    low = scope.low
    shape = _shape(var) if out is None else out.shape
    sa = a.array.reshape(-1)[0] if isinstance(a, Const) and a.array.size == 1 else None
    sb = b.array.reshape(-1)[0] if isinstance(b, Const) and b.array.size == 1 else None
    if sb is not None and isinstance(a, Tensor) and a.shape == shape:
        imm = _immediate_form(mnemonic, float(sb))
        if imm is not None:
            out = out or scope.out_tensor(var, a, inplace)
            em.emit_immediate(scope.prog, imm[0], out.view, a.view, imm[1])
            return out
    if sa is not None and isinstance(b, Tensor) and b.shape == shape and mnemonic in COMMUTATIVE:
        return binary(scope, var, mnemonic, b, a, out, inplace[::-1])
    if sa is not None and isinstance(b, Tensor) and b.shape == shape and mnemonic == "vsub":
        out = out or scope.out_tensor(var, b, inplace[::-1])
        em.emit_immediate(scope.prog, "vmuli", out.view, b.view, -1.0)
        em.emit_immediate(scope.prog, "vaddi", out.view, out.view, float(sa))
        return out
    ta = low.to_sram(a, var.name)
    tb = low.to_sram(b, var.name)
    if mnemonic in COMMUTATIVE and _zeros(ta.view.broadcast_to(shape)) > _zeros(tb.view.broadcast_to(shape)):
        ta, tb = tb, ta
        inplace = list(inplace)[::-1]
    like = ta if ta.shape == shape else (tb if tb.shape == shape else None)
    out = out or scope.out_tensor(var, like, inplace)
    em.emit_binary(scope.prog, mnemonic, out.view, _bcast(ta, shape), _bcast(tb, shape))
    return out


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


def _h_binary(mnemonic: str):
    def handler(scope: _Scope, var, expr, args):
        _float_only(var, *args)
        return binary(scope, var, mnemonic, args[0], args[1], inplace=[a for a in expr.args if is_var(a)])

    return handler


def _h_unary(mnemonic: str):
    def handler(scope: _Scope, var, expr, args):
        _float_only(var, *args)
        x = scope.low.to_sram(args[0], var.name)
        out = scope.out_tensor(var, x, [expr.args[0]])
        em.emit_unary(scope.prog, mnemonic, out.view, x.view)
        return out

    return handler


def _h_power(scope: _Scope, var, expr, args):
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


def _h_matmul(scope: _Scope, var, expr, args):
    _float_only(var, *args)
    a, b = args
    low = scope.low
    out_shape = _shape(var)
    if len(_shape(expr.args[0])) < 1 or len(_shape(expr.args[1])) < 1:
        raise CompileError(f"binding '{var.name}': matmul of scalars")
    if isinstance(a, Const):
        a = low.to_sram(a, f"{var.name}.a")
    a_view = a.view if len(a.shape) > 1 else a.view.reshape((1, a.shape[0]))
    b_shape = b.array.shape if isinstance(b, Const) else b.shape
    squeeze_n = len(b_shape) == 1
    # bias fusion: the sole user adds a constant row of N elements
    bias_view, final_var = None, var
    n = b_shape[-1] if not squeeze_n else 1
    us = scope.users.get(var, [])
    if len(us) == 1 and us[0] is not None:
        nxt = _find_binding(scope, us[0])
        if nxt is not None and op_name(nxt) == "relax.add" and _shape(us[0]) == out_shape:
            other = nxt.args[1] if nxt.args[0].same_as(var) else nxt.args[0]
            oval = scope.value_of(other) if (is_const(other) or other in scope.env) else None
            if isinstance(oval, Const) and not squeeze_n:
                arr = oval.array
                if arr.size == n and arr.shape[-1] == n and arr.dtype == np.float32:
                    bias_view = in_place_bias(low.prog, low.compression, b.array, arr.reshape(n)) if isinstance(
                        b, Const) else None  # a multi-task task weight's bias, read in place like the weight
                    bias_view = bias_view or low.to_sram(Const(arr.reshape(n), "float32"), f"{var.name}.bias").view
                    scope.fused[us[0]] = var
                    final_var = us[0]
    gelu_epilogue = None
    fus = scope.users.get(final_var, [])
    out = None
    if len(fus) == 1 and fus[0] is not None:
        rw = scope.ph.rewrites.get(fus[0])
        if rw is not None and rw[0] == "gelu" and rw[1].same_as(final_var):

            def gelu_epilogue(tile: View) -> None:
                em.emit_unary(scope.prog, "gelu", tile, tile)

            scope.fused[fus[0]] = var
    if out is None:
        out = scope.out_tensor(var)
        if out.view.strides and out.view.strides[-1] != 1 and out_shape[-1] > 1:
            out = low.new_tensor(var.name, out_shape, "float32")
    # 1-D operands: a [K] is a row [1, K], b [K] a column [K, 1]; the output drops those dims again
    packed = None
    if isinstance(b, Const):
        barr = b.array if not squeeze_n else b.array.reshape(-1, 1)
        packed = low.packed_weight(barr)
        if packed is None:
            b_view = low.const_buffer(barr, "float32")
        else:  # stored as encoded tiles (PackedWeight.const); this unplanned buffer only carries the shape
            b_view = fresh_view(Buffer("packed", barr.size * 4, "const", "envm"), barr.shape, "f32")
    else:
        b_view = b.view if not squeeze_n else b.view.reshape((b.shape[0], 1))
    batch = tuple(np.broadcast_shapes(a_view.shape[:-2], b_view.shape[:-2]))
    full_out = batch + (a_view.shape[-2], b_view.shape[-1])
    o_view = out.view.reshape(full_out)
    a_b = a_view.broadcast_to(batch + a_view.shape[-2:])
    b_b = b_view.broadcast_to(batch + b_view.shape[-2:])
    # fold the batch of a constant-weight matmul into rows when a's batch and rows are contiguous
    if batch and len(b_view.shape) == 2:
        m_all = int(np.prod(batch)) * a_b.shape[-2]
        fa = a_b.reshape((m_all, a_b.shape[-1]))
        fo = o_view.reshape((m_all, o_view.shape[-1]))
        if fa is not None and fo is not None:
            a_b, o_view, b_b, batch = fa, fo, b_view, ()
    if a_b.strides[-1] != 1 and a_b.shape[-1] > 1:
        a_b = scope.low.dense_copy(Tensor(a_b, "float32"), f"{var.name}.a").view
    a_exp = None
    if isinstance(b, Const) and low.compression is not None and barr.ndim == 2:
        a_exp = low.compression.activation_bias(barr, low.loop_depth > 0)
    if a_exp is not None:  # AF8 activation at this weight matmul's input (metadata point bias)
        if batch:
            raise CompileError(f"binding '{var.name}': AF8 activations of a batched matmul are not supported")
        a_b = quantize_view(low, a_b, a_exp, f"{var.name}.a_af8")
    b_exp = None
    if not isinstance(b, Const) and low.compression is not None:  # activation x activation: the attention's
        biases = low.compression.attention_biases(low.loop_depth > 0)
        if biases is not None:
            a_exp, b_exp = biases
            a_b = quantize_view(low, a_b, a_exp, f"{var.name}.a_af8")
            b_b = quantize_view(low, b_b, b_exp, f"{var.name}.b_af8")
    for idx in np.ndindex(*batch) if batch else [()]:
        av, bv, ov = a_b, b_b, o_view
        for _ax, i in enumerate(idx):
            av = av.index(0, i, 1)
            bv = bv.index(0, i, 1)
            ov = ov.index(0, i, 1)
            av = View(av.buffer, av.offset, av.shape[1:], av.strides[1:], av.dtype)
            bv = View(bv.buffer, bv.offset, bv.shape[1:], bv.strides[1:], bv.dtype)
            ov = View(ov.buffer, ov.offset, ov.shape[1:], ov.strides[1:], ov.dtype)
        if bv.buffer.kind != "const" and bv.strides[0] != 1 and bv.strides[1] != 1:
            bv = scope.low.dense_copy(Tensor(bv, "float32"), f"{var.name}.b").view
        pk = packed if packed is not None and bv.buffer is b_view.buffer and bv.shape == packed.values.shape else None
        emit_matmul(scope.prog, low.hw, low.ring, ov, av, bv, bias_view, gelu_epilogue, var.name, pk, a_exp, b_exp)
    return out


def quantize_view(low: Any, view: View, exp_bias: int, name: str) -> View:
    """`quant` an fp32 activation view into fresh AF8 codes (same shape; dense, or dense in the transposed order
    when the view is transposed, e.g. K^T), returned as a view of the codes."""
    if view.shape and view.strides[-1] != 1 and view.shape[-1] > 1 and len(view.shape) >= 2:
        order = (*range(len(view.shape) - 2), len(view.shape) - 1, len(view.shape) - 2)
        return quantize_view(low, view.permute(order), exp_bias, name).permute(order)
    codes = low.prog.buffer(low._name(name), max(1, int(np.prod(view.shape))), "act")
    dst = fresh_view(codes, view.shape, "af8")
    em.emit_unary(low.prog, "quant", dst, view, exp_bias=exp_bias)
    return dst


def _find_binding(scope: _Scope, var: Any) -> Any:
    return scope.all_defs.get(var)


def _h_layer_norm(scope: _Scope, var, expr, args):
    _float_only(var, args[0])
    x, gamma, beta = args
    axes = [int(a) for a in expr.attrs.axes]
    shape = _shape(expr.args[0])
    nd = len(shape)
    norm = sorted(a % nd for a in axes)
    if norm != list(range(nd - len(norm), nd)):
        raise CompileError(f"binding '{var.name}': layer_norm over axes {axes} (trailing axes only)")
    low = scope.low
    if len(norm) > 1:  # normalise trailing axes together: view them as one row
        n = int(np.prod(shape[nd - len(norm) :]))
        flat = shape[: nd - len(norm)] + (n,)
        xt = low.to_sram(x, var.name)
        xv = xt.view.reshape(flat) or low.dense_copy(xt, var.name).view.reshape(flat)
        gb = [
            Const(v.array.reshape(n), "float32")
            if isinstance(v, Const)
            else Tensor(low.dense_copy(v, var.name).view.reshape((n,)), "float32")
            for v in (gamma, beta)
        ]
        fake = _FlatLayerNorm(expr.attrs, flat)
        out = low.new_tensor(var.name, shape, "float32")
        _layer_norm_rows(
            scope, var, fake, Tensor(xv, "float32"), gb[0], gb[1], Tensor(out.view.reshape(flat), "float32")
        )
        return out
    return _layer_norm_rows(scope, var, expr.attrs, x, gamma, beta, None, [expr.args[0]])


class _FlatLayerNorm:
    """layer_norm attributes for trailing axes flattened into one."""

    def __init__(self, attrs: Any, shape: tuple[int, ...]) -> None:
        self.epsilon, self.scale, self.center = attrs.epsilon, attrs.scale, attrs.center
        self.shape = shape


def _layer_norm_rows(scope: _Scope, var, attrs, x, gamma, beta, out: Tensor | None, inplace: list[Any] = ()):
    n = (out.shape if out is not None else _shape(var))[-1]
    low = scope.low
    g = gamma if attrs.scale else Const(np.ones(n, np.float32), "float32")
    bt = beta if attrs.center else Const(np.zeros(n, np.float32), "float32")
    rows = {}
    for key, val in (("gamma", g), ("beta", bt)):
        if isinstance(val, Const):
            val = Const(np.broadcast_to(val.array, (n,)).astype(np.float32), "float32")
        t = low.to_sram(val, f"{var.name}.{key}")
        if t.view.size != n and not (t.shape[-1] == n and t.view.size == n):
            raise CompileError(f"binding '{var.name}': {key} must hold one row of {n} elements")
        if t.view.strides[-1] != 1:
            t = low.dense_copy(t, f"{var.name}.{key}")
        rows[key] = t.view
    xt = low.to_sram(x, var.name)
    out = out or scope.out_tensor(var, xt, inplace)
    eps = f32_bits(float(attrs.epsilon))
    if not em.emit_row_op(scope.prog, "layernorm", out.view, xt.view, rows, eps=eps):
        xt = low.dense_copy(xt, var.name)
        tmp = low.new_tensor(var.name, xt.shape, "float32")
        em.emit_row_op(scope.prog, "layernorm", tmp.view, xt.view, rows, eps=eps)
        em.emit_unary(scope.prog, "vmov", out.view, tmp.view)
    return out


def _h_softmax(scope: _Scope, var, expr, args):
    _float_only(var, *args)
    shape = _shape(var)
    nd = len(shape)
    axis = int(expr.attrs.axis) % max(nd, 1)
    low = scope.low
    x = low.to_sram(args[0], var.name)
    if nd and axis != nd - 1:
        # softmax over another axis: copy with that axis innermost, softmax the rows, copy back
        perm = tuple(a for a in range(nd) if a != axis) + (axis,)
        moved = low.dense_copy(Tensor(x.view.permute(perm), x.dtype), f"{var.name}.t")
        em.emit_row_op(scope.prog, "softmax", moved.view, moved.view)
        out = low.new_tensor(var.name, shape, "float32")
        em.emit_unary(scope.prog, "vmov", out.view.permute(perm), moved.view)
        return out
    out = scope.out_tensor(var, x, [expr.args[0]])
    if not em.emit_row_op(scope.prog, "softmax", out.view, x.view):
        x = low.dense_copy(x, var.name)
        tmp = low.new_tensor(var.name, x.shape, "float32")
        em.emit_row_op(scope.prog, "softmax", tmp.view, x.view)
        em.emit_unary(scope.prog, "vmov", out.view, tmp.view)
    return out


def _h_reshape(scope: _Scope, var, expr, args):
    x = args[0]
    shape = _shape(var)
    if isinstance(x, Const):
        return Const(x.array.reshape(shape), x.dtype)
    v = x.view.reshape(shape)
    if v is None:
        x = scope.low.dense_copy(x, var.name)
        v = x.view.reshape(shape)
    return Tensor(v, _dtype(var))


def _h_permute(scope: _Scope, var, expr, args):
    x = args[0]
    nd = len(x.array.shape if isinstance(x, Const) else x.shape)
    axes = tuple(int(a) for a in expr.attrs.axes) if expr.attrs.axes is not None else tuple(range(nd))[::-1]
    if isinstance(x, Const):
        return Const(np.transpose(x.array, axes), x.dtype)
    return Tensor(x.view.permute(axes), x.dtype)


def _h_broadcast_to(scope: _Scope, var, expr, args):
    x = args[0]
    shape = _shape(var)
    if isinstance(x, Const):
        return Const(np.broadcast_to(x.array, shape), x.dtype)
    return Tensor(x.view.broadcast_to(shape), x.dtype)


def _h_astype(scope: _Scope, var, expr, args):
    x = args[0]
    src, dst = x.dtype, str(expr.attrs.dtype)
    low = scope.low
    if src == dst or (src in ("int64", "int32") and dst in ("int64", "int32")) or (src == "bool" and dst == "float32"):
        return Tensor(x.view, dst) if isinstance(x, Tensor) else Const(x.array.astype(dst), dst)
    if src in ("int64", "int32") and dst in ("float32", "bool"):
        f = low.new_tensor(var.name, x.shape, "float32")
        em.emit_unary(scope.prog, "itof", f.view, x.view)
        if dst == "bool":
            # x != 0 for integers: min(x * x, 1)
            em.emit_binary(scope.prog, "vmul", f.view, f.view, f.view)
            one = low.to_sram(Const(np.ones(1, np.float32), "float32"), var.name)
            em.emit_binary(scope.prog, "vmin", f.view, f.view, one.view.broadcast_to(f.shape))
        return Tensor(f.view, dst)
    raise CompileError(f"binding '{var.name}': cast from {src} to {dst} is not supported")


def _h_logical(mnemonic: str):
    def handler(scope: _Scope, var, expr, args):
        for a in args:
            if a.dtype != "bool":
                raise CompileError(f"binding '{var.name}': logical op on {a.dtype}")
        return binary(scope, var, mnemonic, args[0], args[1], inplace=[a for a in expr.args if is_var(a)])

    return handler


def _h_logical_not(scope: _Scope, var, expr, args):
    x = scope.low.to_sram(args[0], var.name)
    out = scope.out_tensor(var, x, [expr.args[0]])
    em.emit_immediate(scope.prog, "vmuli", out.view, x.view, -1.0)
    em.emit_immediate(scope.prog, "vaddi", out.view, out.view, 1.0)
    return out


def _select_term(scope: _Scope, var: Any, mask: Tensor, val: Value, shape: tuple[int, ...], what: str) -> Tensor:
    """mask * val for a 0/1 mask, exact: 0 where mask is 0 (even for an infinite scalar val), val where 1."""
    out = scope.low.new_tensor(f"{var.name}.{what}", shape, "float32")
    if isinstance(val, Const) and val.array.size == 1:
        v = float(val.array.reshape(-1)[0])
        src = mask.view.broadcast_to(shape)
        if np.isfinite(v):
            em.emit_immediate(scope.prog, "vmuli", out.view, src, v)
        else:  # 1 * FLT_MAX * 2 overflows to inf while 0 stays 0 (0 * inf would be NaN)
            em.emit_immediate(scope.prog, "vmuli", out.view, src, float(np.sign(v)) * float(np.finfo(np.float32).max))
            em.emit_immediate(scope.prog, "vmuli", out.view, out.view, 2.0)
        return out
    return binary(scope, var, "vmul", mask, val, out=out)


def _h_where(scope: _Scope, var, expr, args):
    cond, x, y = args
    if cond.dtype != "bool":
        raise CompileError(f"binding '{var.name}': where with a {cond.dtype} condition")
    _float_only(var, x, y)
    for c in (x, y):
        if isinstance(c, Const) and np.any(np.isnan(c.array)):
            raise CompileError(f"binding '{var.name}': where with NaN constants is not supported")
        if isinstance(c, Const) and c.array.size > 1 and not np.all(np.isfinite(c.array)):
            raise CompileError(f"binding '{var.name}': where with non-finite constant tensors is not supported")
    # where(c, x, y) = c * x + (1 - c) * y, exact for c in {0, 1} and finite (or scalar infinite) x, y
    shape = _shape(var)
    low = scope.low
    c = low.to_sram(cond, var.name)
    inv = low.new_tensor(f"{var.name}.not", c.shape, "float32")
    em.emit_immediate(scope.prog, "vmuli", inv.view, c.view, -1.0)
    em.emit_immediate(scope.prog, "vaddi", inv.view, inv.view, 1.0)
    cx = _select_term(scope, var, c, x, shape, "x")
    cy = _select_term(scope, var, inv, y, shape, "y")
    out = scope.out_tensor(var, cx)
    em.emit_binary(scope.prog, "vadd", out.view, cx.view, cy.view)
    return out


def _h_take(scope: _Scope, var, expr, args):
    data, idx = args
    axis = int(expr.attrs.axis) if expr.attrs.axis is not None else 0
    low = scope.low
    dshape = data.array.shape if isinstance(data, Const) else data.shape
    axis %= len(dshape)
    out_shape = _shape(var)
    if isinstance(idx, Const):
        ids = idx.array.astype(np.int64).reshape(-1)
        ids = np.where(ids < 0, ids + dshape[axis], ids)
        if ids.size and (ids.min() < 0 or ids.max() >= dshape[axis]):
            raise CompileError(f"binding '{var.name}': take index out of range")
        if isinstance(data, Const):
            return Const(np.take(data.array, ids.reshape(idx.array.shape), axis=axis), data.dtype)
        step = int(ids[1] - ids[0]) if ids.size > 1 else 1
        if ids.size >= 1 and np.array_equal(ids, ids[0] + step * np.arange(ids.size)) and step >= 0:
            v = data.view.index(axis, int(ids[0]), ids.size, step)
            v2 = v.reshape(out_shape)
            if v2 is not None:
                return Tensor(v2, data.dtype)
        out = low.new_tensor(var.name, (*dshape[:axis], ids.size, *dshape[axis + 1 :]), data.dtype)
        for j, i in enumerate(ids):
            em.emit_unary(scope.prog, "vmov", out.view.index(axis, j, 1), data.view.index(axis, int(i), 1))
        return Tensor(out.view.reshape(out_shape), data.dtype)
    if idx.dtype not in ("int64", "int32"):
        raise CompileError(f"binding '{var.name}': take indices must be integers")
    if axis != 0:
        raise CompileError(f"binding '{var.name}': take with runtime indices along axis {axis} (axis 0 only)")
    table = low.const_buffer(data.array, data.dtype) if isinstance(data, Const) else data.view
    rows = idx.view.size
    table2 = table.reshape((dshape[0], int(np.prod(dshape[1:])) if len(dshape) > 1 else 1))
    if table2 is None or table2.strides[1] != 1 and table2.shape[1] > 1:
        table2 = low.dense_copy(Tensor(table, data.dtype), var.name).view.reshape(table2.shape if table2 else None)
    iv = idx.view.reshape((rows,))
    if iv is None or iv.strides[0] != 1 and rows > 1:
        iv = low.dense_copy(idx, f"{var.name}.idx").view.reshape((rows,))
    out = low.new_tensor(var.name, (rows, table2.shape[1]), data.dtype)
    em.emit_gather(scope.prog, out.view, table2, iv)
    return Tensor(out.view.reshape(out_shape), data.dtype)


def _h_concat(scope: _Scope, var, expr, args):
    parts = args[0]
    axis = int(expr.attrs.axis) % len(_shape(var))
    if all(isinstance(p, Const) for p in parts):
        return Const(np.concatenate([p.array for p in parts], axis=axis), parts[0].dtype)
    out = scope.low.new_tensor(var.name, _shape(var), _dtype(var))
    off = 0
    for p in parts:
        t = scope.low.to_sram(p, var.name)
        em.emit_unary(scope.prog, "vmov", out.view.index(axis, off, t.shape[axis]), t.view)
        off += t.shape[axis]
    return out


def _h_squeeze_like(scope: _Scope, var, expr, args):
    x = args[0]
    if isinstance(x, Const):
        return Const(x.array.reshape(_shape(var)), x.dtype)
    v = x.view.reshape(_shape(var))
    if v is None:
        v = scope.low.dense_copy(x, var.name).view.reshape(_shape(var))
    return Tensor(v, x.dtype)


def _h_abs(scope: _Scope, var, expr, args):
    _float_only(var, *args)
    x = scope.low.to_sram(args[0], var.name)
    neg = scope.low.new_tensor(f"{var.name}.neg", x.shape, "float32")
    em.emit_immediate(scope.prog, "vmuli", neg.view, x.view, -1.0)
    out = scope.out_tensor(var, x, [expr.args[0]])
    em.emit_binary(scope.prog, "vmax", out.view, x.view, neg.view)
    return out


def _h_sigmoid(scope: _Scope, var, expr, args):
    """1 / (1 + exp(-x)); the ones numerator is a constant tile (only b of a binary op broadcasts)."""
    _float_only(var, *args)
    x = scope.low.to_sram(args[0], var.name)
    t = scope.low.new_tensor(f"{var.name}.t", x.shape, "float32")
    em.emit_immediate(scope.prog, "vmuli", t.view, x.view, -1.0)
    em.emit_unary(scope.prog, "exp", t.view, t.view)
    em.emit_immediate(scope.prog, "vaddi", t.view, t.view, 1.0)
    ones = scope.low.to_sram(Const(np.ones(x.shape, np.float32), "float32"), f"{var.name}.ones")
    out = scope.out_tensor(var, x, [expr.args[0]])
    em.emit_binary(scope.prog, "vdiv", out.view, ones.view, t.view)
    return out


HANDLERS = {
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
    "relax.negative": lambda s, v, e, a: binary(s, v, "vmul", a[0], Const(np.array(-1.0, np.float32), "float32")),
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
    "relax.squeeze": _h_squeeze_like,
    "relax.expand_dims": _h_squeeze_like,
    "relax.flatten": _h_squeeze_like,
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
