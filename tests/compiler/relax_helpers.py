"""Shared helpers for the Relax pass tests: build small modules, run them on TVM's CPU build, count composites."""

from __future__ import annotations

from collections import Counter

import numpy as np
import tvm
from tvm import relax


def run_cpu(mod: tvm.IRModule, *inputs: np.ndarray) -> list[np.ndarray]:
    """`tvm.compile(mod, "llvm")` + VirtualMachine; the outputs of main as numpy arrays."""
    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(x)) for x in inputs])
    return [out.numpy()] if hasattr(out, "numpy") else [o.numpy() for o in out]


def composite_calls(mod: tvm.IRModule) -> Counter:
    """Composite name -> number of call sites across all functions of `mod`."""
    kinds = {gv.name_hint: str(f.attrs["Composite"]) for gv, f in mod.functions.items()
             if isinstance(f, relax.Function) and f.attrs is not None and "Composite" in f.attrs}
    counts: Counter = Counter()
    for call in calls_in(mod):
        if isinstance(call.op, relax.GlobalVar) and call.op.name_hint in kinds:
            counts[kinds[call.op.name_hint]] += 1
    return counts


def calls_in(mod: tvm.IRModule) -> list:
    """Every call bound in a non-composite function of `mod`."""
    calls = []
    for _, func in mod.functions.items():
        if not isinstance(func, relax.Function) or (func.attrs is not None and "Composite" in func.attrs):
            continue
        for block in func.body.blocks:
            calls.extend(b.value for b in block.bindings if isinstance(b.value, tvm.ir.Call))
    return calls


def calls_to(mod: tvm.IRModule, composite: str) -> list:
    """The call sites of composite `composite` (e.g. "edgebert.dense")."""
    names = {gv.name_hint for gv, f in mod.functions.items()
             if isinstance(f, relax.Function) and f.attrs is not None and f.attrs.get("Composite") == composite}
    return [c for c in calls_in(mod) if isinstance(c.op, relax.GlobalVar) and c.op.name_hint in names]


def tensor_var(name: str, shape, dtype: str = "float32") -> relax.Var:
    return relax.Var(name, relax.TensorType(list(shape), dtype))


def const(array) -> relax.Expr:
    array = np.asarray(array)
    return relax.const(array, str(array.dtype))
