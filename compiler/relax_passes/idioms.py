"""Exporter idioms that are the identity on the edgebert accelerator, replaced by their operand (outside composites):

* `where(x < 0, x + n, x)`: ONNX Gather's negative-index wrap. The ISA's `gather` traps on a negative id instead
  (no integer ALU to wrap it), so on every id the program accepts the wrap is `x`.
* `where(isnan(s), 0, s)` with `s = softmax(...)`: the softmax of finite scores is never NaN.
"""

from __future__ import annotations

import tvm
from tvm import relax

from edgebert.compiler.relax_passes.exprs import rebind_matches


@tvm.transform.module_pass(opt_level=0, name="edgebert.SimplifyIdentityIdioms")
class SimplifyIdentityIdioms:
    """Bind each idiom's var to its operand (module docstring), then drop what became dead."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return rebind_matches(mod, identity_operand)


def identity_operand(value, var2val: dict) -> relax.Var | None:
    """The var an idiom `value` equals (module docstring), else None."""
    if not _is_op(value, "relax.where"):
        return None
    cond, a, b = value.args
    lt, add = var2val.get(cond), var2val.get(a)
    if _is_op(lt, "relax.less") and _is_op(add, "relax.add") and _scalar(lt.args[1]) == 0 \
            and lt.args[0].same_as(b) and any(x.same_as(b) for x in add.args):
        return b
    nan = var2val.get(cond)
    if _is_op(nan, "relax.isnan") and _scalar(a) == 0.0 and nan.args[0].same_as(b) \
            and _is_op(var2val.get(b), "relax.nn.softmax"):
        return b
    return None


def _is_op(expr, name: str) -> bool:
    return isinstance(expr, tvm.ir.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == name


def _scalar(expr) -> float | None:
    if isinstance(expr, tvm.ir.Constant):
        value = expr.value.numpy()
        if value.size == 1:
            return float(value.reshape(-1)[0])
    return None
