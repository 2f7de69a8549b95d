"""Early exit inside ONE layer loop: layer k + exit head k as one body, the heads' weights as a strided eNVM table.

The compressed model's exit heads have different weights per layer, but the same shapes and code. After
`ExitLowering.reorder`, main's bindings read `[prologue] call_1 seg_1 call_2 seg_2 ... call_L seg_L [rest]`, where
call_k is the outlined shared layer (`edgebert_layer_<g>`) and seg_k the bindings of head k (plus the tuple item
feeding call_{k+1}). `plan_exit_loop` checks the segments are identical up to the values of their constants;
`lower_exit_loop` then emits

    li r1, 0; li r2, L; barrier
    loop: <layer body>  li r6, S; mul r7, r1, r6  <head 1's code, its constants read at R[r7] + offset>
          vmov exit.logits; entropy f1; addi r3, r1, 1; barrier; bexit f1, T, ee.exit  [DVFS, see ExitLowering]
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

from edgebert.compiler import emitters as em
from edgebert.compiler.abi import HEAD_TABLE, R_HEAD, R_LAYER, R_LAYER_LIMIT, R_TMP
from edgebert.compiler.errors import ExitLoopUnfit, StagingTooSmall
from edgebert.compiler.tile_ir import Buffer, LoopRange, Ref, TileInst
from edgebert.isa.errors import CompileError


@dataclass
class ExitLoopPlan:
    """Where the layer calls and the head segments are among main's (reordered) bindings."""

    calls: list[int]  # binding index of call_k
    segments: list[list[int]]  # binding indices of seg_k (head k's bindings, carry item excluded)
    carry_items: list[int]  # binding indices of the items feeding call_{k+1} (skipped: the loop carries them)
    end: int  # first binding index after seg_L


def _kind(x: Any) -> str:
    return type(x).__name__


def _is_var(x: Any) -> bool:
    return _kind(x) in ("Var", "DataflowVar")


def _layer_call(b: Any) -> Any:
    v = b.value
    op = getattr(v, "op", None)
    if _kind(v) == "Call" and _kind(op) == "GlobalVar" and op.name_hint.startswith("edgebert_layer_") and \
            op.name_hint[len("edgebert_layer_"):].isdigit():
        return op
    return None


def plan_exit_loop(bindings: list[Any], exit_vars: dict[Any, int], num_layers: int) -> tuple[ExitLoopPlan | None, str]:
    """The loop plan, or None and why early exit must stay unrolled."""
    from tvm_ffi import structural_equal

    L = num_layers
    calls = [i for i, b in enumerate(bindings) if _layer_call(b) is not None]
    if len(calls) != L:
        return None, f"{len(calls)} outlined layer calls for {L} exit heads (the layers differ)"
    gv = _layer_call(bindings[calls[0]])
    if any(not _layer_call(bindings[c]).same_as(gv) for c in calls):
        return None, "the layers are not one repeated layer function"
    heads = {k: v for v, k in exit_vars.items()}
    where = {b.var: i for i, b in enumerate(bindings)}
    segments, carry_items = [], []
    for k in range(L):
        lo = calls[k] + 1
        if k + 1 < L:
            hi = calls[k + 1]
            nxt = bindings[hi].value
            first = bindings[calls[0]].value
            if len(nxt.args) != len(first.args) or not all(a.same_as(b) for a, b in zip(nxt.args[1:], first.args[1:],
                                                                                        strict=True)):
                return None, "the layer calls do not share their loop-invariant arguments"
            feed = nxt.args[0]
            j = where.get(feed) if _is_var(feed) else None
            if j is None or not (j == calls[k] or (lo <= j < hi and _kind(bindings[j].value) == "TupleGetItem"
                                                   and bindings[j].value.tuple_value.same_as(bindings[calls[k]].var))):
                return None, "layer k+1 does not read layer k's output"
            if j != calls[k]:
                carry_items.append(j)
            seg = [i for i in range(lo, hi) if i != j]
        else:
            h = where.get(heads[L])
            if h is None or h < lo:
                return None, "the last exit head is not computed after the last layer"
            seg = list(range(lo, h + 1))
        hv = heads[k + 1]
        if where.get(hv) not in seg:
            return None, f"exit head {k + 1} is not computed between layers {k + 1} and {k + 2}"
        segments.append(seg)
    end = segments[-1][-1] + 1
    if any(len(s) != len(segments[0]) for s in segments):
        return None, "the exit heads have different code"
    # seg_k must equal seg_1 up to constant values; vars: local to the segment, the call's result, or invariant
    for k in range(1, L):
        vmap = {bindings[calls[0]].var: bindings[calls[k]].var}
        for i1, ik in zip(segments[0], segments[k], strict=True):
            b1, bk = bindings[i1], bindings[ik]
            if not structural_equal(b1.var.ty, bk.var.ty) or not _same_expr(b1.value, bk.value, vmap, structural_equal):
                return None, f"exit head {k + 1} differs from head 1 beyond its weights"
            vmap[b1.var] = bk.var
    local = {bindings[i].var for s in segments for i in s} | {bindings[c].var for c in calls}
    for b in bindings[end:]:
        for v in _vars(b.value):
            if v in local and v not in exit_vars:
                return None, "a value computed inside the layers is used after them"
    return ExitLoopPlan(calls, segments, carry_items, end), ""


