"""ONNX's own node test cases for every op edgebertc accepts: each compiles and matches, or is rejected cleanly."""

from __future__ import annotations

import collections
import functools

import pytest
from onnx_node_cases import run_case, strip_optional_outputs, supported_cases

#: Cases whose data the hardware rejects at run time with a clear trap instead of at compile time.
RUNTIME_REJECTIONS = {
    # negative indices are data, not an attribute: `gather` traps "index out of range" (no int ALU to wrap them)
    "test_gather_negative_indices": "gather index",
}

#: Minimum passing cases per op (what the lowering covers today; a regression drops below these).
MIN_PASSING = {
    "Add": 2,
    "Sub": 3,
    "Mul": 9,
    "Div": 9,
    "MatMul": 7,
    "Gemm": 11,
    "Tanh": 2,
    "Relu": 1,
    "Exp": 2,
    "Neg": 2,
    "Abs": 1,
    "Sigmoid": 2,
    "Reciprocal": 2,
    "Gelu": 4,
    "Softmax": 7,
    "LayerNormalization": 12,
    "Gather": 1,
    "Reshape": 6,
    "Transpose": 13,
    "Flatten": 9,
    "Concat": 18,
    "Identity": 2,
    "Slice": 6,
    # added for the encoder zoo (docs/generality.md)
    "Split": 14,
    "Clip": 9,
    "LeakyRelu": 3,
    "PRelu": 2,
    "HardSigmoid": 4,
    "HardSwish": 1,
    "Softplus": 3,
    "Mish": 1,
    "Erf": 1,
    "Log": 2,
    "Sqrt": 40,
    "ReduceMean": 40,
    "Less": 8,
    "Where": 9,
    "Min": 3,
    "Max": 3,
}


@functools.cache
def outcome(name: str):
    case = next(c for c in supported_cases() if c.name == name)
    return run_case(strip_optional_outputs(case))


@pytest.mark.parametrize("name", [c.name for c in supported_cases()])
def test_node_case_passes_or_is_rejected(name):
    result = outcome(name)
    if name in RUNTIME_REJECTIONS:
        assert result.status in ("pass", "rejected") or RUNTIME_REJECTIONS[name] in result.detail, result
        return
    assert result.status in ("pass", "rejected"), f"{name}: {result.status}: {result.detail}"


def test_minimum_passing_cases_per_op():
    passed: collections.Counter = collections.Counter()
    for case in supported_cases():
        if outcome(case.name).status == "pass":
            passed.update({n.op_type for n in case.model.graph.node})
    short = {op: (passed[op], need) for op, need in MIN_PASSING.items() if passed[op] < need}
    assert not short, f"ops below their minimum passing node cases (got, need): {short}"
