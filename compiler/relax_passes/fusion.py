"""`relax.dpl` patterns for the edgebert composites, the fusion pass, and canonical composite arguments."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import DFPattern, is_const, is_op, wildcard

# Composite names (the "Composite" attribute of the grouped functions); the backend dispatches on these.
DENSE = "edgebert.dense"
POOLER = "edgebert.pooler"
LAYER_NORM = "edgebert.layer_norm"
GELU_TANH = "edgebert.gelu_tanh"
ATTENTION = "edgebert.attention"
ATTENTION_CORE = "edgebert.attention_core"
EMBEDDING = "edgebert.embedding"
MASK_BIAS = "edgebert.mask_bias"
MASKED_SOFTMAX = "edgebert.masked_softmax"
ATTENTION_SPAN = "edgebert.attention_span"


@dataclasses.dataclass(frozen=True)
class CompositeSpec:
    """One composite: its pattern, the named sub-patterns, and the canonical order of its parameters."""

    name: str
    pattern: DFPattern
    roles: dict[str, DFPattern]
    arg_order: tuple[str, ...]  # role names, in the order the composite function takes them
    check: Callable | None = None


def dense_spec(name: str = DENSE, activation: str | None = None, const=is_const) -> CompositeSpec:
    """x @ W + b with constant W [K, N] and b [N] (optionally followed by `activation`)."""
    x, w, b = wildcard(), const(), const()
    out = is_op("relax.add")(is_op("relax.matmul")(x, w), b)
    if activation:
        out = is_op(activation)(out)
    return CompositeSpec(name, out, {"x": x, "w": w, "b": b}, ("x", "w", "b"))


def layer_norm_spec(const=is_const) -> CompositeSpec:
    """nn.layer_norm(x, gamma, beta) with constant gamma and beta."""
    x, gamma, beta = wildcard(), const(), const()
    out = is_op("relax.nn.layer_norm")(x, gamma, beta)
    return CompositeSpec(LAYER_NORM, out, {"x": x, "gamma": gamma, "beta": beta}, ("x", "gamma", "beta"))


_GELU_VALUES = {"c3": 3.0, "c_cube": 0.044715, "c_sqrt": math.sqrt(2.0 / math.pi), "c_half": 0.5, "c_one": 1.0}


def gelu_tanh_spec(const=is_const) -> CompositeSpec:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) as ALBERT's gelu_new exports it (Pow/Mul/Add/Tanh)."""
    x = wildcard()
    c = {name: const() for name in _GELU_VALUES}
    cube = is_op("relax.power")(x, c["c3"])
    inner = is_op("relax.add")(x, is_op("relax.multiply")(cube, c["c_cube"]))
    t = is_op("relax.tanh")(is_op("relax.multiply")(inner, c["c_sqrt"]))
    out = is_op("relax.multiply")(is_op("relax.multiply")(x, c["c_half"]), is_op("relax.add")(t, c["c_one"]))
    return CompositeSpec(GELU_TANH, out, {"x": x, **c}, ("x", *_GELU_VALUES), _check_gelu)


def _check_gelu(ctx: relax.transform.PatternCheckContext) -> bool:
    for name, want in _GELU_VALUES.items():
        value = _const_value(ctx.annotated_expr[name])
        if value is None or value.size != 1 or not np.isclose(float(value.reshape(-1)[0]), want, rtol=1e-5):
            return False
    return True


def _masked_softmax(x: DFPattern, span_mask: DFPattern, const=is_const) -> tuple[DFPattern, DFPattern]:
    """exp(x - max(x)) * M / sum(exp(x - max(x)) * M) over the last axis (the span-masked softmax).

    The sum may carry the exporter's `+ 1e-30` (models.attention_span.SPAN_SOFTMAX_EPS, an extra trailing argument)."""
    peak = is_op("relax.max")(x)
    weighted = is_op("relax.multiply")(is_op("relax.exp")(is_op("relax.subtract")(x, peak)), span_mask)
    total = is_op("relax.sum")(weighted)
    # the exporter's `sum + 1e-30` (models.attention_span.SPAN_SOFTMAX_EPS): a zero-sum row gives zeros, as the ISA softmax
    total = total | is_op("relax.add")(total, const())
    return is_op("relax.divide")(weighted, total), peak


