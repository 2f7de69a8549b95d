"""relax_passes.CanonicalizeDecomposed: exact GELU and LayerNorm below opset 17, as the exporters decompose them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper

from edgebert.compiler.pipeline import compile_onnx
from edgebert.compiler.relax_passes import CanonicalizeDecomposed, cleanup_passes, run_passes
from edgebert.emulator import run
from edgebert.frontend import load_onnx, to_relax

SHAPE = [1, 6, 8]


def _model(nodes, consts, opset=18):
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _ops(model) -> list[str]:
    mod = run_passes(to_relax(load_onnx(model)), [*cleanup_passes(), CanonicalizeDecomposed()])
    return [b.value.op.name for b in mod["main"].body.blocks[0].bindings
            if isinstance(b.value, tvm.ir.Call) and isinstance(b.value.op, tvm.ir.Op)]


def _gelu(order: str, scale: str = "div", half: float = 0.5):
    n = helper.make_node
    inner = [n("Div", ["x", "c"], ["d"])] if scale == "div" else [n("Mul", ["x", "c"], ["d"])]
    c = math.sqrt(2) if scale == "div" else 1 / math.sqrt(2)
    term = [*inner, n("Erf", ["d"], ["e"]), n("Add", ["e", "one"], ["t"])]
    tail = {
        "legacy": [n("Mul", ["x", "t"], ["m"]), n("Mul", ["m", "half"], ["y"])],  # (x * t) * 0.5
        "dynamo": [n("Mul", ["t", "half"], ["m"]), n("Mul", ["x", "m"], ["y"])],  # x * (t * 0.5)
        "python": [n("Mul", ["x", "half"], ["m"]), n("Mul", ["m", "t"], ["y"])],  # (x * 0.5) * t
    }[order]
    return _model(term + tail, {"c": c, "one": 1.0, "half": half})


@pytest.mark.parametrize("order", ["legacy", "dynamo", "python"])
@pytest.mark.parametrize("scale", ["div", "mul"])
def test_exact_gelu_forms_become_nn_gelu(order, scale):
    assert _ops(_gelu(order, scale)) == ["relax.nn.gelu"]


def test_other_erf_expressions_stay():
    ops = _ops(_gelu("legacy", half=0.25))  # not GELU: 0.25 x (1 + erf(x / sqrt 2))
    assert "relax.erf" in ops and "relax.nn.gelu" not in ops


def _layer_norm(square: str = "pow", eps: float = 1e-12):
    n = helper.make_node
    sq = n("Pow", ["d", "two"], ["d2"]) if square == "pow" else n("Mul", ["d", "d"], ["d2"])
    nodes = [n("ReduceMean", ["x"], ["mu"], axes=[-1]), n("Sub", ["x", "mu"], ["d"]), sq,
             n("ReduceMean", ["d2"], ["var"], axes=[-1]), n("Add", ["var", "eps"], ["ve"]), n("Sqrt", ["ve"], ["sd"]),
             n("Div", ["d", "sd"], ["nrm"]), n("Mul", ["nrm", "gamma"], ["g"]), n("Add", ["g", "beta"], ["y"])]
    rng = np.random.default_rng(0)
    return _model(nodes, {"two": 2.0, "eps": eps, "gamma": 1 + 0.1 * rng.standard_normal(8),
                          "beta": 0.1 * rng.standard_normal(8)}, opset=14)


@pytest.mark.parametrize("square", ["pow", "mul"])
def test_decomposed_layer_norm_becomes_nn_layer_norm(square):
    assert _ops(_layer_norm(square)) == ["relax.nn.layer_norm"]


def _transposes(second: list[int] | None):
    """Transpose [0, 2, 1], a reshape to the shape it already has, Transpose `second` (dynamo's k^T; None: no perm,
    the dims reversed)."""
    shape = helper.make_tensor("s", TensorProto.INT64, [3], [SHAPE[0], SHAPE[2], SHAPE[1]])
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Reshape", ["t", "s"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], **({"perm": second} if second is not None else {}))]
    model = _model(nodes, {})
    model.graph.initializer.append(shape)
    mid = (SHAPE[0], SHAPE[2], SHAPE[1])
    for dim, p in zip(model.graph.output[0].type.tensor_type.shape.dim, second or [2, 1, 0], strict=True):
        dim.dim_value = mid[p]
    return model


def _batch_dropped_transpose():
    """Reshape [1, 6, 8] -> [6, 8], Transpose, Reshape -> [1, 8, 6] (dynamo's RoBERTa k^T: the transpose of [H, S, D]
    between reshapes that drop and restore the batch dim)."""
    s1 = helper.make_tensor("s1", TensorProto.INT64, [2], [SHAPE[1], SHAPE[2]])
    s2 = helper.make_tensor("s2", TensorProto.INT64, [3], [1, SHAPE[2], SHAPE[1]])
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Transpose", ["a"], ["t"], perm=[1, 0]),
             helper.make_node("Reshape", ["t", "s2"], ["y"])]
    model = _model(nodes, {})
    model.graph.initializer.extend([s1, s2])
    for dim, n in zip(model.graph.output[0].type.tensor_type.shape.dim, (1, SHAPE[2], SHAPE[1]), strict=True):
        dim.dim_value = n
    return model


def test_consecutive_transposes_compose():
    assert _ops(_transposes([0, 2, 1])) == []  # they cancel: y is x
    assert _ops(_transposes([1, 0, 2])) == ["relax.permute_dims"]  # [1, 8, 6] -> [8, 1, 6]: x by axes [2, 0, 1]
    assert _ops(_transposes(None)) == ["relax.permute_dims"]  # reversed: [6, 8, 1], x by axes [1, 2, 0]
    assert _ops(_batch_dropped_transpose()) == ["relax.permute_dims"]  # x by axes [0, 2, 1]


@pytest.mark.parametrize("build", [lambda: _gelu("dynamo", "mul"), lambda: _layer_norm("mul", 1e-5),
                                   lambda: _transposes([0, 2, 1]), lambda: _transposes([1, 0, 2]),
                                   lambda: _transposes(None), _batch_dropped_transpose])
def test_canonicalised_models_match_onnxruntime(build):
    import onnxruntime as ort

    model = build()
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32) * 2
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = run(compile_onnx(model).program, {"x": x}).outputs["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
