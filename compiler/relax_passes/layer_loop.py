"""The layer-loop pass: ALBERT's shared layer, unrolled N times by the exporter, outlined into one function.

`OutlineLayerLoops` finds runs of N >= 2 consecutive, identical copies of a computation in `main` (same ops,
attributes, composite callees and the *same constant weights*, with a consistent dataflow: each copy reads
the previous copy's outputs, plus values computed before the run) and replaces them by N calls of one
private function `edgebert_layer_<g>` that takes only activations (carried state first, then loop-invariant
values such as the attention mask). Anything not matching stays inline. `find_layer_loops` reports the runs.

Layers that differ only in their constants (BERT's 12 layers: same ops and shapes, their own weights) are outlined
in a second search over what the first left (constants compared by shape and dtype): the function then also takes
each constant that differs between the copies as a trailing parameter (`edgebert.num_weights` of them), and each
call passes its layer's constants (the lowering, compiler/lower/loops.py, reads them from a per-layer table).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import tvm
from tvm import relax
from tvm_ffi import structural_hash

from edgebert.compiler.relax_passes.exprs import leaves_in, vars_in

LAYER_PREFIX = "edgebert_layer_"
_LAYER_NAME = re.compile(r"edgebert_layer_\d+")  # not edgebert_layer_norm*, the layer-norm composites
MIN_BODY_BINDINGS = 4  # a loop body shorter than this is not worth a loop (and avoids 3x the same dense)


@dataclasses.dataclass(frozen=True)
class LayerLoop:
    """A run of `count` consecutive calls of the layer function `func_name` in main's dataflow block."""

    func_name: str
    count: int
    first_binding_index: int  # index of the first call among main's bindings (flattened over blocks)
    binding_indices: tuple[int, ...]  # the bindings making up the run (calls and their TupleGetItems)
    num_carried: int  # leading parameters fed by the previous call's outputs (first call: from before)
    num_outputs: int  # the function returns a tensor (1) or a tuple of that many tensors
    num_weights: int = 0  # trailing parameters: constants that differ per layer (each call passes its own)


@tvm.transform.module_pass(opt_level=0, name="edgebert.OutlineLayerLoops")
class OutlineLayerLoops:
    """Outline repeated identical layers of `main` into `edgebert_layer_<g>` functions (see module doc)."""

    def __init__(self, min_count: int = 2, per_layer_weights: bool = True):
        self.min_count = min_count
        self.per_layer_weights = per_layer_weights

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        main_gv = mod.get_global_var("main")
        func = mod[main_gv]
        if not _single_dataflow_block(func):
            return mod
        bindings = _hoisted_order(list(func.body.blocks[0].bindings), func.params)
        hashes: dict[int, int] = {}
        sigs = _signatures(bindings, hashes)
        runs: list[_Run] = []
        _find_runs(bindings, sigs, 0, len(bindings), self.min_count, runs)
        if self.per_layer_weights:  # then layers that differ only in their constants, in what is left
            shapes = _signatures(bindings, hashes, by_content=False)
            covered = sorted((r.start, r.start + r.period * r.count) for r in runs)
            lo = 0
            for start, end in [*covered, (len(bindings), len(bindings))]:
                found: list[_Run] = []
                _find_runs(bindings, shapes, lo, start, self.min_count, found)
                runs += [r for r in found if _with_weights(bindings, r, hashes)]
                lo = end
        if not runs:
            return mod
        runs.sort(key=lambda r: r.start)
        return _rewrite(mod, main_gv, func, bindings, runs)


