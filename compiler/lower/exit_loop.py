"""Early exit inside ONE layer loop: layer k + exit head k as one body, the heads' weights as a strided eNVM table.

The compressed model's exit heads have different weights per layer, but the same shapes and code. After
`exit_plan.plan_exits`, main's bindings read `[prologue] call_1 seg_1 call_2 seg_2 ... call_L seg_L [rest]`, where
call_k is the outlined shared layer (`edgebert_layer_<g>`) and seg_k the bindings of head k (plus the tuple item
feeding call_{k+1}). `plan_exit_loop` checks the segments are identical up to the values of their constants;
`lower_exit_loop` then emits

    li r1, 0; li r2, L; barrier
    loop: <layer body>  li r6, S; mul r7, r1, r6  <head 1's code, its constants read at R[r7] + offset>
          vmov exit.logits; entropy f1; addi r3, r1, 1; barrier; bexit f1, T, ee.exit  [DVFS: ExitCode.loop_exit]
          vmov carry <- layer output; barrier; addi r1, r1, 1; blt r1, r2, loop

Head 1's code is lowered once per head (trial lowerings, discarded): the instruction streams must be equal up to
the eNVM constants they read, each constant of head k the same size as head 1's; those constants are laid out as
one table of L blocks of S bytes (block k = head k's constants), addressed with base register r7 = r1 * S. A
head whose code differs (AF8 biases, sparse tiles of other sizes) raises `ExitLoopUnfit`: the backend lowers the
program again unrolled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgebert.compiler.errors import ExitLoopUnfit, StagingTooSmall
from edgebert.compiler.lower.core import Scope, Step, Tensor
from edgebert.compiler.lower.exit_plan import ExitLoopPlan
from edgebert.compiler.lower.exits import ExitCode
from edgebert.compiler.lower.loops import close_loop, loop_carry, open_loop, update_carry
from edgebert.compiler.lower.weight_tables import TableUnfit, lower_copies, stack_table
from edgebert.compiler.tile_ir import TileInst
from edgebert.isa.abi import HEAD_TABLE, R_HEAD, R_LAYER, R_TMP
from edgebert.isa.errors import CompileError


@dataclass
class ExitLoopStep(Step):
    """The layers and exit heads of main (bindings `plan.calls[0]` .. `plan.end`) as one loop body."""

    bindings: list[Any]
    plan: ExitLoopPlan
    exits: ExitCode
    exit_vars: dict[Any, int]  # binding var of head k's logits -> k

    def lower(self, scope: Scope) -> None:
        lower_exit_loop(scope, self.bindings, self.plan, self.exits, self.exit_vars)


def lower_exit_loop(scope: Scope, bindings: list[Any], plan: ExitLoopPlan, exits: ExitCode,
                    exit_vars: dict[Any, int]) -> None:
    """Emit the loop (module docstring); binds the exit heads' vars to the exit logits.

    A body that does not lower as one loop (e.g. AF8 activation biases that differ per layer) raises
    `ExitLoopUnfit`; staging-size errors pass through (the pipeline retries with smaller staging buffers)."""
    try:
        _lower_exit_loop(scope, bindings, plan, exits, exit_vars)
    except (ExitLoopUnfit, StagingTooSmall):
        raise
    except CompileError as exc:
        raise ExitLoopUnfit(f"the layer + head body does not lower as one loop: {exc}") from exc


def _lower_exit_loop(scope: Scope, bindings: list[Any], plan: ExitLoopPlan, exits: ExitCode,
                     exit_vars: dict[Any, int]) -> None:
    low, prog = scope.low, scope.prog
    L = len(plan.calls)
    first = bindings[plan.calls[0]].value
    callee = low.mod[first.op]
    name = first.op.name_hint
    carry, rest = loop_carry(scope, first)
    label, start = open_loop(prog, name, L)
    low.loop_depth += 1
    result = low.lower_function(callee, [carry, *rest], name)
    outs = list(result) if isinstance(result, tuple) else [result]
    feed = bindings[plan.calls[1]].value.args[0] if L > 1 else None
    carry_index = 0
    if feed is not None and not feed.same_as(bindings[plan.calls[0]].var):
        carry_index = next(b.value.index for b in bindings if b.var.same_as(feed))
    layer_out = outs[carry_index]
    if not isinstance(layer_out, Tensor) or layer_out.shape != carry.shape:
        raise ExitLoopUnfit(f"{name}: the layer's carried output is not shaped like its input")
    pins = {id(t.view.buffer) for t in outs if isinstance(t, Tensor)} - low.pinned
    low.pinned |= pins
    head = _lower_heads(scope, bindings, plan, result, exit_vars)
    low.pinned -= pins
    low.loop_depth -= 1
    exits.loop_exit(head, low)
    update_carry(scope, carry, layer_out)
    close_loop(prog, label, start, L)
    for k in range(L):
        scope.env[bindings[plan.calls[k]].var] = ("skipped",)
        for i in plan.segments[k]:
            scope.env[bindings[i].var] = ("skipped",)
        for v in exit_vars:
            scope.env[v] = exits.logits_tensor()


def _lower_heads(scope: Scope, bindings: list[Any], plan: ExitLoopPlan, result: Any, exit_vars: dict[Any, int]) -> Any:
    """Head 1's code with its constants in the strided head table; returns head 1's logits value."""
    low, prog = scope.low, scope.prog
    L = len(plan.calls)
    li = prog.emit(TileInst("li", {"rd": R_TMP, "imm": 0}))
    prog.emit(TileInst("mul", {"rd": R_HEAD, "rs1": R_LAYER, "rs2": R_TMP}))
    head_var = next(v for v, k in exit_vars.items() if k == 1)
    heads: list[Any] = []

    def lower_head(k: int):
        def lower() -> None:
            scope.env[bindings[plan.calls[k]].var] = result
            alias = k > 0 and low.blocked is not None
            if alias:  # head k takes head 1's memory-hierarchy decisions
                low.blocked.alias([bindings[i].var for i in plan.segments[k]],
                                  [bindings[i].var for i in plan.segments[0]])
            for i in plan.segments[k]:
                scope.lower_binding(bindings[i])
            if alias:
                low.blocked.unalias()
            if k == 0:
                heads.append(scope.env[head_var])
        return lower

    try:
        code, new1, slots = lower_copies(low, lower_head(0), [lower_head(k) for k in range(1, L)],
                                         names=("exit head", "head"))
    except TableUnfit as exc:
        raise ExitLoopUnfit(str(exc)) from exc
    stack_table(prog, low, slots, code, li, R_HEAD, HEAD_TABLE, new1, L)
    return heads[0]
