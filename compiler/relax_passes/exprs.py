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
