"""A layer loop (`relax_passes.LayerLoop`: N chained calls of one layer function) as one counted loop body:

    vmov  carry, hidden        ; the loop-carried state lives in one SRAM buffer
    li    r1, 0                ; abi.R_LAYER: layers done (early exit and DVFS read it)
    li    r2, N                ; abi.R_LAYER_LIMIT
    barrier
<layer>.loop<i>:
    ...one layer...            ; ends writing its result into `carry`
    barrier                    ; drains the units: each iteration's tokens balance
    addi  r1, r1, 1
    blt   r1, r2, <layer>.loop<i>

Layers with their own weights (the layer function's trailing `num_weights` parameters, one set per call) have the body
lowered once per layer and checked equal up to the constants it reads (lower/weight_tables.py); those constants form
one table of N blocks, read at r8 + offset with `li r6, S; mul r8, r1, r6` at the top of the body. A body whose
layers lower differently (another scale, compressed tiles of other sizes) is lowered unrolled instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgebert.compiler import emitters as em
from edgebert.compiler.lower.core import Lowerer, Scope, Step, Tensor, Value
from edgebert.compiler.lower.weight_tables import TableUnfit, lower_copies, stack_table
from edgebert.compiler.tile_ir import LoopRange, TileInst, TileProgram
from edgebert.isa.abi import R_LAYER, R_LAYER_LIMIT, R_TMP, R_WEIGHTS, WEIGHT_TABLE
from edgebert.isa.errors import CompileError


def loop_carry(scope: Scope, call: Any) -> tuple[Tensor, list[Value]]:
    """The carried state buffer (a copy of the first call's first argument) and the loop-invariant arguments, all
    pinned: the body never writes over them in place."""
    low = scope.low
    name = call.op.name_hint
    start = len(low.prog.insts)
    site = carry_site(call)
    first = scope.value_of(call.args[0])
    rest = [scope.value_of(a) for a in call.args[1:]]
    if low.blocked is not None:  # the memory-hierarchy plan decides where the carried state lives
        carry = low.blocked.loop_carry(scope, site, first, f"{name}.carry")
    else:
        init = low.to_sram(first, name)
        carry = low.new_tensor(f"{name}.carry", init.shape, init.dtype)
        em.emit_unary(low.prog, "vmov", carry.view, init.view)
    low.pinned.add(id(carry.view.buffer))
    for a in rest:
        if isinstance(a, Tensor):
            low.pinned.add(id(a.view.buffer))
    low.record("carry", f"{name}.carry", scope.fname, site, [first], carry, start, new_value=True)
    return carry, rest


def carry_site(call: Any) -> tuple[int, str, int]:
    """The site of a layer loop's carried state (keyed by the loop's first call)."""
    return (hash(call), "carry", 0)


def update_carry(scope: Scope, carry: Tensor, result: Tensor) -> None:
    """carry <- the layer's result at the end of the body (nothing when the layer wrote it in place)."""
    low = scope.low
    start = len(low.prog.insts)
    same = result.view.buffer is carry.view.buffer and result.view.offset == carry.view.offset and \
        result.shape == carry.shape and result.view.is_contiguous()
    if result.view == carry.view or low.blocked is not None and same:  # written in place: nothing to copy
        low.record("carry-update", carry.view.buffer.name, scope.fname, None, [result], carry, start,
                   new_value=False, attrs={"carry": low.trace.value_of(carry.view)})
        return
    if low.blocked is not None:
        low.blocked.copy(carry.view, result.view, f"{carry.view.buffer.name}.update")
    else:
        em.emit_unary(low.prog, "vmov", carry.view, result.view)
    low.record("carry-update", carry.view.buffer.name, scope.fname, None, [result], carry, start, new_value=False,
               attrs={"carry": low.trace.value_of(carry.view)})


def open_loop(prog: TileProgram, name: str, trips: int) -> tuple[str, int]:
    """The loop head: r1 = 0, r2 = trips, barrier, the body's label; returns (label, first body instruction)."""
    label = f"{name}.loop{len(prog.loops)}"
    prog.emit(TileInst("li", {"rd": R_LAYER, "imm": 0}))
    prog.emit(TileInst("li", {"rd": R_LAYER_LIMIT, "imm": trips}))
    prog.emit(TileInst("barrier"))
    prog.label(label)
    return label, len(prog.insts)