def find_layer_loops(mod: tvm.IRModule) -> list[LayerLoop]:
    """The runs of consecutive `edgebert_layer_*` calls in main, in program order."""
    func = mod["main"]
    bindings = [b for block in func.body.blocks for b in block.bindings]
    loops: list[LayerLoop] = []
    i = 0
    while i < len(bindings):
        name = _layer_callee(bindings[i])
        if name is None:
            i += 1
            continue
        layer = mod[name]
        num_carried = int(layer.attrs["edgebert.num_carried"])
        num_outputs = int(layer.attrs["edgebert.num_outputs"])
        first, indices, count, j, prev = i, [], 0, i, -1
        while j < len(bindings) and _layer_callee(bindings[j]) == name:
            if count and not _feeds(bindings[prev], bindings[j], bindings, num_carried, num_outputs):
                break
            prev = j
            count += 1
            indices.append(j)
            j += 1
            while j < len(bindings) and isinstance(bindings[j].value, relax.TupleGetItem) and \
                    bindings[j].value.tuple_value.same_as(bindings[prev].var):
                indices.append(j)
                j += 1
        weights = int(layer.attrs["edgebert.num_weights"]) if "edgebert.num_weights" in layer.attrs else 0
        loops.append(LayerLoop(name, count, first, tuple(indices), num_carried, num_outputs, weights))
        i = j
    return loops


def _layer_callee(binding) -> str | None:
    value = binding.value
    if isinstance(value, tvm.ir.Call) and isinstance(value.op, relax.GlobalVar) and \
            _LAYER_NAME.fullmatch(value.op.name_hint):
        return value.op.name_hint
    return None


def _feeds(prev, cur, bindings, num_carried: int, num_outputs: int) -> bool:
    """Whether call `cur`'s carried arguments are outputs of call `prev`."""
    if num_outputs == 1:
        outs = [prev.var]
    else:
        outs = [b.var for b in bindings if isinstance(b.value, relax.TupleGetItem)
                and b.value.tuple_value.same_as(prev.var)]
    return all(any(arg.same_as(o) for o in outs) for arg in cur.value.args[:num_carried])


# ---------------------------------------------------------------------------------------------------------
# Detection


@dataclasses.dataclass
class _Run:
    start: int
    period: int
    count: int
    carried: list[int]  # offsets (within a copy) of values read by the next copy, sorted
    initial: dict[int, relax.Var]  # carried offset -> the value copy 0 reads instead (defined before the run)
    invariants: list[relax.Var]  # values defined before the run that every copy reads
    outputs: list[int]  # offsets whose values are used outside their copy, sorted
    arg_slots: dict[tuple[int, int], tuple[str, object]]  # (offset, arg path) -> ("local"/"carried"/"inv", key)
    weights: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (offset, k-th constant) per layer


def _single_dataflow_block(func) -> bool:
    return isinstance(func, relax.Function) and isinstance(func.body, relax.SeqExpr) and \
        len(func.body.blocks) == 1 and isinstance(func.body.blocks[0], relax.DataflowBlock)


def _hoisted_order(bindings: list, params: Sequence) -> list:
    """Stable topological order that moves each binding up to just after its last operand (ASAP).

    This hoists loop-invariant work (the exporter computes the attention mask inside the first layer) out of
    the layers, so every layer copy has the same binding sequence; the layers themselves cannot move.
    """
    order: list = []  # (anchor var or None, binding)
    position: dict = {p: -1 for p in params}
    for b in bindings:
        deps = [v for v in vars_in(b.value) if v in position and position[v] >= 0]
        anchor = max(deps, key=position.__getitem__) if deps else None
        at = position[anchor] + 1 if anchor is not None else 0
        while at < len(order) and _same(order[at][0], anchor):
            at += 1
        order.insert(at, (anchor, b))
        position = {p: -1 for p in params}
        position.update({entry[1].var: i for i, entry in enumerate(order)})
    return [b for _, b in order]


def _same(a, b) -> bool:
    return a is b or (a is not None and b is not None and a.same_as(b))