def _vars(expr: Any) -> list[Any]:
    if _is_var(expr):
        return [expr]
    if _kind(expr) == "Tuple":
        return [v for f in expr.fields for v in _vars(f)]
    if _kind(expr) == "TupleGetItem":
        return _vars(expr.tuple_value)
    if hasattr(expr, "args"):
        return [v for a in expr.args for v in _vars(a)]
    return []


def _same_expr(a: Any, b: Any, vmap: dict, structural_equal: Any) -> bool:
    ka = _kind(a)
    if ka != _kind(b):
        return False
    if ka in ("Var", "DataflowVar"):
        return vmap[a].same_as(b) if a in vmap else a.same_as(b)
    if ka == "Constant" or ka == "GenericConst" or hasattr(a, "data") and not hasattr(a, "args"):
        return structural_equal(a.ty, b.ty)
    if ka == "Call":
        return a.op.same_as(b.op) and len(a.args) == len(b.args) and structural_equal(a.attrs, b.attrs) and \
            all(_same_expr(x, y, vmap, structural_equal) for x, y in zip(a.args, b.args, strict=True))
    if ka == "Tuple":
        return len(a.fields) == len(b.fields) and all(_same_expr(x, y, vmap, structural_equal)
                                                      for x, y in zip(a.fields, b.fields, strict=True))
    if ka == "TupleGetItem":
        return a.index == b.index and _same_expr(a.tuple_value, b.tuple_value, vmap, structural_equal)
    return structural_equal(a, b)


# ---- lowering ---------------------------------------------------------------------------------------------


def lower_exit_loop(scope: Any, bindings: list[Any], plan: ExitLoopPlan, exits: Any) -> None:
    """Emit the loop (module docstring); binds the exit heads' vars to the exit logits.

    A body that does not lower as one loop (e.g. AF8 activation biases that differ per layer) raises
    `ExitLoopUnfit`; staging-size errors pass through (the pipeline retries with smaller staging buffers)."""
    try:
        _lower_exit_loop(scope, bindings, plan, exits)
    except (ExitLoopUnfit, StagingTooSmall):
        raise
    except CompileError as exc:
        raise ExitLoopUnfit(f"the layer + head body does not lower as one loop: {exc}") from exc