def close_loop(prog: TileProgram, label: str, start: int, trips: int) -> None:
    """The loop tail: barrier, r1 += 1, branch back while r1 < r2."""
    prog.emit(TileInst("barrier"))
    prog.emit(TileInst("addi", {"rd": R_LAYER, "rs1": R_LAYER, "imm": 1}))
    prog.emit(TileInst("blt", {"rs1": R_LAYER, "rs2": R_LAYER_LIMIT}, target=label))
    prog.loops.append(LoopRange(label, start, len(prog.insts), trips))


@dataclass
class LayerLoopStep(Step):
    """The calls of one layer loop (consecutive bindings of main, each reading the previous one's result); the last
    `num_weights` arguments of each call are its layer's own constants."""

    calls: list[Any]
    num_weights: int = 0

    def lower(self, scope: Scope) -> None:
        if not self.num_weights:
            _lower_loop(scope, self.calls, 0)
            return
        saved = _Snapshot(scope.low)
        try:
            _lower_loop(scope, self.calls, self.num_weights)
        except TableUnfit:
            saved.restore()
            for b in self.calls:  # unrolled: each call lowered inline with its own constants
                scope.lower_binding(b)


def _lower_loop(scope: Scope, calls: list[Any], num_weights: int) -> None:
    low, prog = scope.low, scope.prog
    first = calls[0].value
    callee = low.mod[first.op]
    name = first.op.name_hint
    carry, rest = loop_carry(scope, first)
    invariants = rest[:len(rest) - num_weights]
    label, start = open_loop(prog, name, len(calls))
    low.loop_depth += 1
    if num_weights:
        size = prog.emit(TileInst("li", {"rd": R_TMP, "imm": 0}))
        prog.emit(TileInst("mul", {"rd": R_WEIGHTS, "rs1": R_LAYER, "rs2": R_TMP}))
        weights = [[scope.value_of(a) for a in c.value.args[len(c.value.args) - num_weights:]] for c in calls]
        out: list[Value] = []

        def lower_layer(k: int):
            return lambda: out.append(low.lower_function(callee, [carry, *invariants, *weights[k]], name))

        code, new1, slots = lower_copies(low, lower_layer(0), [lower_layer(k) for k in range(1, len(calls))])
        stack_table(prog, low, slots, code, size, R_WEIGHTS, f"{WEIGHT_TABLE}.{name}", new1, len(calls))
        result = out[0]
    else:
        result = low.lower_function(callee, [carry, *rest], name)
    low.loop_depth -= 1
    if not isinstance(result, Tensor) or result.shape != carry.shape:
        raise CompileError(f"{name}: a layer-loop body must return one tensor shaped like its first argument")
    update_carry(scope, carry, result)
    close_loop(prog, label, start, len(calls))
    for b in calls:
        scope.env[b.var] = carry


class _Snapshot:
    """The lowering state before a layer loop, to lower the calls unrolled instead when the loop does not fit."""

    def __init__(self, low: Lowerer) -> None:
        prog = low.prog
        self.low = low
        self.sizes = (len(prog.insts), len(prog.buffers), len(prog.packed_weights), len(prog.loops))
        self.fences, self.labels = set(prog.fences), dict(prog.labels)
        self.consts, self.ring, self.pinned, self.depth = low.snapshot_consts(), low.ring.next, set(low.pinned), \
            low.loop_depth
        self.mark, self.sites = low.trace.mark(), low.snapshot_sites()

    def restore(self) -> None:
        low, prog = self.low, self.low.prog
        n_insts, n_buffers, n_packed, n_loops = self.sizes
        del prog.insts[n_insts:]
        del prog.buffers[n_buffers:]
        del prog.packed_weights[n_packed:]
        del prog.loops[n_loops:]
        prog.fences, prog.labels = self.fences, self.labels
        low.restore_consts(self.consts)
        low.ring.next, low.pinned, low.loop_depth = self.ring, self.pinned, self.depth
        low.trace.rollback(self.mark)
        low.restore_sites(self.sites)
