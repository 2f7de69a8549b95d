"""TVM's own cleanup passes for an imported ONNX module, plus operand canonicalisation before fusion."""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

_COMMUTATIVE = ("relax.add", "relax.multiply")


def cleanup_passes(params: dict[str, Any] | None = None) -> list[tvm.transform.Pass]:
    """Bind weights (if imported as parameters), fold constants, tidy bindings, drop dead code.

    Measured on tiny ALBERT (legacy export): FoldConstant removes every shape computation (Shape,
    ConstantOfShape, position ids) and ~100 bindings; the rest take milliseconds.
    """
    passes: list[tvm.transform.Pass] = []
    if params:
        passes.append(relax.transform.BindParams("main", params))
    passes += [
        relax.transform.FoldConstant(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.EliminateCommonSubexpr(),
        relax.transform.DeadCodeElimination(["main"]),
        ConstantOperandLast(),
    ]
    return passes


@tvm.transform.module_pass(opt_level=0, name="edgebert.ConstantOperandLast")
class ConstantOperandLast:
    """Rewrite `add(const, x)` / `multiply(const, x)` to `add(x, const)`: one operand order for patterns.

    The legacy exporter writes the bias first (`Add(bias, MatMul)`), the dynamo exporter last.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        out = mod
        for gv, func in mod.functions.items():
            if not isinstance(func, relax.Function):
                continue
            new = func
            for op in _COMMUTATIVE:
                const, other = is_const(), wildcard()
                pattern = is_op(op)(const, other)
                new = rewrite_call(pattern, _swap(op, const, other), new)
            if not new.same_as(func):
                out = _with_function(out, gv, new)
        return out


def _swap(op_name: str, const, other):
    op = relax.op.add if op_name == "relax.add" else relax.op.multiply

    def rewriter(expr, matches):
        if isinstance(matches[other], tvm.ir.Constant):
            return expr
        return op(matches[other], matches[const])

    return rewriter


def _with_function(mod: tvm.IRModule, gv, func) -> tvm.IRModule:
    new = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
    new[gv] = func
    return new
