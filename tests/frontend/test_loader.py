"""edgebert.frontend.load_onnx / to_relax: validation, shape fixing, external data, support check, TVM import."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgebert.frontend import SUPPORTED_ONNX_OPS, load_onnx, to_relax
from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export
from edgebert.isa.errors import CompileError


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Tiny ALBERT from both exporters (dynamo writes its weights to an external .data file)."""
    out = tmp_path_factory.mktemp("exports")
    legacy, _ = build_and_export(out / "legacy.onnx", "tiny", ExportSpec(seq_len=16))
    dynamo, _ = build_and_export(out / "dynamo.onnx", "tiny", ExportSpec(seq_len=13, exporter="dynamo",
                                                                         external_data=True))
    return {"legacy": legacy, "dynamo": dynamo}


def _graph_model(nodes, inputs, outputs, initializers=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_legacy_export_loads_with_static_specs(exports):
    loaded = load_onnx(exports["legacy"])
    assert loaded.seq_len == 16 and loaded.opset == 18
    assert [(t.name, t.shape, t.dtype) for t in loaded.inputs] == [
        ("input_ids", (1, 16), "int64"), ("attention_mask", (1, 16), "int64")]
    assert loaded.output_names == ("logits",)
    assert len(loaded.sha256) == 64 and not loaded.metadata.has_early_exit


def test_dynamo_export_with_external_data_loads_and_hashes_the_data(exports, tmp_path):
    path = exports["dynamo"]
    assert (path.parent / (path.name + ".data")).is_file()
    loaded = load_onnx(path, seq_len=13)
    assert loaded.seq_len == 13
    inits = {t.name: t for t in loaded.model.graph.initializer}
    assert all(t.data_location == TensorProto.DEFAULT for t in inits.values())
    # the digest covers the weights: corrupt one byte of the data file and it changes
    data = (path.parent / (path.name + ".data")).read_bytes()
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(path.read_bytes())
    (tmp_path / (path.name + ".data")).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert load_onnx(copy).sha256 != loaded.sha256


def test_missing_external_data_is_a_compile_error(exports, tmp_path):
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exports["dynamo"].read_bytes())
    with pytest.raises(CompileError, match="external data file"):
        load_onnx(lonely)


@pytest.mark.parametrize("kind", ["legacy", "dynamo"])
def test_both_exporters_import_into_relax(exports, kind):
    mod = to_relax(load_onnx(exports[kind]))
    main = mod["main"]
    assert [p.name for p in main.params] == ["input_ids", "attention_mask"]
    assert [int(d) for d in main.params[0].ty.shape] == [1, 16 if kind == "legacy" else 13]


def test_fixed_sequence_length_cannot_be_changed(exports):
    with pytest.raises(CompileError, match="fixed sequence length 16"):
        load_onnx(exports["legacy"], seq_len=32)


def test_symbolic_dims_are_fixed_before_import():
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", 4])
    table = helper.make_tensor("table", TensorProto.FLOAT, [10, 4], np.arange(40, dtype=np.float32))
    model = _graph_model([helper.make_node("Gather", ["table", "input_ids"], ["out"], name="emb")],
                         [ids], [out], [table])
    with pytest.raises(CompileError, match="give --seq-len"):
        load_onnx(model)
    loaded = load_onnx(model, seq_len=7)
    assert loaded.inputs[0].shape == (1, 7) and loaded.outputs[0].shape == (1, 7, 4)
    main = to_relax(loaded)["main"]
    assert [int(d) for d in main.ret_ty.shape] == [1, 7, 4]


def test_every_unsupported_node_is_listed_before_any_work():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    k = helper.make_tensor("k", TensorProto.INT64, [1], [2])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="fine"),
        helper.make_node("TopK", ["a", "k"], ["b", "idx"], name="pick_top", axis=-1),
        helper.make_node("Tanh", ["b"], ["c"], name="also_fine"),
        helper.make_node("Sin", ["c"], ["y"], name="wave"),
    ]
    model = _graph_model(nodes, [x], [y], [k])
    with pytest.raises(CompileError) as info:
        load_onnx(model)
    message = str(info.value)
    assert "2 unsupported ONNX node(s)" in message
    assert "pick_top (TopK)" in message and "wave (Sin)" in message and "fine" not in message.split(":", 1)[1]
    assert "TopK" not in SUPPORTED_ONNX_OPS and "MatMul" in SUPPORTED_ONNX_OPS


