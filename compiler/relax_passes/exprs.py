"""Queries on Relax expressions shared by the passes and the lowering."""

from __future__ import annotations

import tvm
from tvm import relax


def vars_in(expr) -> list:
    """The Relax vars an expression reads (call arguments, tuple fields, tuple items, nested), in order."""
    if isinstance(expr, relax.Var):
        return [expr]
    if isinstance(expr, tvm.ir.Call):
        return [v for a in expr.args for v in vars_in(a)]
    if isinstance(expr, relax.Tuple):
        return [v for f in expr.fields for v in vars_in(f)]
    if isinstance(expr, relax.TupleGetItem):
        return vars_in(expr.tuple_value)
    return []


def non_composite_functions(mod: tvm.IRModule) -> list[tuple]:
    """(GlobalVar, Function) of every Relax function of `mod` that is not an `edgebert.*` composite."""
    return [(gv, f) for gv, f in mod.functions.items()
            if isinstance(f, relax.Function) and (f.attrs is None or "Composite" not in f.attrs)]


def replace_functions(mod: tvm.IRModule, new: dict) -> tvm.IRModule:
    """`mod` with the functions in `new` (GlobalVar -> Function) replaced and dead bindings of main dropped; `mod`
    itself when `new` is empty."""
    if not new:
        return mod
    out = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
    for gv, func in new.items():
        out[gv] = func
    return relax.transform.DeadCodeElimination(["main"])(out)
