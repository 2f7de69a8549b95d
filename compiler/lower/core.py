"""The lowering core: lowered values (tensor views, constants), buffers and constants of the tile program, and the
walk over a Relax function's bindings that dispatches each to a plain-op or composite handler."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.compression import CompressionOptions, InPlaceFormat
from edgebert.compiler.hierarchy.optrace import OpTrace, Site
from edgebert.compiler.matmul import PackedWeight, StagingRing
from edgebert.compiler.relax_passes import composite_attrs
from edgebert.compiler.relax_passes.exprs import vars_in
from edgebert.compiler.tile_ir import Buffer, TileProgram
from edgebert.compiler.views import View, fresh_view, memory_order
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig

#: Relax dtype -> storage dtype (bool is stored as fp32 0.0/1.0: masks feed float arithmetic).
STORAGE = {"float32": "f32", "bool": "f32", "int64": "i32", "int32": "i32"}
#: The constants of the module being compiled, shared by its lowerings (the resident attempt and the blocked one):
#: Relax constant node (pointer hash) -> (node, read-only array), id(array) -> (array, storage, bytes, content key).
#: Entries hold their node / array, so no pointer is reused while cached; a new module clears them.
_CACHE: dict[str, Any] = {"mod": None, "arrays": {}, "raw": {}}
#: ops whose result is (usually) a view of their argument: a tensor in DRAM stays there
VIEW_OPS = {"relax.reshape", "relax.permute_dims", "relax.broadcast_to", "relax.squeeze", "relax.expand_dims",
            "relax.flatten", "relax.take"}


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


@dataclass(frozen=True)
class Dest:
    """What an op produces: the base name of its buffer, its shape and its Relax dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @classmethod
    def of(cls, var: Any) -> Dest:
        """The destination of a Relax binding var."""
        return cls(var.name, shape_of(var), dtype_of(var))


# ---- Relax expression helpers ------------------------------------------------------------------------------------


def is_var(x: Any) -> bool:
    return type(x).__name__ in ("Var", "DataflowVar")


def is_const(x: Any) -> bool:
    return type(x).__name__ == "GenericConst"


def const_array(x: Any) -> np.ndarray:
    return x.value.numpy()


def op_name(call: Any) -> str | None:
    """The Relax operator a call applies (e.g. `relax.add`), None for calls of functions."""
    op = getattr(call, "op", None)
    return getattr(op, "name", None) if op is not None and type(op).__name__ == "Op" else None


def scalar_of(x: Any) -> float | None:
    """The value of a constant holding one element, else None."""
    if is_const(x):
        a = const_array(x)
        if a.size == 1:
            return float(a.reshape(-1)[0])
    return None


def shape_of(expr: Any) -> tuple[int, ...]:
    """The static shape of a Relax expression (CompileError when it is not static)."""
    try:
        return tuple(int(d) for d in expr.ty.shape.values)
    except (AttributeError, TypeError):
        raise CompileError(f"'{getattr(expr, 'name', expr)}': shape is not static") from None


def dtype_of(expr: Any) -> str:
    return str(expr.ty.dtype)


def storage(dtype: str, what: str) -> str:
    """The storage dtype of a Relax dtype (CompileError naming `what` when unsupported)."""
    if dtype not in STORAGE:
        raise CompileError(f"{what}: dtype {dtype} is not supported (float32, bool, int32/int64 indices only)")
    return STORAGE[dtype]


def broadcasts(view: View) -> bool:
    """True when some dim of size > 1 has stride 0 (several elements share one address)."""
    return any(s == 0 and d > 1 for d, s in zip(view.shape, view.strides, strict=True))


def function_bindings(func: Any) -> list[Any]:
    """The bindings of a function's body that its result depends on, in order."""
    bindings = [b for blk in func.body.blocks for b in blk.bindings]
    live = set(vars_in(func.body.body))
    keep = []
    for b in reversed(bindings):
        if b.var in live:
            keep.append(b)
            live.update(vars_in(b.value))
    return keep[::-1]


def composite_of(func: Any) -> str | None:
    """The `Composite` attribute of a function (e.g. `edgebert.dense`), None for other functions."""
    attrs = getattr(func, "attrs", None)
    return str(attrs["Composite"]) if attrs is not None and "Composite" in attrs else None