def masked_softmax_spec(const=is_const) -> CompositeSpec:
    """The compressed model's adaptive-span softmax: softmax whose exp terms are scaled by a constant mask."""
    x, span_mask = wildcard(), const()
    out, peak = _masked_softmax(x, span_mask, const)
    roles = {"x": x, "span_mask": span_mask, "peak": peak, "out": out}
    return CompositeSpec(MASKED_SOFTMAX, out, roles, ("x", "span_mask"), _check_masked_softmax)


def _check_masked_softmax(ctx: relax.transform.PatternCheckContext) -> bool:
    peak = ctx.annotated_expr["peak"]
    axes = [int(a) for a in peak.attrs.axis] if peak.attrs.axis is not None else []
    return bool(peak.attrs.keepdims) and axes in ([-1], [peak.ty.ndim - 1])


def attention_spec(const=is_const, span: bool = False) -> CompositeSpec:
    """Multi-head attention: [1, S, H*D] q, k, v + additive mask -> [1, S, H*D] (head split/merge inside).

    `span=True`: the softmax is the span-masked one (`masked_softmax_spec`), an extra `span_mask` argument.
    """
    q, k, v, mask, scale = wildcard(), wildcard(), wildcard(), wildcard(), const()
    q_heads = is_op("relax.permute_dims")(is_op("relax.reshape")(q, wildcard()))
    k_t = is_op("relax.permute_dims")(is_op("relax.reshape")(k, wildcard()))
    v_heads = is_op("relax.permute_dims")(is_op("relax.reshape")(v, wildcard()))
    scores = is_op("relax.add")(is_op("relax.multiply")(is_op("relax.matmul")(q_heads, k_t), scale), mask)
    roles = {"q": q, "k": k, "v": v, "mask": mask, "scale": scale}
    if span:
        span_mask = const()
        probs, peak = _masked_softmax(scores, span_mask, const)
        roles.update(span_mask=span_mask, peak=peak)
    else:
        probs = is_op("relax.nn.softmax")(scores)
    merged = is_op("relax.permute_dims")(is_op("relax.matmul")(probs, v_heads))
    out = is_op("relax.reshape")(merged, wildcard())
    roles.update(q_heads=q_heads, k_t=k_t, v_heads=v_heads, merged=merged, probs=probs, out=out)
    order = ("q", "k", "v", "mask", "scale", "span_mask") if span else ("q", "k", "v", "mask", "scale")
    return CompositeSpec(ATTENTION_SPAN if span else ATTENTION, out, roles, order, _check_attention)


_HEAD_AXES = {"q_heads": [0, 2, 1, 3], "k_t": [0, 2, 3, 1], "v_heads": [0, 2, 1, 3], "merged": [0, 2, 1, 3]}


def _check_attention(ctx: relax.transform.PatternCheckContext) -> bool:
    ann = ctx.annotated_expr
    for name, axes in _HEAD_AXES.items():
        got = ann[name].attrs.axes
        if got is None or [int(a) for a in got] != axes:
            return False
    if "peak" in ann:
        if not _check_masked_softmax(ctx):
            return False
    elif int(ann["probs"].attrs.axis) not in (-1, 3):
        return False
    if ann["q"].ty.ndim != 3:
        return False
    # The merge must undo the split: output shape == q's shape [1, S, H*D]; k and v shaped like q.
    shapes = [_shape(ann[n]) for n in ("out", "q", "k", "v")]
    return None not in shapes and all(s == shapes[0] for s in shapes)


def attention_core_spec(const=is_const) -> CompositeSpec:
    """softmax(q @ kT * scale + mask) @ v on per-head [1, H, S, D] operands (layout done outside)."""
    q, k_t, v, mask, scale = wildcard(), wildcard(), wildcard(), wildcard(), const()
    scores = is_op("relax.multiply")(is_op("relax.matmul")(q, k_t), scale)
    probs = is_op("relax.nn.softmax")(is_op("relax.add")(scores, mask))
    out = is_op("relax.matmul")(probs, v)
    roles = {"q": q, "k_t": k_t, "v": v, "mask": mask, "scale": scale, "probs": probs}
    return CompositeSpec(ATTENTION_CORE, out, roles, ("q", "k_t", "v", "mask", "scale"), _check_softmax)


