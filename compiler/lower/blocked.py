"""The blocked lowering of a memory-hierarchy plan (compiler/hierarchy/plan.py): tensors the plan spills live in DRAM,
and each op of the plan is emitted block by block with its operands streamed through small SRAM slots.

`BlockedLowering` is the hook the lowering walk calls (lower.core.Scope): for a binding that starts an op of the plan
it emits the whole op (every binding of the group) with the op's executor; other bindings are lowered as usual with
their DRAM arguments loaded whole (`resident_args`) and their result stored when the plan spills it
(`place_result`). Executors: dense and FFN (lower/blocked_matmul.py), row chains and attention (here).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.hierarchy.plan import GroupPlan, MemoryPlan
from edgebert.compiler.lower import plain_ops
from edgebert.compiler.lower.core import Const, Dest, Lowerer, Out, Scope, Tensor, Value, storage
from edgebert.compiler.tile_ir import ITEMSIZE, Buffer, TileInst, TileProgram
from edgebert.compiler.tiling import MAX_FIELD
from edgebert.compiler.views import View, fresh_view
from edgebert.isa.errors import CompileError
from edgebert.isa.table import DTYPES

#: the value a streamed (fused) intermediate has in the lowering environment: nothing outside its op reads it
STREAMED = ("streamed",)


# ---- tensors in DRAM and SRAM slots ----------------------------------------------------------------------------------


def in_dram(value: Any) -> bool:
    return isinstance(value, Tensor) and value.view.buffer.space != "sram"


def spill_tensor(low: Lowerer, name: str, shape: tuple[int, ...], dtype: str = "float32") -> Tensor:
    """A tensor homed in DRAM (placed by liveness after the program's I/O: memory_plan.place_spills)."""
    st = storage(dtype, name)
    size = int(np.prod(shape)) if shape else 1
    buf = low.prog.buffer(low.buffer_name(f"{name}.dram"), max(size, 1) * ITEMSIZE[st], "spill", "dram")
    buf.what = f"{dtype}{list(shape)}"
    return Tensor(fresh_view(buf, shape, st), dtype)


def home_tensor(low: Lowerer, dest: Dest, home: str) -> Tensor:
    """The result of an op where the plan keeps it: a fresh SRAM tensor or a DRAM home."""
    if home == "dram":
        return spill_tensor(low, dest.name, dest.shape, dest.dtype)
    return low.new_tensor(dest.name, dest.shape, dest.dtype)


def matrix(view: View, rows: int, cols: int) -> View | None:
    """`view` as [rows, cols] dense along the columns (None when no strides express that)."""
    v = view.reshape((rows, cols))
    if v is None or (cols > 1 and v.strides[1] != 1):
        return None
    return v


class Slots:
    """SRAM buffers a stream rotates through (two: loading block i+1 overlaps computing block i). Each buffer is
    sized after the op to the bytes its blocks used (`finish`)."""

    def __init__(self, prog: TileProgram, name: str, count: int = 2) -> None:
        self.prog = prog
        self.buffers = [prog.buffer(f"{name}.slot{i}", 1, "act") for i in range(max(count, 1))]
        self.next = 0
        self.nbytes = 0  # for StagingRing compatibility (weight tiles): the dense size of one tile
        self.start = len(prog.insts)

    def take(self) -> Buffer:
        buf = self.buffers[self.next % len(self.buffers)]
        self.next += 1
        return buf

    def view(self, shape: tuple[int, ...], dtype: str = "f32") -> View:
        buf = self.take()
        buf.nbytes = max(buf.nbytes, int(np.prod(shape)) * ITEMSIZE[dtype])
        return fresh_view(buf, shape, dtype)

    def finish(self) -> None:
        """Grow each buffer to the furthest byte an instruction touched (weight tiles are sized by their encoding)."""
        ids = {id(b): b for b in self.buffers}
        for inst in self.prog.insts[self.start:]:
            for ref in inst.refs:
                b = ids.get(id(ref.buffer))
                if b is not None:
                    b.nbytes = max(b.nbytes, ref.offset + ref.extent)


def _dma(prog: TileProgram, mnemonic: str, dst: View, src: View) -> None:
    """One DMA of two [rows, cols] views dense along their columns (the blocks of this module), else emit_dma."""
    if len(dst.shape) != 2 or dst.shape != src.shape or dst.dtype != src.dtype or \
            (dst.shape[1] > 1 and (dst.strides[1] != 1 or src.strides[1] != 1)) or \
            max(dst.shape) > MAX_FIELD or max(dst.strides[0], src.strides[0]) > MAX_FIELD:
        em.emit_dma(prog, mnemonic, dst, src)
        return
    rows, cols = dst.shape
    d_stride = dst.strides[0] if rows > 1 and dst.strides[0] != cols else 0
    s_stride = src.strides[0] if rows > 1 and src.strides[0] != cols else 0
    inst = TileInst(mnemonic, {"rows": rows, "cols": cols, "dst_stride": d_stride, "src_stride": s_stride,
                               "dtype": DTYPES.index(dst.dtype)})
    em.add_operand(inst, "src", src, src.offset, (rows - 1) * (s_stride or cols) + cols, False)
    em.add_operand(inst, "dst", dst, dst.offset, (rows - 1) * (d_stride or cols) + cols, True)
    prog.emit(inst)


def load(prog: TileProgram, dst: View, src: View) -> None:
    """`ld` a strided view into SRAM (from DRAM, eNVM or SRAM)."""
    _dma(prog, "ld", dst, src)


def store(prog: TileProgram, dst: View, src: View) -> None:
    _dma(prog, "st", dst, src)


def row_blocks(total: int, block: int) -> list[tuple[int, int]]:
    return [(r0, min(block, total - r0)) for r0 in range(0, total, max(block, 1))]


# ---- the hook --------------------------------------------------------------------------------------------------------


class Member:
    """One binding of a planned op in the current walk: its own var and call, the traced event's facts."""

    def __init__(self, event: Any, binding: Any) -> None:
        self.event, self.var, self.expr, self.name = event, binding.var, binding.value, binding.var.name
        self.index, self.writes, self.kind, self.attrs = event.index, event.writes, event.kind, event.attrs


class BlockedLowering:
    """Lowers a program the way `plan` decided (module docstring)."""

    def __init__(self, low: Lowerer, plan: MemoryPlan) -> None:
        self.low, self.plan = low, plan
        self.aliases: dict[int, int] = {}  # hash(var) -> hash(var) of the binding whose decisions it takes
        self.carries: dict[int, Tensor] = {}  # value id of a loop's carried state -> its tensor
        self.copy_rows_bytes = max(1024, min(plan.budget // 8, 32768))

    # ---- sites -----------------------------------------------------------------------------------------------
    def resolve(self, site: Any) -> Any:
        vid, fname, n = site
        return (self.aliases.get(vid, vid), fname, n)

    def alias(self, vars_k: list[Any], vars_1: list[Any]) -> None:
        """Lower head k's bindings (`vars_k`) exactly as head 1's (`vars_1`): the exit loop's trial lowerings."""
        self.aliases = {hash(a): hash(b) for a, b in zip(vars_k, vars_1, strict=True)}

    def unalias(self) -> None:
        self.aliases = {}

    # ---- the hooks the walk calls ------------------------------------------------------------------------------
    def lower(self, scope: Scope, binding: Any, site: Any) -> bool:
        """Lower `binding` as part of an op of the plan; False: not a planned op (lower it as usual)."""
        found = self.plan.group_at(self.resolve(site))
        if found is None:
            return False
        gp, index = found
        if gp.group.kind == "whole":
            return False
        if index != gp.group.first:
            if binding.var not in scope.env:
                raise CompileError(f"internal: binding '{binding.var.name}' of op {gp.group.name} lowered out of order")
            return True
        events = self.members(scope, binding, gp)
        from edgebert.compiler.lower.blocked_matmul import lower_dense_group, lower_ffn_group

        executor = {"dense": lower_dense_group, "ffn": lower_ffn_group, "rows": lower_rows_group,
                    "attention": lower_attention_group}[gp.group.kind]
        executor(self, scope, gp, events)
        return True

    def members(self, scope: Scope, binding: Any, gp: GroupPlan) -> list[Member]:
        """The bindings of the op in this walk (from `binding` on), each with its trace event: a trial lowering of
        exit head k follows head 1's decisions with head k's own bindings."""
        start = scope.position.get(hash(binding.var))
        events = [self.plan.trace.events[i] for i in gp.group.events]
        if start is None or start + len(events) > len(scope.order):
            raise CompileError(f"internal: binding '{binding.var.name}': op {gp.group.name} not found in the walk")
        return [Member(e, b) for e, b in zip(events, scope.order[start:start + len(events)], strict=True)]

    def home_of(self, event: Any) -> str:
        return self.plan.home_of_event(event.index)

    def result_home(self, event: Any, dtype: str | None = None) -> Tensor:
        """Where `event`'s result goes: the loop's carried state when the plan aliases it, else a new home."""
        carry = self.carries.get(self.plan.aliases.get(event.writes, -1))
        if carry is not None and carry.shape == low_shape(event):
            return carry
        return home_tensor(self.low, Dest(event.name, low_shape(event), dtype or e_dtype(event)), self.home_of(event))

    def resident_args(self, scope: Scope, args: list[Value]) -> list[Value]:
        """Arguments living in DRAM loaded whole into SRAM (ops the plan does not block: small tensors)."""
        return [self.to_sram(a, "arg") if in_dram(a) else a for a in args]

    def to_sram(self, t: Tensor, name: str) -> Tensor:
        out = self.low.new_tensor(f"{t.view.buffer.name}.{name}", t.shape, t.dtype)
        load(self.low.prog, out.view, t.view)
        return out

    def place_result(self, scope: Scope, site: Any, value: Value) -> Value:
        """Store a result the plan spills (an op lowered whole) into its DRAM home."""
        found = self.plan.group_at(self.resolve(site))
        if found is None or not isinstance(value, Tensor) or in_dram(value):
            return value
        gp, index = found
        if self.plan.home_of_event(index) != "dram":
            return value
        home = spill_tensor(self.low, value.view.buffer.name, value.shape, value.dtype)
        store(self.low.prog, home.view, value.view)
        return home

    def loop_carry(self, scope: Scope, site: Any, first: Value, name: str) -> Tensor:
        """The loop-carried state where the plan keeps it, initialised from the first layer's input."""
        low = self.low
        index = self.plan.event(site)
        home = self.plan.home_of_event(index) if index is not None else "sram"
        if isinstance(first, Const):
            first = low.to_sram(first, name)
        carry = spill_tensor(low, name, first.shape, first.dtype) if home == "dram" else \
            low.new_tensor(name, first.shape, first.dtype)
        self.copy(carry.view, first.view, name)
        if index is not None and self.plan.trace.events[index].writes is not None:
            self.carries[self.plan.trace.events[index].writes] = carry
        return carry

    def copy(self, dst: View, src: View, name: str) -> None:
        """dst <- src between any two levels (DRAM to DRAM through SRAM row blocks)."""
        prog = self.low.prog
        if dst.buffer.space == "sram" and src.buffer.space == "sram":
            em.emit_unary(prog, "vmov", dst, src)
        elif dst.buffer.space == "sram":
            load(prog, dst, src)
        elif src.buffer.space == "sram":
            store(prog, dst, src)
        else:
            cols = dst.shape[-1] if dst.shape else 1
            rows = int(np.prod(dst.shape[:-1])) if len(dst.shape) > 1 else 1
            d2, s2 = dst.reshape((rows, cols)), src.reshape((rows, cols))
            if d2 is None or s2 is None:
                raise CompileError(f"internal: {name}: DRAM copy of a view that is not row-major")
            per = max(1, self.copy_rows_bytes // max(cols * dst.itemsize, 1))
            slots = Slots(prog, f"{name}.copy")
            for r0, rb in row_blocks(rows, per):
                tmp = slots.view((rb, cols), dst.dtype)
                load(prog, tmp, s2.index(0, r0, rb))
                store(prog, d2.index(0, r0, rb), tmp)
            slots.finish()


# ---- row-local chains ------------------------------------------------------------------------------------------------


def _row_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    return (int(np.prod(shape[:-1])) if len(shape) > 1 else 1), (shape[-1] if shape else 1)


def _flat_row(value: Value, cols: int) -> Value:
    """A broadcast operand (every leading dim 1) as one row [1, C] (or a scalar constant as is)."""
    if isinstance(value, Const):
        a = value.array
        if a.size == 1:
            return Const(a.reshape(()), value.dtype)
        return Const(a.reshape((1, a.shape[-1])), value.dtype)
    v = value.view.reshape((1, value.shape[-1])) if value.shape else value.view.reshape((1, 1))
    if v is None:
        raise CompileError(f"internal: broadcast operand {value.view.buffer.name} is not one row")
    return Tensor(v, value.dtype)


def _row_op(low: Lowerer, e: Any, dest: Dest, args: list[Value], out: Out) -> Tensor:
    """One row-local op on a block of rows (its arguments already blocks or whole rows)."""
    from edgebert.compiler.hierarchy.groups import BINARY, UNARY

    kind = e.kind
    if kind in BINARY:
        return plain_ops.binary(low, out, BINARY[kind], args[0], args[1])
    if kind in UNARY:
        return plain_ops.unary(low, out, UNARY[kind], args[0])
    if kind == "relax.nn.softmax":
        return plain_ops.softmax(low, out, args[0], 1)
    if kind == "relax.nn.layer_norm":
        a = e.expr.attrs
        return plain_ops.layer_norm(low, out, args[0], args[1], args[2], [-1], float(a.epsilon), bool(a.scale),
                                    bool(a.center))
    if kind == "edgebert.layer_norm":
        a = e.attrs
        return plain_ops.layer_norm(low, out, args[0], args[1], args[2], [-1], a["epsilon"], a["scale"], a["center"])
    if kind == "edgebert.embedding":
        into = out.reuse[0] if out.reuse and out.reuse[0].view.is_contiguous() else None
        return plain_ops.take(low, dest, args[1], args[0], 0, into)
    raise CompileError(f"internal: {kind} is not a row-local op of the blocked lowering")


def lower_rows_group(bl: BlockedLowering, scope: Scope, gp: GroupPlan, events: list[Any]) -> None:
    """A chain of row-local ops per block of r rows: row-shaped inputs sliced (loaded per block from DRAM, double
    buffered), broadcast rows and constants loaded once, outputs stored per block (DRAM) or written in place (SRAM)."""
    low, prog = scope.low, scope.prog
    r = gp.choice.tiling["r"]
    rows, _ = _row_shape(low_shape(events[-1]))
    produced = {e.var: e for e in events}
    outputs = set(gp.group.outputs)
    # inputs: row-shaped ones sliced per block (through slots from DRAM / eNVM), broadcast rows loaded once
    whole: dict[int, Value] = {}
    sliced: dict[int, tuple[View, Slots | None, str]] = {}
    for e in events:
        for i, a in enumerate(e.expr.args):
            if a in produced or hash(a) in whole or hash(a) in sliced:
                continue
            embedding = e.kind == "edgebert.embedding"
            if embedding and i > 0:
                continue  # the table and its wrap constants: gathered straight from eNVM
            value = scope.value_of(a)
            if value is None or isinstance(value, tuple):
                continue
            shape = tuple(value.array.shape) if isinstance(value, Const) else value.shape
            size = int(np.prod(shape)) if shape else 1
            if (embedding and i == 0) or (len(shape) > 1 and _row_shape(shape)[0] == rows and rows > 1):
                cols = size // rows
                if isinstance(value, Const):
                    src = low.const_buffer(value.array, value.dtype).reshape((rows, cols))
                    sliced[hash(a)] = (src, Slots(prog, f"{e.name}.const"), value.dtype)
                    continue
                view = value.view.reshape((rows,)) if embedding else matrix(value.view, rows, cols)
                if view is None:
                    raise CompileError(f"internal: {e.name}: a row-shaped operand is not row-major")
                sliced[hash(a)] = (view, Slots(prog, f"{e.name}.in") if in_dram(value) else None, value.dtype)
                continue
            if isinstance(value, Tensor) and in_dram(value):
                value = bl.to_sram(value, "whole")
            if isinstance(value, Const) and value.array.size > 1:
                value = low.to_sram(value, f"{e.name}.c")
            whole[hash(a)] = value
    # outputs kept in SRAM: allocated whole once, each block writes its rows in place
    homes: dict[Any, Tensor] = {}
    for e in events:
        if e.writes in outputs:
            homes[e.var] = bl.result_home(e)
    out_slots = {e.var: Slots(prog, f"{e.name}.out") for e in events if e.var in homes and in_dram(homes[e.var])}
    for r0, rb in row_blocks(rows, r):
        env: dict[Any, Value] = {}
        for e in events:
            shape = low_shape(e)
            cols = shape[-1]
            args: list[Value] = []
            for a in e.expr.args:
                if a in produced:
                    args.append(env[a])
                    continue
                if hash(a) in whole:
                    args.append(_flat_row(whole[hash(a)], cols) if not isinstance(whole[hash(a)], tuple) else whole[hash(a)])
                    continue
                if hash(a) not in sliced:
                    args.append(scope.value_of(a))
                    continue
                src, slots, dtype = sliced[hash(a)]
                blk = src.index(0, r0, rb)
                if slots is not None:
                    dst = slots.view(blk.shape, blk.dtype)
                    load(prog, dst, blk)
                    blk = dst
                args.append(Tensor(blk, dtype))
            dest = Dest(e.name, (rb, cols), e_dtype(e))
            reuse: tuple[Tensor, ...] = ()
            home = homes.get(e.var)
            if home is not None and not in_dram(home):
                reuse = (Tensor(matrix(home.view, rows, cols).index(0, r0, rb), e_dtype(e)),)
            elif home is not None:
                reuse = (Tensor(out_slots[e.var].view((rb, cols), storage(e_dtype(e), e.name)), e_dtype(e)),)
            result = _row_op(low, e, dest, args, Out(dest, reuse))
            if home is not None and in_dram(home):
                store(prog, matrix(home.view, rows, cols).index(0, r0, rb), result.view)
            elif home is not None and result.view != reuse[0].view:
                bl.copy(reuse[0].view, result.view, e.name)
            env[e.var] = result
    for slots in [*(s for _, s, _ in sliced.values() if s is not None), *out_slots.values()]:
        slots.finish()
    for e in events:
        scope.env[e.var] = homes.get(e.var, STREAMED)
        if e.var in homes and homes[e.var].shape != low_shape(e):
            scope.env[e.var] = Tensor(homes[e.var].view.reshape(low_shape(e)) or homes[e.var].view, e_dtype(e))


def low_shape(e: Any) -> tuple[int, ...]:
    """The shape of the value an event's binding defines."""
    return tuple(int(d) for d in e.var.ty.shape.values)


def e_dtype(e: Any) -> str:
    return str(e.var.ty.dtype)


# ---- attention -------------------------------------------------------------------------------------------------------


def lower_attention_group(bl: BlockedLowering, scope: Scope, gp: GroupPlan, events: list[Any]) -> None:
    from edgebert.compiler.lower.blocked_attention import lower_attention_blocked

    lower_attention_blocked(bl, scope, gp, events[0])