# ---- handlers ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompositeCall:
    """One call of an `edgebert.*` composite as its handler sees it: the arguments already lowered (tensor views or
    constants, in the composite's canonical parameter order: the IR contract, relax_passes/__init__.py)."""

    composite: str  # e.g. "edgebert.dense"
    dest: Dest  # the result: binding name, shape, dtype
    args: tuple[Value, ...]
    reusable: tuple[bool, ...]  # arg i is a tensor whose buffer dies at this call: the handler may write over it
    attrs: dict[str, Any]  # `relax_passes.composite_attrs` of the composite function

    def out(self, *reuse: int) -> Out:
        """Where the handler writes the call's result: over the first argument at `reuse` that dies here and fits,
        else a fresh row-major buffer."""
        return Out(self.dest, tuple(self.args[i] for i in reuse if self.reusable[i]))


@dataclass(frozen=True)
class Out:
    """Where an op writes its result `dest`: over the first of `reuse` (inputs that die at the op) that fits, else a
    fresh buffer in `order()` (None: `like`'s layout, or row-major)."""

    dest: Dest
    reuse: tuple[Tensor, ...] = ()
    order: Callable[[], tuple[int, ...] | None] | None = None

    def tensor(self, low: Lowerer, like: Tensor | None = None) -> Tensor:
        t = low.reused(self.dest, self.reuse)
        if t is not None:
            return t
        return low.fresh(self.dest, like, self.order() if self.order is not None else None)

    def swapped(self) -> Out:
        """The same, preferring the other operand of a binary op first (the operands were swapped)."""
        return Out(self.dest, self.reuse[::-1], self.order)


#: handler(scope, binding var, call expression, lowered arguments) -> value of a plain Relax op
OpHandler = Callable[["Scope", Any, Any, list], Value]
#: handler(scope, call) -> value of a composite
CompositeHandler = Callable[["Scope", CompositeCall], Value]


class Step:
    """One unit of a function body's lowering: a binding, a layer loop, an exit head's code, ..."""

    def lower(self, scope: Scope) -> None:
        raise NotImplementedError


@dataclass
class BindingStep(Step):
    """Lower one binding."""

    binding: Any

    def lower(self, scope: Scope) -> None:
        scope.lower_binding(self.binding)


# ---- the lowerer ---------------------------------------------------------------------------------------------------