def _check_softmax(ctx: relax.transform.PatternCheckContext) -> bool:
    return int(ctx.annotated_expr["probs"].attrs.axis) in (-1, ctx.annotated_expr["probs"].ty.ndim - 1)


def embedding_specs(const=is_const) -> list[CompositeSpec]:
    """take(table, ids, axis=0), constant table; also behind ONNX Gather's negative-index wrap of ids."""
    ids, table, zero, size = wildcard(), const(), const(), const()
    wrapped = is_op("relax.where")(is_op("relax.less")(ids, zero), is_op("relax.add")(ids, size), ids)
    with_wrap = is_op("relax.take")(table, wrapped)
    ids2, table2 = wildcard(), const()
    plain = is_op("relax.take")(table2, ids2)
    return [
        CompositeSpec(EMBEDDING, with_wrap, {"ids": ids, "table": table, "zero": zero, "size": size, "root": with_wrap},
                      ("ids", "table", "zero", "size"), _check_embedding),
        CompositeSpec(EMBEDDING, plain, {"ids": ids2, "table": table2, "root": plain}, ("ids", "table"),
                      _check_embedding),
    ]


def _check_embedding(ctx: relax.transform.PatternCheckContext) -> bool:
    ann = ctx.annotated_expr
    if int(ann["root"].attrs.axis) != 0 or ann["table"].ty.ndim != 2:
        return False
    if "zero" in ann:
        zero, size = _const_value(ann["zero"]), _const_value(ann["size"])
        rows = int(ann["table"].ty.shape[0])
        return zero is not None and size is not None and zero.size == 1 and size.size == 1 \
            and int(zero.reshape(-1)[0]) == 0 and int(size.reshape(-1)[0]) == rows
    return True


def mask_bias_spec(const=is_const) -> CompositeSpec:
    """where(bool(mask), 0, neg) on mask reshaped to [1, 1, 1, S]: the additive attention-mask row."""
    mask, fzero, neg = wildcard(), const(), const()
    row = is_op("relax.reshape")(mask, wildcard())
    out = is_op("relax.where")(is_op("relax.astype")(row), fzero, neg)
    roles = {"mask": mask, "neg": neg, "fzero": fzero, "row": row}
    return CompositeSpec(MASK_BIAS, out, roles, ("mask", "neg", "fzero"))


def composite_specs(const=is_const) -> list[CompositeSpec]:
    """Every composite, in priority order (earlier wins where matches overlap).

    `const=wildcard` gives the same patterns for matching a composite's body, where weights are parameters.
    """
    return [
        dense_spec(POOLER, activation="relax.tanh", const=const),
        attention_spec(const),
        attention_spec(const, span=True),
        attention_core_spec(const),
        masked_softmax_spec(const),
        gelu_tanh_spec(const),
        dense_spec(const=const),
        layer_norm_spec(const),
        *embedding_specs(const),
        mask_bias_spec(const),
    ]


COMPOSITES = (POOLER, ATTENTION, ATTENTION_SPAN, ATTENTION_CORE, MASKED_SOFTMAX, GELU_TANH, DENSE, LAYER_NORM,
              EMBEDDING, MASK_BIAS)


def fusion_pass() -> tvm.transform.Pass:
    """FuseOpsByPattern over `composite_specs()`: private functions with Composite="edgebert.*"; weights stay
    arguments (`bind_constants=False`). Follow with `CanonicalizeCompositeArgs`."""
    patterns = [relax.transform.FusionPattern(s.name, s.pattern, s.roles, s.check) for s in composite_specs()]
    return relax.transform.FuseOpsByPattern(patterns, bind_constants=False)


