"""float16 models are computed in float32 (frontend/fp16.py): widened on load, said in the metadata and by edgebertc."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgebert.compiler.cli import main as edgebertc
from edgebert.emulator import run
from edgebert.frontend import load_onnx
from edgebert.isa.ebin import load_ebin


def _fp16_model():
    """y = Cast(x @ W, to=float16) * c, all float16, with a Constant node (what `model.half()` exports hold)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((8, 8)) / 3).astype(np.float16), "W")
    c = helper.make_tensor("c", TensorProto.FLOAT16, [], [np.float16(0.5).view(np.uint16)], raw=False)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Cast", ["m"], ["mc"], to=TensorProto.FLOAT16),
             helper.make_node("Constant", [], ["half"], value=c), helper.make_node("Mul", ["mc", "half"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def test_fp16_model_is_widened_exactly_and_matches_its_fp32_self():
    model = _fp16_model()
    loaded = load_onnx(model)
    assert loaded.source_dtype == "float16"
    assert [t.dtype for t in loaded.inputs] == ["float32"] and [t.dtype for t in loaded.outputs] == ["float32"]
    w = {t.name: numpy_helper.to_array(t) for t in loaded.model.graph.initializer}["W"]
    want_w = numpy_helper.to_array(model.graph.initializer[0])
    assert w.dtype == np.float32 and np.array_equal(w, want_w.astype(np.float32))
    assert all(a.i != TensorProto.FLOAT16 for n in loaded.model.graph.node for a in n.attribute if a.name == "to")
    x16 = np.random.default_rng(1).standard_normal((1, 4, 8)).astype(np.float16)
    want = ort.InferenceSession(loaded.model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x16.astype(np.float32)})[0]
    half = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x16})[0]
    from edgebert.compiler.pipeline import compile_onnx

    program = compile_onnx(model).program
    assert program.metadata["source_dtype"] == "float16" and program.metadata["computed_in"] == "float32"
    got = run(program, {"x": x16.astype(np.float32)}).outputs["y"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, half.astype(np.float32), rtol=2e-3, atol=2e-3)  # fp16 rounding apart


def test_edgebertc_says_it_computes_fp16_in_fp32(tmp_path, capsys):
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(_fp16_model(), str(path))
    assert edgebertc([str(path), "-o", str(tmp_path / "m.ebin")]) == 0
    err = capsys.readouterr().err
    assert "edgebertc: note: the model is float16; the accelerator computes it in float32" in err
    assert load_ebin(tmp_path / "m.ebin").metadata["computed_in"] == "float32"


def test_fp32_models_carry_no_note():
    model = _fp16_model()
    from edgebert.frontend.fp16 import widen_float16

    assert widen_float16(model) and not widen_float16(model)  # the second time there is nothing left to widen


def test_float16_data_that_does_not_match_its_dims_is_a_compile_error():
    """A damaged fp16 initializer (raw data for 8x8 behind dims 8x16) is refused naming it, not a numpy traceback
    (found by scripts/fuzz.py)."""
    import pytest

    from edgebert.isa.errors import CompileError

    model = _fp16_model()
    model.graph.initializer[0].dims[:] = [8, 16]
    with pytest.raises(CompileError, match="float16 tensor 'W'"):
        load_onnx(model)
