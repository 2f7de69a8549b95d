"""Binding-graph peepholes found before lowering: GELU (tanh form), matmul + bias, and no-op mask idioms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

GELU_C1 = 0.044715
GELU_C2 = 0.7978845608028654  # sqrt(2 / pi)


def is_var(x: Any) -> bool:
    return type(x).__name__ in ("Var", "DataflowVar")


def is_const(x: Any) -> bool:
    return type(x).__name__ == "GenericConst"


def const_array(x: Any) -> np.ndarray:
    return x.value.numpy()


def op_name(call: Any) -> str | None:
    op = getattr(call, "op", None)
    return getattr(op, "name", None) if op is not None and type(op).__name__ == "Op" else None


def scalar_of(x: Any) -> float | None:
    """The value of a constant holding one element, else None."""
    if is_const(x):
        a = const_array(x)
        if a.size == 1:
            return float(a.reshape(-1)[0])
    return None


@dataclass
class Peepholes:
    """Bindings rewritten before lowering: var -> ('gelu', x) / ('alias', x) / ('skip',)."""

    rewrites: dict[Any, tuple] = field(default_factory=dict)


def find_peepholes(bindings: list[Any], users: dict[Any, list[Any]]) -> Peepholes:
    """Scan a function's bindings for the idioms lowered specially."""
    defs = {b.var: b.value for b in bindings}
    ph = Peepholes()

    def call(v: Any, name: str) -> Any | None:
        c = defs.get(v) if is_var(v) else None
        return c if c is not None and op_name(c) == name else None

    def split_scalar(c: Any) -> tuple[Any, float] | None:
        a, b = c.args
        if scalar_of(b) is not None and is_var(a):
            return a, scalar_of(b)
        if scalar_of(a) is not None and is_var(b):
            return b, scalar_of(a)
        return None

    def only_used_by(v: Any, allowed: set) -> bool:
        return all(u in allowed for u in users.get(v, []))

    for b in bindings:
        v, c = b.var, b.value
        name = op_name(c)
        if name == "relax.multiply" and all(is_var(a) for a in c.args):
            m = _match_gelu(c, call, split_scalar)
            if m is not None:
                x, inner = m
                if all(only_used_by(t, set(inner) | {v}) for t in inner):
                    for t in inner:
                        ph.rewrites[t] = ("skip",)
                    ph.rewrites[v] = ("gelu", x)
        elif name == "relax.where":
            cond, a, bb = c.args
            # where(x < 0, x + n, x): ONNX Gather's negative-index wrap; gather traps on negative ids instead.
            lt = call(cond, "relax.less")
            add = call(a, "relax.add")
            if (
                lt is not None
                and add is not None
                and scalar_of(lt.args[1]) == 0
                and lt.args[0].same_as(bb)
                and any(x.same_as(bb) for x in add.args)
            ):
                ph.rewrites[v] = ("alias", bb)
            # where(isnan(x), 0, x): softmax outputs of finite scores are never NaN.
            nan = call(cond, "relax.isnan")
            if nan is not None and scalar_of(a) == 0.0 and nan.args[0].same_as(bb):
                src = call(bb, "relax.nn.softmax")
                if src is not None:
                    ph.rewrites[v] = ("alias", bb)
    return ph


def _match_gelu(root: Any, call, split_scalar) -> tuple[Any, list[Any]] | None:
    """x for root = (x * 0.5) * (tanh((x + 0.044715 * x^3) * sqrt(2/pi)) + 1), with the inner vars."""
    for half_v, plus_v in (root.args, root.args[::-1]):
        half = call(half_v, "relax.multiply")
        plus = call(plus_v, "relax.add")
        if half is None or plus is None:
            continue
        hs, ps = split_scalar(half), split_scalar(plus)
        if hs is None or ps is None or not np.isclose(hs[1], 0.5) or not np.isclose(ps[1], 1.0):
            continue
        x = hs[0]
        th = call(ps[0], "relax.tanh")
        if th is None:
            continue
        m2 = call(th.args[0], "relax.multiply")
        s2 = split_scalar(m2) if m2 is not None else None
        if s2 is None or not np.isclose(s2[1], GELU_C2, rtol=1e-5):
            continue
        a1 = call(s2[0], "relax.add")
        if a1 is None or not all(is_var(t) for t in a1.args):
            continue
        for xv, cube_v in (a1.args, a1.args[::-1]):
            m1 = call(cube_v, "relax.multiply")
            s1 = split_scalar(m1) if m1 is not None else None
            if s1 is None or not np.isclose(s1[1], GELU_C1, rtol=1e-4) or not xv.same_as(x):
                continue
            pw = call(s1[0], "relax.power")
            if pw is None or not pw.args[0].same_as(x) or scalar_of(pw.args[1]) != 3.0:
                continue
            return x, [half_v, plus_v, ps[0], th.args[0], s2[0], cube_v, s1[0]]
    return None