@tvm.transform.module_pass(opt_level=0, name="edgebert.CanonicalizeCompositeArgs")
class CanonicalizeCompositeArgs:
    """Give each composite its spec's parameter order and a readable name; rewrite every call to match.

    FuseOpsByPattern orders parameters by first use in the matched bindings, which depends on the exporter
    (e.g. q, v, k) and names functions after their ops; the backend gets one documented order instead,
    and functions named after the composite (`edgebert.dense` -> `edgebert_dense`, `edgebert_dense1`, ...).
    """

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        specs: dict[str, list[CompositeSpec]] = {}
        for spec in composite_specs(const=wildcard):
            specs.setdefault(spec.name, []).append(spec)
        renames: dict[str, tuple[relax.GlobalVar, list[int]]] = {}
        builder = relax.BlockBuilder()
        for gv, func in sorted(mod.functions.items(), key=lambda item: item[0].name_hint):
            name = _composite_name(func)
            if name not in specs:
                continue
            perm = _role_permutation(func, specs[name])
            if perm is None:
                raise RuntimeError(f"composite {gv.name_hint} ({name}) does not match its own pattern")
            new_gv = builder.add_func(_permute_params(func, perm), name.replace(".", "_"))
            renames[gv.name_hint] = (new_gv, perm)
        if not renames:
            return mod
        for gv, func in mod.functions.items():
            if gv.name_hint in renames:
                continue
            if isinstance(func, relax.Function):
                func = _CallRewriter(renames).visit_expr(func)
            builder.add_func(func, gv.name_hint)
        out = builder.get()
        return out.with_attrs(mod.attrs) if mod.attrs is not None else out


def _composite_name(func) -> str | None:
    if isinstance(func, relax.Function) and func.attrs is not None and "Composite" in func.attrs:
        return str(func.attrs["Composite"])
    return None


def _role_permutation(func: relax.Function, specs: list[CompositeSpec]) -> list[int] | None:
    """New position -> old parameter index, roles first in spec order, any other parameter after."""
    var2val = relax.analysis.get_var2val(func)
    body = func.body.body if isinstance(func.body, relax.SeqExpr) else func.body
    root = var2val.get(body, body) if isinstance(body, relax.Var) else body
    params = list(func.params)
    for spec in specs:
        matched = spec.pattern.extract_matched_expr(root, var2val)
        if matched is None:
            continue
        order: list[int] = []
        for role in spec.arg_order:
            expr = matched.get(spec.roles[role])
            index = next((i for i, p in enumerate(params) if expr is not None and p.same_as(expr)), None)
            if index is None:
                return None
            order.append(index)
        return order + [i for i in range(len(params)) if i not in order]
    return None


def _permute_params(func: relax.Function, perm: list[int]) -> relax.Function:
    params = [func.params[i] for i in perm]
    return relax.Function(params, func.body, func.ret_ty, func.is_pure, func.attrs, func.span)


@relax.expr_functor.mutator
class _CallRewriter(relax.PyExprMutator):
    """Point calls of renamed composites at their new GlobalVar, with arguments in the new order."""

    def __init__(self, renames: dict[str, tuple[relax.GlobalVar, list[int]]]):
        super().__init__()
        self.renames = renames

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if isinstance(call.op, relax.GlobalVar) and call.op.name_hint in self.renames:
            new_gv, perm = self.renames[call.op.name_hint]
            return relax.Call(new_gv, [call.args[i] for i in perm], call.attrs, call.ty_args, call.span)
        return call


def _shape(expr) -> list[int] | None:
    ty = getattr(expr, "ty", None)
    shape = getattr(ty, "shape", None)
    if shape is None:
        return None
    try:
        return [int(d) for d in shape]
    except TypeError:
        return None


def _const_value(expr) -> np.ndarray | None:
    if isinstance(expr, tvm.ir.Constant):
        return expr.value.numpy()
    return None


def composite_attrs(func: relax.Function) -> dict[str, object]:
    """Static facts of a composite the backend needs beyond its arguments' shapes.

    layer_norm: {"epsilon", "axes", "scale", "center"}; attention: {"num_heads", "head_dim"}; others: {}.
    """
    name = _composite_name(func)
    calls = _calls_in(func)
    if name == LAYER_NORM:
        ln = next(c for c in calls if c.op.name == "relax.nn.layer_norm")
        return {"epsilon": float(ln.attrs.epsilon), "axes": [int(a) for a in ln.attrs.axes],
                "scale": bool(ln.attrs.scale), "center": bool(ln.attrs.center)}
    if name in (ATTENTION, ATTENTION_SPAN, ATTENTION_CORE):
        mm = next(c for c in calls if c.op.name == "relax.matmul")
        q_heads = _shape(mm.args[0])
        return {"num_heads": q_heads[1], "head_dim": q_heads[3]}
    return {}


def _calls_in(func: relax.Function) -> list:
    return [b.value for block in func.body.blocks for b in block.bindings if isinstance(b.value, tvm.ir.Call)]