def _signatures(bindings: list, hashes: dict[int, int] | None = None, by_content: bool = True) -> list:
    """Per binding, a hashable key of its computation ignoring which activations it reads; constants by content
    (`hashes` caches their structural hash per object), or only by shape and dtype (`by_content=False`)."""
    hashes = {} if hashes is None else hashes

    def key(expr):
        if isinstance(expr, relax.Var):
            return ("var",)
        if isinstance(expr, tvm.ir.Constant):
            if not by_content:
                return ("const", structural_hash(expr.ty))
            return ("const", _content_hash(expr, hashes))
        if isinstance(expr, tvm.ir.Call):
            op = expr.op.name_hint if isinstance(expr.op, relax.GlobalVar) else str(expr.op.name) \
                if hasattr(expr.op, "name") else structural_hash(expr.op)
            attrs = structural_hash(expr.attrs) if expr.attrs is not None else 0
            return ("call", op, attrs, tuple(key(a) for a in expr.args))
        if isinstance(expr, relax.Tuple):
            return ("tuple", tuple(key(f) for f in expr.fields))
        if isinstance(expr, relax.TupleGetItem):
            return ("getitem", expr.index, key(expr.tuple_value))
        return ("other", structural_hash(expr))

    return [(key(b.value), structural_hash(b.var.ty)) for b in bindings]


def _content_hash(const, hashes: dict[int, int]) -> int:
    handle = hash(const)
    if handle not in hashes:
        hashes[handle] = structural_hash(const)
    return hashes[handle]


def _constants(expr) -> list:
    """The constants an expression reads (call arguments, tuple fields), in a fixed traversal order."""
    return leaves_in(expr, tvm.ir.Constant)


def _with_weights(bindings: list, run: _Run, hashes: dict[int, int]) -> bool:
    """Record in `run.weights` the constant positions whose constants differ between the copies (content); a run
    whose copies all share their constants is the first search's business (False)."""
    for off in range(run.period):
        per_copy = [_constants(bindings[run.start + c * run.period + off].value) for c in range(run.count)]
        for k, first in enumerate(per_copy[0]):
            if any(_content_hash(consts[k], hashes) != _content_hash(first, hashes) for consts in per_copy[1:]):
                run.weights.append((off, k))
    return bool(run.weights)


