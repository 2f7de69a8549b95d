"""Integer arithmetic of bounded range computed in float32 (the accelerator has no integer datapath).

RoBERTa (and XLM-R, CamemBERT, Longformer) compute position ids at run time:
`astype(not(equal(ids, pad)), int) -> cumsum -> * mask -> + pad -> take(position table, .)`. `IntegerArithmeticInFloat`
tracks the value range of every integer binding it can bound (constants; casts of bools: [0, 1]; `add`, `subtract`,
`multiply`, `cumsum`, `where` and int-to-int casts of bounded values, by interval arithmetic) and computes each one
whose range stays within +-2^24 in float32 instead, where every such integer and every partial sum is exact. The
integer binding stays, as `astype(float version, int)` (a `ftoi`), for consumers that need an integer (a gather's
indices); comparisons and further arithmetic read the float version. Integers of unknown range (graph inputs) are
left alone.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from edgebert.compiler.relax_passes.exprs import non_composite_functions, replace_functions

#: |value| bound under which float32 represents every integer exactly.
EXACT = 2**24
_INT = ("int32", "int64")
_COMPARE = ("relax.equal", "relax.not_equal", "relax.less", "relax.less_equal", "relax.greater",
            "relax.greater_equal")


def _dtype(expr) -> str:
    return str(getattr(expr.ty, "dtype", ""))


def _const_range(expr) -> tuple[float, float] | None:
    if isinstance(expr, tvm.ir.Constant) and _dtype(expr) in _INT:
        a = expr.value.numpy()
        if a.size:
            return float(a.min()), float(a.max())
    return None


@tvm.transform.module_pass(opt_level=0, name="edgebert.IntegerArithmeticInFloat")
class IntegerArithmeticInFloat:
    """See module docstring."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        new = {}
        for gv, func in non_composite_functions(mod):
            rewriter = _Floatify(mod)
            rewritten = rewriter.visit_expr(func)
            if rewriter.count:
                new[gv] = rewritten
        return replace_functions(mod, new)


@relax.expr_functor.mutator
class _Floatify(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.floats: dict = {}  # int var -> (float32 var, (lo, hi))
        self.count = 0

    def _operand(self, expr):
        """(float32 expr, range) of an integer operand: a floatified var or an exact constant, else None."""
        if isinstance(expr, relax.Var) and expr in self.floats:
            return self.floats[expr]
        rng = _const_range(expr)
        if rng is not None and max(abs(rng[0]), abs(rng[1])) < EXACT:
            return relax.const(expr.value.numpy().astype(np.float32), "float32"), rng
        return None

    def _float_version(self, var, value):
        """(float32 expression, range) computing integer binding `var = value`, or None."""
        if not isinstance(value, tvm.ir.Call) or not isinstance(value.op, tvm.ir.Op):
            return None
        name, args = value.op.name, value.args
        if name == "relax.astype":
            if _dtype(args[0]) == "bool":
                return relax.op.astype(args[0], "float32"), (0.0, 1.0)
            src = self._operand(args[0]) if _dtype(args[0]) in _INT else None
            return src
        if name in ("relax.add", "relax.subtract", "relax.multiply"):
            ops = [self._operand(a) for a in args]
            if None in ops or all(isinstance(a, tvm.ir.Constant) for a in args):
                return None
            (fa, (a0, a1)), (fb, (b0, b1)) = ops
            if name == "relax.add":
                rng = (a0 + b0, a1 + b1)
            elif name == "relax.subtract":
                rng = (a0 - b1, a1 - b0)
            else:
                products = [a0 * b0, a0 * b1, a1 * b0, a1 * b1]
                rng = (min(products), max(products))
            op = {"relax.add": relax.op.add, "relax.subtract": relax.op.subtract, "relax.multiply": relax.op.multiply}
            return op[name](fa, fb), rng
        if name == "relax.cumsum":
            src = self._operand(args[0])
            if src is None or value.attrs.axis is None:
                return None
            fx, (lo, hi) = src
            n = int(args[0].ty.shape[int(value.attrs.axis)])
            rng = (n * min(lo, 0.0), n * max(hi, 0.0))
            return relax.op.cumsum(fx, int(value.attrs.axis), "float32", bool(value.attrs.exclusive)), rng
        if name == "relax.where":
            a, b = self._operand(args[1]), self._operand(args[2])
            if a is None or b is None:
                return None
            return relax.op.where(args[0], a[0], b[0]), (min(a[1][0], b[1][0]), max(a[1][1], b[1][1]))
        return None

    def visit_var_binding_(self, binding):
        var = binding.var
        value = self.visit_expr(binding.value)
        if _dtype(var) in _INT:
            found = self._float_version(var, value)
            if found is not None and max(abs(found[1][0]), abs(found[1][1])) < EXACT:
                fexpr, rng = found
                fvar = fexpr if isinstance(fexpr, relax.Var) else self.builder_.emit(fexpr, f"{var.name}_f")
                self.floats[var] = (fvar, rng)
                self.count += 1
                cast = self.builder_.normalize(relax.op.astype(fvar, _dtype(var)))
                self.builder_.emit_normalized(relax.VarBinding(var, cast))
                return
        if _is_compare(value):
            value = self._compare_in_float(value)
        self.builder_.emit_normalized(relax.VarBinding(var, self.builder_.normalize(value)))

    def _compare_in_float(self, call):
        """A comparison of floatified integers reads their float versions."""
        ops = [self._operand(a) if _dtype(a) in _INT else None for a in call.args]
        if any(o is None for o in ops) or not any(isinstance(a, relax.Var) and a in self.floats for a in call.args):
            return call
        return relax.Call(call.op, [o[0] for o in ops], call.attrs, call.ty_args, call.span)


def _is_compare(value) -> bool:
    return isinstance(value, tvm.ir.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name in _COMPARE