class Lowerer:
    """Appends tile instructions to `prog` for Relax functions of `mod`; owns buffers and constants."""

    def __init__(self, mod: Any, hw: HardwareConfig, prog: TileProgram, ring: StagingRing,
                 ops: dict[str, OpHandler], composites: dict[str, CompositeHandler],
                 foldable: dict[str, Callable[..., np.ndarray]]) -> None:
        self.mod, self.hw, self.prog, self.ring = mod, hw, prog, ring
        self.ops, self.composites, self.foldable = ops, composites, foldable
        self._consts: dict[bytes, Buffer] = {}
        self._count = 0
        self._composite_attrs: dict[str, dict[str, Any]] = {}
        self.pinned: set[int] = set()  # ids of buffers never overwritten in place (inputs, loop carries)
        self.loop_depth = 0
        self.compression: CompressionOptions | None = None  # AF8 / sparse weights (compiler/compression.py)
        self.trace = OpTrace()  # what this walk lowered, op by op (the memory-hierarchy plan reads it)
        self.notes: dict[str, Any] = {}  # facts a handler reports about the op being lowered (e.g. a_exp)
        #: the blocked lowering of a memory-hierarchy plan (lower/blocked.py), None: every tensor stays in SRAM
        self.blocked: Any = None
        self._occurrences: dict[tuple[int, str], int] = {}

    @staticmethod
    def forget_constants() -> None:
        """Empty the module's constant cache (a failed attempt's entries would otherwise stay: each blocked lowering
        of an unrolled BERT-base adds hundreds of MB)."""
        _CACHE.update(mod=None, arrays={}, raw={})

    def constant(self, expr: Any) -> np.ndarray:
        """The array of a Relax constant, one read-only numpy array per IR node: every use of a shared weight sees
        the same array, so content keys and encodings computed for it are computed once (compression.py)."""
        if _CACHE["mod"] is not self.mod:
            _CACHE.update(mod=self.mod, arrays={}, raw={})
        hit = _CACHE["arrays"].get(hash(expr))
        if hit is not None and hit[0].same_as(expr):
            return hit[1]
        arr = const_array(expr)
        arr.flags.writeable = False
        _CACHE["arrays"][hash(expr)] = (expr, arr)
        return arr

    def next_site(self, fname: str, var: Any) -> Site:
        """The site of this lowering of binding `var` of function `fname` (the n-th time it is lowered)."""
        key = (hash(var), fname)  # the IR node (its Python wrapper changes between accesses)
        n = self._occurrences.get(key, 0)
        self._occurrences[key] = n + 1
        return (hash(var), fname, n)

    def record(self, kind: str, name: str, fname: str, site: Site | None, args: list[Any], result: Any,
               start: int, expr: Any = None, attrs: dict[str, Any] | None = None,
               new_value: bool | None = None, var: Any = None) -> None:
        """Append an event to the op trace (with the notes the handler left)."""
        notes = {**(attrs or {}), **self.notes}
        self.notes = {}
        self.trace.record(kind, name, fname, site, args, result, start, len(self.prog.insts), self.loop_depth,
                          expr, notes, new_value, var)

    # ---- buffers ---------------------------------------------------------------------------------
    def buffer_name(self, base: str) -> str:
        self._count += 1
        return f"{base}.{self._count}"

    def new_tensor(self, name: str, shape: tuple[int, ...], dtype: str, order: tuple[int, ...] | None = None) -> Tensor:
        st = storage(dtype, name)
        size = int(np.prod(shape)) if shape else 1
        buf = self.prog.buffer(self.buffer_name(name), max(size, 1) * 4, "act")
        buf.what = f"{dtype}{list(shape)}"
        return Tensor(fresh_view(buf, shape, st, order), dtype)

    def reused(self, dest: Dest, reuse: Iterable[Tensor]) -> Tensor | None:
        """The first `reuse` tensor (an input that dies here) `dest` can be written over: same shape and storage,
        no broadcast dims."""
        for t in reuse:
            if t.shape == dest.shape and storage(dest.dtype, dest.name) == t.view.dtype and not broadcasts(t.view):
                return Tensor(t.view, dest.dtype)
        return None

    def fresh(self, dest: Dest, like: Tensor | None = None, order: tuple[int, ...] | None = None) -> Tensor:
        """A new buffer for `dest` in `order` (default: `like`'s memory order when it has dest's rank)."""
        if order is None and like is not None and len(like.shape) == len(dest.shape) and not broadcasts(like.view):
            order = memory_order(like.view)
        return self.new_tensor(dest.name, dest.shape, dest.dtype, order)

    def const_buffer(self, array: np.ndarray, dtype: str) -> View:
        """An eNVM/DRAM constant holding `array` (deduplicated by content)."""
        st = storage(dtype, "constant")
        if st == "f32":
            data = np.ascontiguousarray(array, dtype=np.float32)
        else:
            if array.size and (array.max() > 2**31 - 1 or array.min() < -(2**31)):
                raise CompileError("integer constant does not fit int32")
            data = np.ascontiguousarray(array, dtype=np.int32)
        cached = not data.flags.writeable and _CACHE["mod"] is self.mod  # a constant of the module (Lowerer.constant)
        hit = _CACHE["raw"].get(id(data)) if cached else None
        if hit is not None and hit[0] is data and hit[1] == st:
            raw, key = hit[2], hit[3]
        else:
            raw = data.tobytes()
            key = hashlib.sha256(raw + st.encode()).digest()
            if cached:
                _CACHE["raw"][id(data)] = (data, st, raw, key)
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
        if fmt.af8_bias is not None and not isinstance(fmt, InPlaceFormat):
            packed.codes = self.compression.af8_codes(w, fmt.af8_bias)
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

    def snapshot_consts(self) -> dict[bytes, Buffer]:
        """The constant cache (trial lowerings restore it with `restore_consts`)."""
        return dict(self._consts)

    def restore_consts(self, consts: dict[bytes, Buffer]) -> None:
        self._consts = consts

    def snapshot_sites(self) -> dict[tuple[int, str], int]:
        """How many times each binding has been lowered (`next_site`): a trial lowering of a layer loop's copy k
        restores the count from before copy 1, so copy k's bindings have copy 1's sites (and the memory-hierarchy
        plan's decisions for them)."""
        return dict(self._occurrences)

    def restore_sites(self, counts: dict[tuple[int, str], int]) -> None:
        self._occurrences = dict(counts)

    def forget_consts(self, dead: set[int]) -> None:
        """Drop buffers (by id) from the constant cache, so nothing later reuses them."""
        self._consts = {h: b for h, b in self._consts.items() if id(b) not in dead}

    def to_sram(self, value: Value, what: str) -> Tensor:
        """A tensor in SRAM: constants are loaded (once per use) into a fresh activation buffer, a tensor the
        memory-hierarchy plan spilled to DRAM is loaded whole."""
        if isinstance(value, Tensor):
            if self.blocked is not None and value.view.buffer.space != "sram":
                return self.blocked.to_sram(value, what)
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

    def composite_attrs(self, gv: Any, func: Any) -> dict[str, Any]:
        """`relax_passes.composite_attrs` of a composite function (cached per function)."""
        key = gv.name_hint
        if key not in self._composite_attrs:
            self._composite_attrs[key] = composite_attrs(func)
        return self._composite_attrs[key]

    # ---- functions -------------------------------------------------------------------------------
    def lower_function(self, func: Any, args: list[Value], name: str, bindings: list[Any] | None = None,
                       steps: Iterable[Step] | None = None) -> Value:
        """Lower `func`'s body with its params bound to `args`; returns the value of its result.

        `bindings` (default: the live ones, in order) and `steps` (default: one BindingStep each) let the caller
        (lower/program.py) lower `main` in another order, with layer loops and exit heads."""
        consts = {p: _relax_const(a) for p, a in zip(func.params, args, strict=True) if isinstance(a, Const)}
        if consts:
            func = func.bind_params(consts)
            args = [a for a in args if not isinstance(a, Const)]
        bindings = function_bindings(func) if bindings is None else bindings
        scope = Scope(self, dict(zip(func.params, args, strict=True)), bindings, func.body.body, name)
        for step in steps if steps is not None else [BindingStep(b) for b in bindings]:
            step.lower(scope)
        return scope.value_of(func.body.body)


