"""Queries on Relax expressions shared by the passes and the lowering, and the rebinding the rewrite passes share."""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import relax


def leaves_in(expr, kind: type) -> list:
    """The `kind` leaves (e.g. relax.Var, relax.Constant) an expression reads (call arguments, tuple fields, tuple
    items, nested), in order."""
    if isinstance(expr, kind):
        return [expr]
    if isinstance(expr, tvm.ir.Call):
        return [v for a in expr.args for v in leaves_in(a, kind)]
    if isinstance(expr, relax.Tuple):
        return [v for f in expr.fields for v in leaves_in(f, kind)]
    if isinstance(expr, relax.TupleGetItem):
        return leaves_in(expr.tuple_value, kind)
    return []


def vars_in(expr) -> list:
    """The Relax vars an expression reads (call arguments, tuple fields, tuple items, nested), in order."""
    return leaves_in(expr, relax.Var)


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


def rebind_matches(mod: tvm.IRModule, match: Callable) -> tvm.IRModule:
    """`mod` with each binding of a non-composite function whose value `match(value, var2val)` rewrites (not None)
    bound to the rewritten expression instead (its nested calls bound first, one op per binding), dead bindings of
    main dropped; `mod` itself when nothing matches."""
    new = {}
    for gv, func in non_composite_functions(mod):
        var2val = relax.analysis.get_var2val(func)
        found = {var: e for var, value in var2val.items() if (e := match(value, var2val)) is not None}
        if found:
            new[gv] = _Rebind(found, mod).visit_expr(func)
    return replace_functions(mod, new)


@relax.expr_functor.mutator
class _Rebind(relax.PyExprMutator):
    def __init__(self, found: dict, mod: tvm.IRModule):
        super().__init__(mod)
        self.found = found

    def visit_var_binding_(self, binding):
        if binding.var in self.found:
            value = self.builder_.normalize(self._flat(self.visit_expr(self.found[binding.var])))
            self.builder_.emit_normalized(relax.VarBinding(binding.var, value))
            return
        super().visit_var_binding_(binding)

    def _flat(self, expr):
        """`expr` with nested calls among its arguments bound first (one op per binding)."""
        if not isinstance(expr, tvm.ir.Call):
            return expr
        args = [self.builder_.emit(self._flat(a)) if isinstance(a, tvm.ir.Call) else a for a in expr.args]
        return relax.Call(expr.op, args, expr.attrs, expr.ty_args, expr.span)