def _lower_exit_loop(scope: Any, bindings: list[Any], plan: ExitLoopPlan, exits: Any) -> None:
    low, prog = scope.low, scope.prog
    L = len(plan.calls)
    first = bindings[plan.calls[0]].value
    callee = low.mod[first.op]
    name = first.op.name_hint
    init = low.to_sram(scope.value_of(first.args[0]), name)
    rest = [scope.value_of(a) for a in first.args[1:]]
    carry = low.new_tensor(f"{name}.carry", init.shape, init.dtype)
    low.pinned.add(id(carry.view.buffer))
    for a in rest:
        if hasattr(a, "view"):
            low.pinned.add(id(a.view.buffer))
    em.emit_unary(prog, "vmov", carry.view, init.view)
    label = f"{name}.loop{len(prog.loops)}"
    prog.emit(TileInst("li", {"rd": R_LAYER, "imm": 0}))
    prog.emit(TileInst("li", {"rd": R_LAYER_LIMIT, "imm": L}))
    prog.emit(TileInst("barrier"))
    prog.label(label)
    start = len(prog.insts)
    low.loop_depth += 1
    result = low.lower_function(callee, [carry, *rest], name)
    outs = list(result) if isinstance(result, tuple) else [result]
    feed = bindings[plan.calls[1]].value.args[0] if L > 1 else None
    carry_index = 0
    if feed is not None and not feed.same_as(bindings[plan.calls[0]].var):
        carry_index = next(b.value.index for b in bindings if b.var.same_as(feed))
    layer_out = outs[carry_index]
    if not hasattr(layer_out, "view") or layer_out.shape != carry.shape:
        raise ExitLoopUnfit(f"{name}: the layer's carried output is not shaped like its input")
    pins = {id(t.view.buffer) for t in outs if hasattr(t, "view")} - low.pinned
    low.pinned |= pins
    head = _lower_heads(scope, bindings, plan, result, exits)
    low.pinned -= pins
    low.loop_depth -= 1
    exits.loop_exit(head, low)
    if layer_out.view != carry.view:
        em.emit_unary(prog, "vmov", carry.view, layer_out.view)
    prog.emit(TileInst("barrier"))
    prog.emit(TileInst("addi", {"rd": R_LAYER, "rs1": R_LAYER, "imm": 1}))
    prog.emit(TileInst("blt", {"rs1": R_LAYER, "rs2": R_LAYER_LIMIT}, target=label))
    prog.loops.append(LoopRange(label, start, len(prog.insts), L))
    for k in range(L):
        scope.env[bindings[plan.calls[k]].var] = ("skipped",)
        for i in plan.segments[k]:
            scope.env[bindings[i].var] = ("skipped",)
        for v, _ in exits.exit_vars.items():
            scope.env[v] = exits.logits_tensor()


def _lower_heads(scope: Any, bindings: list[Any], plan: ExitLoopPlan, result: Any, exits: Any) -> Any:
    """Head 1's code with its constants in the strided head table; returns head 1's logits value."""
    low, prog = scope.low, scope.prog
    L = len(plan.calls)
    li = prog.emit(TileInst("li", {"rd": R_TMP, "imm": 0}))
    prog.emit(TileInst("mul", {"rd": R_HEAD, "rs1": R_LAYER, "rs2": R_TMP}))
    s, nb, ring0 = len(prog.insts), len(prog.buffers), low.ring.next
    head_var = next(v for v, k in exits.exit_vars.items() if k == 1)
    scope.env[bindings[plan.calls[0]].var] = result
    for i in plan.segments[0]:
        scope.lower_binding(bindings[i])
    e1, ring1 = len(prog.insts), low.ring.next
    head = scope.env[head_var]
    new1 = {id(b) for b in prog.buffers[nb:]}
    slots: dict[int, list[Buffer | None]] = {}
    for k in range(1, L):
        nbk, npk, fences = len(prog.buffers), len(prog.packed_weights), set(prog.fences)
        consts = dict(low._consts)
        low.ring.next = ring0
        scope.env[bindings[plan.calls[k]].var] = result
        for i in plan.segments[k]:
            scope.lower_binding(bindings[i])
        _match(prog.insts[s:e1], prog.insts[e1:], new1, {id(b) for b in prog.buffers[nbk:]}, slots, k, L)
        del prog.insts[e1:]
        del prog.buffers[nbk:]
        del prog.packed_weights[npk:]
        prog.fences = fences
        low._consts = consts
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


def _stack(prog: Any, low: Any, slots: dict[int, list[Buffer | None]], s: int, e: int, li: TileInst,
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
    low._consts = {h: b for h, b in low._consts.items() if id(b) not in dead}
