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
from edgebert.compiler.lower.core import Lowerer, Scope, Step, Tensor
from edgebert.compiler.lower.exit_plan import ExitLoopPlan
from edgebert.compiler.lower.exits import ExitCode
from edgebert.compiler.lower.loops import close_loop, loop_carry, open_loop, update_carry
from edgebert.compiler.tile_ir import Buffer, Ref, TileInst, TileProgram
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
    s, nb, ring0 = len(prog.insts), len(prog.buffers), low.ring.next
    head_var = next(v for v, k in exit_vars.items() if k == 1)
    scope.env[bindings[plan.calls[0]].var] = result
    for i in plan.segments[0]:
        scope.lower_binding(bindings[i])
    e1, ring1 = len(prog.insts), low.ring.next
    head = scope.env[head_var]
    new1 = {id(b) for b in prog.buffers[nb:]}
    slots: dict[int, list[Buffer | None]] = {}
    for k in range(1, L):
        nbk, npk, fences = len(prog.buffers), len(prog.packed_weights), set(prog.fences)
        consts, mark = low.snapshot_consts(), low.trace.mark()
        low.ring.next = ring0
        scope.env[bindings[plan.calls[k]].var] = result
        if low.blocked is not None:  # head k takes head 1's memory-hierarchy decisions
            low.blocked.alias([bindings[i].var for i in plan.segments[k]], [bindings[i].var for i in plan.segments[0]])
        for i in plan.segments[k]:
            scope.lower_binding(bindings[i])
        if low.blocked is not None:
            low.blocked.unalias()
        _match(prog.insts[s:e1], prog.insts[e1:], new1, {id(b) for b in prog.buffers[nbk:]}, slots, k, L)
        del prog.insts[e1:]
        del prog.buffers[nbk:]
        del prog.packed_weights[npk:]
        prog.fences = fences
        low.restore_consts(consts)
        low.trace.rollback(mark)  # a trial lowering: not part of the program's op trace
    low.ring.next = ring1
    _stack(prog, low, slots, s, e1, li, new1, L)
    return head


def _match(ref: list[TileInst], got: list[TileInst], new1: set[int], newk: set[int],
           slots: dict[int, list[Buffer | None]], k: int, L: int) -> None:
    """Head k's code must be head 1's up to the eNVM constants it reads (same sizes); records them in `slots`."""
    if len(ref) != len(got):
        raise ExitLoopUnfit(f"exit head {k + 1} lowers to {len(got)} instructions, head 1 to {len(ref)}")
    amap: dict[int, Buffer] = {}

    def same(b1: Buffer, bk: Buffer) -> bool:
        if b1.kind == "const":
            if bk.kind != "const" or bk.nbytes != b1.nbytes or bk.data is None or b1.data is None:
                return False
            slot = slots.setdefault(id(b1), [b1] + [None] * (L - 1))
            if slot[k] is None:
                slot[k] = bk
            return slot[k] is bk
        if id(b1) in new1:
            return id(bk) in newk and amap.setdefault(id(b1), bk) is bk
        return b1 is bk

    for i1, ik in zip(ref, got, strict=True):
        ok = i1.mnemonic == ik.mnemonic and i1.fields == ik.fields and i1.target == ik.target and \
            i1.addrs.keys() == ik.addrs.keys() and len(i1.refs) == len(ik.refs)
        ok = ok and all(i1.addrs[n][1] == ik.addrs[n][1] and same(i1.addrs[n][0], ik.addrs[n][0]) for n in i1.addrs)
        ok = ok and all((r1.offset, r1.extent, r1.write) == (rk.offset, rk.extent, rk.write) and
                        same(r1.buffer, rk.buffer) for r1, rk in zip(i1.refs, ik.refs, strict=True))
        if not ok:
            raise ExitLoopUnfit(f"exit head {k + 1}'s code differs from head 1's ({i1.mnemonic} vs {ik.mnemonic})")


def _stack(prog: TileProgram, low: Lowerer, slots: dict[int, list[Buffer | None]], s: int, e: int, li: TileInst,
           new1: set[int], L: int) -> None:
    """Lay the per-head constants out as L blocks of S bytes; re-address head 1's code at R[r7] + offset."""
    align = max(4, low.hw.memory.envm.align_bytes)
    varying = {key: bufs for key, bufs in slots.items() if any(b is not bufs[0] for b in bufs)}
    offset: dict[int, int] = {}
    size = 0
    for key, bufs in varying.items():
        offset[key] = size
        size += -(-bufs[0].nbytes // align) * align
    if not varying:
        return
    blocks = []
    for k in range(L):
        block = bytearray(size)
        for key, bufs in varying.items():
            data = bufs[k].data
            block[offset[key]: offset[key] + len(data)] = data
        blocks.append(bytes(block))
    space = "sram" if any(b.space == "sram" for bufs in varying.values() for b in bufs) else "envm"  # read in place
    table = prog.buffer(HEAD_TABLE, size * L, "const", space, b"".join(blocks))
    li.fields["imm"] = size
    for inst in prog.insts[s:e]:
        for n, (buf, off) in list(inst.addrs.items()):
            if id(buf) in offset:
                inst.addrs[n] = (table, offset[id(buf)] + off)
                inst.fields[f"{n}_base"] = R_HEAD
        inst.refs = [Ref(table, offset[id(r.buffer)] + r.offset, r.extent, r.write) if id(r.buffer) in offset else r
                     for r in inst.refs]
    # head 1's own constants are now unused: drop them (and from the dedup cache, so nothing later reuses them)
    used = {id(b) for inst in prog.insts for b, _ in inst.addrs.values()}
    dead = {key for key in varying if key in new1 and key not in used}
    prog.buffers[:] = [b for b in prog.buffers if id(b) not in dead]
    low.forget_consts(dead)