def _relax_const(c: Const) -> Any:
    from tvm import relax

    return relax.const(c.array, c.dtype)


class Scope:
    """Lowering state of one function body: its environment and who uses each var."""

    def __init__(self, low: Lowerer, env: dict[Any, Value], bindings: list[Any], result: Any, name: str) -> None:
        self.low, self.env, self.fname = low, env, name
        self.prog = low.prog
        self.users: dict[Any, list[Any]] = defaultdict(list)  # var -> binding vars using it (None: the result)
        for b in bindings:
            for v in vars_in(b.value):
                self.users[v].append(b.var)
        for v in vars_in(result):
            self.users[v].append(None)
        self.all_defs = {b.var: b.value for b in bindings}
        self.order = list(bindings)  # the bindings in lowering order (an op of the memory-hierarchy plan spans several)
        self.position = {hash(b.var): i for i, b in enumerate(self.order)}

    # ---- values ------------------------------------------------------------------------------------
    def value_of(self, expr: Any) -> Value:
        if is_var(expr):
            if expr not in self.env:
                raise CompileError(f"{self.fname}: '{expr.name}' used before definition")
            return self.env[expr]
        if is_const(expr):
            return Const(self.low.constant(expr), dtype_of(expr))
        kind = type(expr).__name__
        if kind == "Tuple":
            return tuple(self.value_of(f) for f in expr.fields)
        if kind == "TupleGetItem":
            return self.value_of(expr.tuple_value)[expr.index]
        if kind in ("ShapeExpr", "PrimValue", "StringImm", "DataTypeImm", "IntImm", "FloatImm"):
            return None  # attributes carried as arguments; handlers read them from the call
        raise CompileError(f"{self.fname}: unsupported expression {kind}")

    def dead_after(self, var: Any, binding_var: Any) -> bool:
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

    def dying(self, exprs: Iterable[Any], binding_var: Any) -> list[Tensor]:
        """The tensors of `exprs` (operand vars of the binding of `binding_var`) whose buffers die at it."""
        return [self.env[e] for e in exprs if is_var(e) and self.dead_after(e, binding_var)]

    def out(self, var: Any, inplace: Iterable[Any] = ()) -> Out:
        """Where the binding of `var` writes: over a dying operand in `inplace` (same layout), else a fresh buffer
        in the layout that makes a sole `permute_dims` consumer a view."""
        dest = Dest.of(var)
        return Out(dest, tuple(self.dying(inplace, var)), lambda: self.preferred_order(var, dest.shape))

    def out_tensor(self, var: Any, like: Tensor | None = None, inplace: Iterable[Any] = ()) -> Tensor:
        """`out(var, inplace).tensor(like)`."""
        return self.out(var, inplace).tensor(self.low, like)

    def preferred_order(self, var: Any, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Physical dim order making a sole permute_dims consumer a free view."""
        us = self.users.get(var, [])
        if len(us) != 1 or us[0] is None:
            return None
        call = self.all_defs.get(us[0])
        name = op_name(call) if call is not None else None
        if name == "relax.permute_dims" and call.attrs.axes is not None:
            return tuple(int(a) for a in call.attrs.axes)
        if name == "relax.reshape" and shape_of(us[0]) == shape:
            return self.preferred_order(us[0], shape)
        return None

    # ---- bindings ----------------------------------------------------------------------------------
    def lower_binding(self, b: Any) -> None:
        var, expr = b.var, b.value
        site = self.low.next_site(self.fname, var)
        blocked = self.low.blocked
        if blocked is not None and blocked.lower(self, b, site):  # a group of the memory-hierarchy plan
            return
        name = op_name(expr)
        if name is None:
            kind = type(expr).__name__
            if kind in ("Tuple", "TupleGetItem", "Var", "DataflowVar", "GenericConst"):
                self.env[var] = self.value_of(expr)
                return
            if kind == "Call" and type(expr.op).__name__ == "GlobalVar":
                self.env[var] = self._lower_call(var, expr, site)
                return
            raise CompileError(f"{self.fname}: binding '{var.name}' ({kind}) cannot be lowered")
        handler = self.low.ops.get(name)
        if handler is None:
            raise CompileError(
                f"{self.fname}: op {name} (binding '{var.name}') is not supported by the edgebert backend"
            )
        args = [self.value_of(a) for a in expr.args]
        fold = self.low.foldable.get(name)
        if fold is not None and all(isinstance(a, Const) for a in args if a is not None and not isinstance(a, tuple)):
            self.env[var] = Const(fold(var, *[a.array for a in args if a is not None]), dtype_of(var))
            return
        start = len(self.prog.insts)
        if blocked is not None and name not in VIEW_OPS:
            args = blocked.resident_args(self, args)
        self.env[var] = self._guarded(var, name, lambda: handler(self, var, expr, args))
        if blocked is not None:
            self.env[var] = blocked.place_result(self, site, self.env[var])
        self.low.record(name, var.name, self.fname, site, args, self.env[var], start, expr, var=var)

    def _guarded(self, var: Any, what: str, lower: Callable[[], Value]) -> Value:
        try:
            return lower()
        except CompileError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, AssertionError) as exc:
            # a lowering bug must still end in one clear line naming the binding, not a numpy traceback
            raise CompileError(
                f"{self.fname}: internal error lowering '{var.name}' ({what}): {type(exc).__name__}: {exc}"
            ) from exc

    def _lower_call(self, var: Any, expr: Any, site: Site) -> Value:
        """A call of a composite (its handler) or of another function (lowered inline, e.g. an unrolled layer)."""
        low = self.low
        callee = low.mod[expr.op]
        args = [self.value_of(a) for a in expr.args]
        composite = composite_of(callee)
        if composite is not None:
            handler = low.composites.get(composite)
            if handler is None:
                raise CompileError(f"{self.fname}: binding '{var.name}' calls composite {composite} "
                                   f"({expr.op.name_hint}), which the edgebert backend does not lower")
            reusable = tuple(isinstance(a, Tensor) and is_var(e) and self.dead_after(e, var)
                             for e, a in zip(expr.args, args, strict=True))
            start = len(self.prog.insts)
            if low.blocked is not None:  # tensors in DRAM are loaded whole (small ones: the plan blocks the rest)
                loaded = low.blocked.resident_args(self, args)
                reusable = tuple(r or (a is not b) for r, a, b in zip(reusable, args, loaded, strict=True))
                args = loaded
            attrs = low.composite_attrs(expr.op, callee)
            call = CompositeCall(composite, Dest.of(var), tuple(args), reusable, attrs)
            value = self._guarded(var, composite, lambda: handler(self, call))
            if low.blocked is not None:
                value = low.blocked.place_result(self, site, value)
            low.record(composite, var.name, self.fname, site, args, value, start, expr, attrs, var=var)
            return value
        pins = set()
        for a_expr, a in zip(expr.args, args, strict=True):
            if isinstance(a, Tensor) and not (is_var(a_expr) and self.dead_after(a_expr, var)):
                pins.add(id(a.view.buffer))
        new_pins = pins - low.pinned
        low.pinned |= new_pins
        value = low.lower_function(callee, args, expr.op.name_hint)
        low.pinned -= new_pins
        return value