def test_unnamed_nodes_and_foreign_domains_are_reported():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    node = helper.make_node("Relu", ["x"], ["y"], domain="com.example")
    model = _graph_model([node], [x], [y])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(CompileError, match=r"<node #0> \(com.example::Relu\)"):
        load_onnx(model)


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf\xff\xff")
    with pytest.raises(CompileError, match="not a readable ONNX model|invalid ONNX model"):
        load_onnx(bad)
    with pytest.raises(CompileError, match="no such ONNX file"):
        load_onnx(tmp_path / "absent.onnx")


def test_checker_failure_is_one_compile_error():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    model = _graph_model([helper.make_node("Add", ["x", "missing"], ["y"], name="add")], [x], [y])
    with pytest.raises(CompileError, match="invalid ONNX model"):
        load_onnx(model)


def test_metadata_props_are_parsed(exports):
    model = onnx.load(str(exports["legacy"]))
    helper.set_model_props(model, {"edgebert.task": "sst2", "edgebert.entropy_threshold": "0.3",
                                   "edgebert.exit_heads": '["logits"]'})
    loaded = load_onnx(model)
    assert loaded.metadata.task == "sst2" and loaded.metadata.exit_heads == ("logits",)
    assert loaded.metadata.threshold_for(0) == pytest.approx(0.3)


def test_legacy_export_with_external_data_round_trips(tmp_path):
    path, _ = build_and_export(tmp_path / "ext.onnx", "tiny", ExportSpec(seq_len=8, external_data=True),
                               num_hidden_layers=1)
    assert (tmp_path / "ext.onnx.data").stat().st_size > path.stat().st_size
    loaded = load_onnx(path)
    inline, _ = build_and_export(tmp_path / "inline.onnx", "tiny", ExportSpec(seq_len=8), num_hidden_layers=1)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in load_onnx(inline).model.graph.initializer}
    for t in loaded.model.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(t), weights[t.name])


# ---- issue 14, class 7: hostile models ---------------------------------------------------------------------------

def _external_model(tmp_path, location: str, offset: str = "0"):
    """A Relu + Add model whose constant lives in external data at `location` (relative to tmp_path/model)."""
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "w.data").write_bytes(np.ones(4, np.float32).tobytes())
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], np.zeros(4, np.float32))
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    model = _graph_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [x], [y], [w])
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_inside_the_folder_loads(tmp_path):
    loaded = load_onnx(_external_model(tmp_path, "w.data"))
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(loaded.model.graph.initializer[0]), np.ones(4))


@pytest.mark.parametrize("location", ["../secret.data", "/etc/hostname", "sub/../../secret.data", "link.data"])
def test_external_data_outside_the_folder_is_refused_before_reading(tmp_path, monkeypatch, location):
    (tmp_path / "secret.data").write_bytes(b"s" * 16)
    path = _external_model(tmp_path, location)
    (path.parent / "link.data").symlink_to(tmp_path / "secret.data")
    import onnx.external_data_helper as edh

    def never(*args, **kwargs):
        raise AssertionError("onnx was asked to read external data")

    monkeypatch.setattr(edh, "load_external_data_for_model", never)
    with pytest.raises(CompileError, match="outside the model's folder"):
        load_onnx(path)


def test_external_data_past_the_end_of_its_file(tmp_path):
    with pytest.raises(CompileError, match="runs past the end"):
        load_onnx(_external_model(tmp_path, "w.data", offset="8"))
    with pytest.raises(CompileError, match="offset '-1' is not a byte count"):
        load_onnx(_external_model(tmp_path, "w.data", offset="-1"))


@pytest.mark.parametrize("opset", [0, 6, 30, 99])
def test_opsets_outside_the_supported_range_are_refused(opset):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=opset)
    with pytest.raises(CompileError, match=f"opset {opset} is not supported"):
        load_onnx(model)


def test_graphs_without_outputs_or_graph_and_bad_io_are_refused():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    model = _graph_model([helper.make_node("Relu", ["x"], ["y"])], [x], [])
    with pytest.raises(CompileError, match="the graph has no outputs"):
        load_onnx(model)
    empty = onnx.ModelProto()
    empty.opset_import.append(helper.make_opsetid("", 17))
    with pytest.raises(CompileError, match="the model has no graph"):
        load_onnx(empty)
    negative = _graph_model([helper.make_node("Relu", ["x"], ["y"])],
                            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, -2])], [y])
    with pytest.raises(CompileError, match="graph input 'x': dimension 1 is negative"):
        load_onnx(negative)
    strange = _graph_model([helper.make_node("Relu", ["x"], ["y"])],
                           [helper.make_tensor_value_info("x", TensorProto.COMPLEX64, [1, 2])], [y])
    with pytest.raises(CompileError, match="graph input 'x': unsupported element type 14"):
        load_onnx(strange)