def _find_runs(bindings, sigs, lo: int, hi: int, min_count: int, runs: list) -> None:
    """Greedy: the valid run covering most bindings in [lo, hi), then recurse on both sides."""
    candidates = []
    for start in range(lo, hi):
        for period in range(MIN_BODY_BINDINGS, (hi - start) // min_count + 1):
            count = 1
            while start + (count + 1) * period <= hi and \
                    sigs[start + count * period: start + (count + 1) * period] == sigs[start: start + period]:
                count += 1
            if count >= min_count:
                candidates.append((period * count, count, -start, period, start))
    # Most bindings covered first; then the shortest body (12 x 1 layer, not 2 x 6 layers); then earliest.
    candidates.sort(reverse=True)
    best: _Run | None = None
    for coverage, count, _, period, start in candidates:
        if best is not None and coverage < best.period * best.count:
            break
        run = _validate(bindings, start, period, count)
        # Among runs of equal coverage (phases of the same repetition) prefer the narrowest interface.
        if run is not None and (best is None or len(run.outputs) + len(run.invariants)
                                < len(best.outputs) + len(best.invariants)):
            best = run
    if best is not None:
        runs.append(best)
        _find_runs(bindings, sigs, lo, best.start, min_count, runs)
        _find_runs(bindings, sigs, best.start + best.period * best.count, hi, min_count, runs)


def _validate(bindings, start: int, period: int, count: int) -> _Run | None:
    """Check the copies' dataflow is a chain (see module doc); describe the loop's interface."""
    where = {b.var: i for i, b in enumerate(bindings)}
    end = start + period * count
    carried: set[int] = set()
    initial: dict[int, relax.Var] = {}
    invariants: list[relax.Var] = []
    slots: dict[tuple[int, int], tuple[str, object]] = {}
    for c in range(count):
        base = start + c * period
        for off in range(period):
            for pos, v in enumerate(vars_in(bindings[base + off].value)):
                j = where.get(v)  # None: a function parameter
                if j is not None and base <= j < base + period:
                    slot = ("local", j - base)
                elif j is not None and base - period <= j < base and c > 0:
                    slot = ("carried", j - (base - period))
                elif j is None or j < start:
                    slot = ("inv", v)
                else:
                    return None  # reads a value from two copies back, or from after the run
                got = slots.setdefault((off, pos), slot)
                if got == slot:
                    continue
                # copy 0 reads an outside value where later copies read the previous copy: initial state
                if c > 0 and got[0] == "inv" and slot[0] == "carried" and _first_copy_reads(
                        slots, initial, off, pos, got[1], slot[1]):
                    slots[(off, pos)] = slot
                    initial[slot[1]] = got[1]
                    carried.add(slot[1])
                    continue
                if slot[0] == "inv" and got[0] == "inv" and slot[1].same_as(got[1]):
                    continue
                return None
    if any(kind == "carried" and key not in initial for kind, key in slots.values()):
        return None
    for kind, key in slots.values():
        if kind == "inv" and not any(key.same_as(x) for x in invariants):
            invariants.append(key)
    # Values used outside their copy: by the next copy (carried) or by anything after the run.
    outputs = set(carried)
    users_after = {v for b in bindings[end:] for v in vars_in(b.value)}
    for c in range(count):
        base = start + c * period
        for off in range(period):
            if bindings[base + off].var in users_after or not isinstance(bindings[base + off].var,
                                                                            relax.DataflowVar):
                outputs.add(off)
    if not outputs:
        return None
    return _Run(start, period, count, sorted(carried), initial, invariants, sorted(outputs), slots)


def _first_copy_reads(slots, initial, off, pos, outside_var, carried_off) -> bool:
    """Copy 0 reads `outside_var` at (off, pos); consistent with any earlier initial value for the slot."""
    prev = initial.get(carried_off)
    return prev is None or prev.same_as(outside_var)


# ---------------------------------------------------------------------------------------------------------
# Rewriting


def _rewrite(mod: tvm.IRModule, main_gv, func, bindings: list, runs: list[_Run]) -> tvm.IRModule:
    bb = relax.BlockBuilder(mod)
    layer_gvs = []
    for group, run in enumerate(runs):
        layer = _layer_function(bindings, run)
        layer_gvs.append(bb.add_func(layer, f"{LAYER_PREFIX}{group}"))

    params = [relax.Var(p.name, p.ty) for p in func.params]
    varmap: dict = {old: new for old, new in zip(func.params, params, strict=True)}
    run_at = {run.start: (run, gv) for run, gv in zip(runs, layer_gvs, strict=True)}
    main_bb = relax.BlockBuilder()
    attrs = dict(func.attrs.items()) if func.attrs is not None else {}
    attrs.pop("global_symbol", None)
    with main_bb.function("main", params, attrs=attrs, pure=func.is_pure):
        with main_bb.dataflow():
            i = 0
            while i < len(bindings):
                if i in run_at:
                    run, gv = run_at[i]
                    _emit_calls(main_bb, bindings, run, gv, varmap)
                    i = run.start + run.period * run.count
                    continue
                b = bindings[i]
                value = _substitute(b.value, varmap)
                new = main_bb.emit(value, b.var.name) if isinstance(b.var, relax.DataflowVar) \
                    else main_bb.emit_output(value, b.var.name)
                varmap[b.var] = new
                i += 1
        main_bb.emit_func_output(_substitute(func.body.body, varmap))
    out = bb.get()
    new_main = main_bb.get()["main"]
    if func.attrs is None or "global_symbol" not in func.attrs:
        new_main = new_main.without_attr("global_symbol")
    out[main_gv] = new_main
    return out


def _emit_calls(bb, bindings, run: _Run, gv, varmap: dict) -> None:
    """Emit the run's `count` calls; map every copy's output values to the call results."""
    state = {off: varmap.get(var, var) for off, var in run.initial.items()}
    invariants = [varmap.get(v, v) for v in run.invariants]
    for c in range(run.count):
        base = run.start + c * run.period
        weights = [_constants(bindings[base + off].value)[k] for off, k in run.weights]
        args = [state[off] for off in run.carried] + invariants + weights
        last = c == run.count - 1
        call = relax.Call(gv, args)
        results: dict[int, relax.Var] = {}
        if len(run.outputs) == 1:
            off = run.outputs[0]
            var = bindings[base + off].var
            results[off] = bb.emit(call, var.name) if isinstance(var, relax.DataflowVar) or not last \
                else bb.emit_output(call, var.name)
        else:
            tup = bb.emit(call, f"layer{c}")
            for k, off in enumerate(run.outputs):
                var = bindings[base + off].var
                item = relax.TupleGetItem(tup, k)
                results[off] = bb.emit(item, var.name) if isinstance(var, relax.DataflowVar) \
                    else bb.emit_output(item, var.name)
        for off, new in results.items():
            varmap[bindings[base + off].var] = new
        state = {off: results[off] for off in run.carried}


def _layer_function(bindings, run: _Run) -> relax.Function:
    """Copy 0 of the run as a function of (carried state..., invariants..., per-layer constants...)."""
    copy0 = bindings[run.start: run.start + run.period]
    carried_params = [relax.Var(f"state{k}", copy0[off].var.ty) for k, off in enumerate(run.carried)]
    inv_params = [relax.Var(f"in{k}", v.ty) for k, v in enumerate(run.invariants)]
    weight_params = {slot: relax.Var(f"w{k}", _constants(copy0[slot[0]].value)[slot[1]].ty)
                     for k, slot in enumerate(run.weights)}
    varmap: dict = {}
    for off, p in zip(run.carried, carried_params, strict=True):
        varmap[run.initial[off]] = p
    for v, p in zip(run.invariants, inv_params, strict=True):
        varmap[v] = p
    bb = relax.BlockBuilder()
    attrs = {"edgebert.num_carried": len(carried_params), "edgebert.num_outputs": len(run.outputs),
             "edgebert.count": run.count, "edgebert.num_weights": len(weight_params)}
    with bb.function("layer", carried_params + inv_params + list(weight_params.values()), attrs=attrs,
                     private=True):
        with bb.dataflow():
            results = {}
            for off, b in enumerate(copy0):
                is_out = off in run.outputs
                value = _substitute(b.value, varmap)
                slots = {k: p for (o, k), p in weight_params.items() if o == off}
                if slots:
                    value = _replace_constants(value, slots, [0])
                name = b.var.name
                new = bb.emit_output(value, name) if is_out else bb.emit(value, name)
                varmap[b.var] = new
                results[off] = new
        outs = [results[off] for off in run.outputs]
        bb.emit_func_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
    return bb.get()["layer"]


def _replace_constants(expr, slots: dict[int, relax.Var], counter: list[int]):
    """`expr` with its k-th constant (`_constants` order) replaced by `slots[k]` where given."""
    if isinstance(expr, tvm.ir.Constant):
        k = counter[0]
        counter[0] += 1
        return slots.get(k, expr)
    if isinstance(expr, tvm.ir.Call):
        args = [_replace_constants(a, slots, counter) for a in expr.args]
        return relax.Call(expr.op, args, expr.attrs, expr.ty_args, expr.span)
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_replace_constants(f, slots, counter) for f in expr.fields])
    if isinstance(expr, relax.TupleGetItem):
        return relax.TupleGetItem(_replace_constants(expr.tuple_value, slots, counter), expr.index)
    return expr


def _substitute(expr, varmap: dict):
    if isinstance(expr, relax.Var):
        return varmap.get(expr, expr)
    if isinstance(expr, tvm.ir.Call):
        args = [_substitute(a, varmap) for a in expr.args]
        return relax.Call(expr.op, args, expr.attrs, expr.ty_args, expr.span)
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_substitute(f, varmap) for f in expr.fields])
    if isinstance(expr, relax.TupleGetItem):
        return relax.TupleGetItem(_substitute(expr.tuple_value, varmap), expr.index)
    return expr
