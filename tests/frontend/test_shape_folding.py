"""frontend.shape_folding: the fold of what fixed input shapes make constant, on the weight-free skeleton."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebert.frontend import load_onnx
from edgebert.frontend.loader import _fix_input_shapes
from edgebert.frontend.shape_folding import check_and_infer, fold_shapes, needs_fold, skeleton
from edgebert.isa.errors import CompileError


def _dynamic_model() -> onnx.ModelProto:
    """y = x @ W + position row, the row a Slice of a table by Shape(x)[1] (what dynamic exports compute)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "W")
    table = numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32), "table")
    consts = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("i1", 1), ("zero", [0]), ("ax0", [0]))]
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "i1"], ["seq"], name="seq"),
        helper.make_node("Unsqueeze", ["seq", "ax0"], ["end"], name="end"),
        helper.make_node("Slice", ["table", "zero", "end", "zero"], ["rows"], name="rows"),
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "rows"], ["y"], name="add"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 4])],
                              [w, table, *consts])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def test_skeleton_moves_weights_out_and_keeps_everything_else():
    model = _dynamic_model()
    skel, moved = skeleton(model)
    assert sorted(moved) == ["W", "table"]
    assert {t.name for t in skel.graph.initializer} == {"i1", "zero", "ax0"}
    assert [v.name for v in skel.graph.input] == ["x", "W", "table"]
    assert skel.graph.node == model.graph.node and skel.opset_import == model.opset_import
    assert len(skel.SerializeToString()) < len(model.SerializeToString()) / 2


def test_fold_removes_the_shape_arithmetic_and_keeps_the_weights_by_name():
    model = _dynamic_model()
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones((1, 5, 4), np.float32)})[0]
    _fix_input_shapes(model, 5)
    assert needs_fold(model.graph)
    folded = fold_shapes(model)
    # Shape/Gather/Unsqueeze became the slice's constant end; weights are never folded (the Relax passes fold
    # constant slices of them), so the Slice stays, on constants only
    assert [n.op_type for n in folded.graph.node] == ["Slice", "MatMul", "Add"]
    inits = {t.name: t for t in folded.graph.initializer}
    assert {"W", "table"} <= set(inits) and numpy_helper.to_array(inits[folded.graph.node[0].input[2]]).tolist() == [5]
    got = ort.InferenceSession(folded.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones((1, 5, 4), np.float32)})[0]
    np.testing.assert_array_equal(got, want)


def test_fold_keeps_the_exporters_node_order():
    model = _dynamic_model()
    _fix_input_shapes(model, 5)
    names = [n.name for n in fold_shapes(model).graph.node]
    assert names == ["rows", "matmul", "add"]


def test_nothing_to_fold_leaves_the_model_alone():
    model = _dynamic_model()
    del model.graph.node[:4]
    model.graph.node[-1].input[1] = "xw"
    before = model.SerializeToString()
    assert not needs_fold(model.graph)
    assert fold_shapes(model).SerializeToString() == before


def test_check_and_infer_checks_the_weights_it_leaves_out():
    model = _dynamic_model()
    _fix_input_shapes(model, 5)
    check_and_infer(model)
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 5, 4]
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    with pytest.raises(CompileError, match="'W' holds 15 elements, its shape \\[4, 4\\] says 16"):
        check_and_infer(model)


def test_dynamic_model_loads_static_and_a_graph_onnxruntime_refuses_is_named(tmp_path):
    loaded = load_onnx(_dynamic_model(), seq_len=7)
    assert loaded.inputs[0].shape == (1, 7, 4) and loaded.outputs[0].shape == (1, 7, 4)
    assert [n.op_type for n in loaded.model.graph.node] == ["Slice", "MatMul", "Add"]
    bad = _dynamic_model()
    bad.graph.node[-1].input[1] = "nowhere"  # a dangling input: the fold's onnxruntime session fails
    with pytest.raises(CompileError, match="onnxruntime refuses the graph"):
        load_onnx(bad, seq_len=7)


def test_contrib_ops_say_what_to_export_instead():
    graph = helper.make_graph([helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft", name="fg")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(CompileError, match=r"fg \(com.microsoft::FastGelu\).*as torch.onnx.export wrote it"):
        load_onnx(model, seq_len=4)
