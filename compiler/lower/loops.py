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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgebert.compiler import emitters as em
from edgebert.compiler.abi import R_LAYER, R_LAYER_LIMIT
from edgebert.compiler.lower.core import Scope, Step, Tensor, Value
from edgebert.compiler.tile_ir import LoopRange, TileInst, TileProgram
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
    """The calls of one layer loop (consecutive bindings of main, each reading the previous one's result)."""

    calls: list[Any]

    def lower(self, scope: Scope) -> None:
        low, prog = scope.low, scope.prog
        first = self.calls[0].value
        callee = low.mod[first.op]
        name = first.op.name_hint
        carry, rest = loop_carry(scope, first)
        label, start = open_loop(prog, name, len(self.calls))
        low.loop_depth += 1
        result = low.lower_function(callee, [carry, *rest], name)
        low.loop_depth -= 1
        if not isinstance(result, Tensor) or result.shape != carry.shape:
            raise CompileError(f"{name}: a layer-loop body must return one tensor shaped like its first argument")
        update_carry(scope, carry, result)
        close_loop(prog, label, start, len(self.calls))
        for b in self.calls:
            scope.env[b.var] = carry
