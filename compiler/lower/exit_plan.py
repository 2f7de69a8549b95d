"""Where the exit heads of an early-exit model run among main's bindings: demand order (each head right after its
layer), and whether the layers (`relax_passes.LayerLoop` calls) and the heads can share one loop body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgebert.compiler.lower.core import is_var
from edgebert.compiler.relax_passes.exprs import vars_in
from edgebert.isa.errors import CompileError


@dataclass
class ExitLoopPlan:
    """Where the layer calls and the head segments are among main's (reordered) bindings."""

    calls: list[int]  # binding index of call_k
    segments: list[list[int]]  # binding indices of seg_k (head k's bindings, carry item excluded)
    carry_items: list[int]  # binding indices of the items feeding call_{k+1} (skipped: the loop carries them)
    end: int  # first binding index after seg_L


@dataclass
class ExitPlan:
    """Main's bindings in demand order, which var holds head k's logits, and the looped form (None: unrolled)."""

    bindings: list[Any]
    exit_vars: dict[Any, int]  # binding var of head k's logits -> k (1-based)
    loop: ExitLoopPlan | None = None
    layout: str = "unrolled"  # "looped", or "unrolled: <why the layers could not form one loop>"
    heads: list[str] = field(default_factory=list)


def plan_exits(bindings: list[Any], result: Any, heads: list[str], output_names: list[str], layer_calls: set[Any],
               loop: bool) -> ExitPlan:
    """Demand order: the bindings exit head 1 needs, then those head 2 still needs, ..., then the rest; with `loop`,
    the looped form when the layers (`layer_calls`: the call vars of main's layer loops) allow it."""
    missing = [h for h in heads if h not in output_names]
    if missing:
        raise CompileError(f"exit heads {missing} are not outputs of the model (outputs: {output_names})")
    defs = {b.var: i for i, b in enumerate(bindings)}
    outs = _result_fields(bindings, result, defs)
    head_vars = [outs[output_names.index(h)] for h in heads]
    exit_vars: dict[Any, int] = {}
    for k, var in enumerate(head_vars, start=1):
        if var not in defs:
            raise CompileError(f"exit head '{heads[k - 1]}' is not computed by a binding of main")
        exit_vars[var] = k
    done: set[int] = set()
    order: list[int] = []
    for var in head_vars:
        need: set[int] = set()
        stack = [defs[var]]
        while stack:
            i = stack.pop()
            if i in done or i in need:
                continue
            need.add(i)
            stack.extend(defs[v] for v in vars_in(bindings[i].value) if v in defs)
        order += sorted(need)
        done |= need
    order += [i for i in range(len(bindings)) if i not in done]
    plan = ExitPlan([bindings[i] for i in order], exit_vars, heads=list(heads))
    if loop:
        plan.loop, why = plan_exit_loop(plan.bindings, exit_vars, len(heads), layer_calls)
        plan.layout = "looped" if plan.loop is not None else f"unrolled: {why}"
    return plan


def _result_fields(bindings: list[Any], result: Any, defs: dict) -> list[Any]:
    expr = result
    if is_var(expr) and expr in defs:
        value = bindings[defs[expr]].value
        if type(value).__name__ == "Tuple":
            expr = value
    if type(expr).__name__ == "Tuple":
        return list(expr.fields)
    return [expr]


def plan_exit_loop(bindings: list[Any], exit_vars: dict[Any, int], num_layers: int,
                   layer_calls: set[Any]) -> tuple[ExitLoopPlan | None, str]:
    """The loop plan, or None and why early exit must stay unrolled."""
    from tvm_ffi import structural_equal

    L = num_layers
    calls = [i for i, b in enumerate(bindings) if b.var in layer_calls]
    if len(calls) != L:
        return None, f"{len(calls)} outlined layer calls for {L} exit heads (the layers differ)"
    gv = bindings[calls[0]].value.op
    if any(not bindings[c].value.op.same_as(gv) for c in calls):
        return None, "the layers are not one repeated layer function"
    heads = {k: v for v, k in exit_vars.items()}
    where = {b.var: i for i, b in enumerate(bindings)}
    first = bindings[calls[0]].value
    segments, carry_items = [], []
    for k in range(L):
        lo = calls[k] + 1
        if k + 1 < L:
            hi = calls[k + 1]
            nxt = bindings[hi].value
            if len(nxt.args) != len(first.args) or not all(a.same_as(b) for a, b in zip(nxt.args[1:], first.args[1:],
                                                                                        strict=True)):
                return None, "the layer calls do not share their loop-invariant arguments"
            feed = nxt.args[0]
            j = where.get(feed) if is_var(feed) else None
            if j is None or not (j == calls[k] or (lo <= j < hi and type(bindings[j].value).__name__ == "TupleGetItem"
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
        if where.get(heads[k + 1]) not in seg:
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
        for v in vars_in(b.value):
            if v in local and v not in exit_vars:
                return None, "a value computed inside the layers is used after them"
    return ExitLoopPlan(calls, segments, carry_items, end), ""


def _same_expr(a: Any, b: Any, vmap: dict, structural_equal: Any) -> bool:
    ka = type(a).__name__
    if ka != type(b).__name__:
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
