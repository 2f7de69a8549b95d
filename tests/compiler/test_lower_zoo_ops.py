"""Lowerings added for the encoder zoo (compiler/lower/math_ops.py, view_ops.py), each a few-node ONNX graph compiled,
emulated and compared with onnxruntime; and the backend's support check (compiler/lower/support.py)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator import run
from edgebert.isa.errors import CompileError

RNG = np.random.default_rng(0)
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model(nodes, inputs, outputs, consts=None, opset=18):
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (consts or {}).items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _x(shape=(1, 6, 8)):
    return RNG.standard_normal(shape).astype(np.float32) * 2


def _unary(op, **attrs):
    return _model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, [1, 6, 8])], [("y", F, [1, 6, 8])])


CASES = {
    "split_uneven": (_model([helper.make_node("Split", ["x"], ["a", "b", "c"], axis=2, num_outputs=3)],
                            [("x", F, [1, 6, 7])], [("a", F, [1, 6, 3]), ("b", F, [1, 6, 3]), ("c", F, [1, 6, 1])]),
                     {"x": _x((1, 6, 7))}),
    "slice_step": (_model([helper.make_node("Slice", ["x", "b", "e", "ax", "st"], ["y"])], [("x", F, [1, 6, 8])],
                          [("y", F, [1, 3, 3])], {"b": np.array([0, 1], np.int64), "e": np.array([6, 8], np.int64),
                                                 "ax": np.array([1, 2], np.int64), "st": np.array([2, 3], np.int64)}),
                   {"x": _x()}),
    "slice_reverse": (_model([helper.make_node("Slice", ["x", "b", "e", "ax", "st"], ["y"])], [("x", F, [1, 6, 8])],
                             [("y", F, [1, 6, 4])], {"b": np.array([6], np.int64), "e": np.array([-9], np.int64),
                                                    "ax": np.array([2], np.int64), "st": np.array([-2], np.int64)}),
                      {"x": _x()}),
    "pad": (_model([helper.make_node("Pad", ["x", "p", "v"], ["y"])], [("x", F, [1, 6, 8])], [("y", F, [1, 8, 9])],
                   {"p": np.array([0, 1, 0, 0, 1, 1], np.int64), "v": np.array(0.5, np.float32)}), {"x": _x()}),
    "clip": (_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [("x", F, [1, 6, 8])], [("y", F, [1, 6, 8])],
                    {"lo": np.array(-1.0, np.float32), "hi": np.array(0.5, np.float32)}), {"x": _x()}),
    "leaky_relu": (_unary("LeakyRelu", alpha=0.1), {"x": _x()}),
    "leaky_relu_steep": (_unary("LeakyRelu", alpha=3.0), {"x": _x()}),
    "prelu_channels": (_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", F, [1, 6, 8])],
                              [("y", F, [1, 6, 8])], {"s": RNG.standard_normal(8).astype(np.float32)}), {"x": _x()}),
    "hard_swish": (_unary("HardSwish"), {"x": _x() * 3}),
    "hard_sigmoid": (_unary("HardSigmoid", alpha=0.3, beta=0.4), {"x": _x()}),
    "softplus": (_unary("Softplus"), {"x": _x()}),
    "mish": (_unary("Mish"), {"x": _x()}),
    "erf": (_unary("Erf"), {"x": _x()}),
    "log": (_unary("Log"), {"x": np.abs(_x()) + 0.1}),
    "sqrt": (_unary("Sqrt"), {"x": np.abs(_x())}),
    "cumsum_axis1_exclusive": (_model([helper.make_node("CumSum", ["x", "ax"], ["y"], exclusive=1)],
                                      [("x", F, [1, 6, 8])], [("y", F, [1, 6, 8])], {"ax": np.array(1, np.int32)}),
                               {"x": _x()}),
    "reduce_mean_sum": (_model([helper.make_node("ReduceMean", ["x", "ax"], ["m"], keepdims=1),
                                helper.make_node("ReduceSum", ["x", "ax"], ["s"], keepdims=0)],
                               [("x", F, [1, 6, 7])], [("m", F, [1, 6, 1]), ("s", F, [1, 6])],
                               {"ax": np.array([-1], np.int64)}), {"x": _x((1, 6, 7))}),
    "compare_ids_select": (_model([helper.make_node("Equal", ["ids", "pad"], ["e"]),
                                   helper.make_node("Less", ["x", "zero"], ["lt"]),
                                   helper.make_node("Not", ["e"], ["ne"]), helper.make_node("And", ["ne", "lt"], ["c"]),
                                   helper.make_node("Where", ["c", "x", "zero"], ["y"])],
                                  [("ids", I64, [1, 8]), ("x", F, [1, 8])], [("y", F, [1, 8])],
                                  {"pad": np.array(1, np.int64), "zero": np.array(0.0, np.float32)}),
                           {"ids": np.array([[0, 1, 5, 1, 7, 2, 1, 9]], np.int64), "x": _x((1, 8))}),
    "gather_nd_gather_elements": (
        _model([helper.make_node("GatherND", ["x", "i"], ["a"]),
                helper.make_node("GatherElements", ["x", "j"], ["b"], axis=2)],
               [("x", F, [1, 6, 8])], [("a", F, [1, 3, 8]), ("b", F, [1, 6, 2])],
               {"i": np.array([[[0, 5], [0, 1], [0, 1]]], np.int64),
                "j": RNG.integers(-8, 8, (1, 6, 2)).astype(np.int64)}), {"x": _x()}),
    "float_to_int_gather": (_model([helper.make_node("Mul", ["x", "k"], ["m"]), helper.make_node("Cast", ["m"], ["i"], to=I64),
                                    helper.make_node("Gather", ["t", "i"], ["y"])],
                                   [("x", F, [1, 6])], [("y", F, [1, 6, 4])],
                                   {"k": np.array(3.9, np.float32), "t": RNG.standard_normal((10, 4)).astype(np.float32)}),
                            {"x": RNG.uniform(0, 2.5, (1, 6)).astype(np.float32)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_lowering_matches_onnxruntime(name):
    model, inputs = CASES[name]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs), strict=True))
    got = run(compile_onnx(model).program, inputs).outputs
    for key, ref in want.items():
        np.testing.assert_allclose(got[key].reshape(ref.shape), ref, rtol=1e-6, atol=1e-6, err_msg=key)


def test_support_check_lists_every_binding_before_lowering():
    """Three unlowerable bindings (a cumsum of unbounded integers, a max over a middle axis, a run-time pad-free
    ReduceMax) are all named, with their reasons, by the `check` stage: nothing is lowered."""
    model = _model([helper.make_node("CumSum", ["ids", "ax"], ["c"]),
                    helper.make_node("ReduceMax", ["x", "ax1"], ["m"], keepdims=0),
                    helper.make_node("ReduceSum", ["x", "ax1"], ["s"], keepdims=0)],
                   [("ids", I64, [1, 8]), ("x", F, [1, 8, 6])], [("c", I64, [1, 8]), ("m", F, [1, 6]), ("s", F, [1, 6])],
                   {"ax": np.array(1, np.int32), "ax1": np.array([1], np.int64)})
    timings: dict[str, float] = {}
    with pytest.raises(CompileError) as err:
        compile_onnx(model, timings=timings)
    message = str(err.value)
    assert message.startswith("3 binding(s) the edgebert backend cannot lower [ops: relax.cumsum, relax.max, relax.sum]")
    assert "prefix sum of int64 values of unbounded range" in message and "no lowering for this op" in message
    assert "reductions over the last axis only" in message
    assert "relax" in timings and "check" not in timings and "lower" not in timings
