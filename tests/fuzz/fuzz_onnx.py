"""ONNX campaign: mutants of a small embedding + attention-like model (nodes, attributes, initializers, opset, I/O,
external data) through `load_onnx` and `to_relax`. Besides tracebacks, an escape is a model whose external data
points outside its folder and is not refused."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from fuzz_engine import Escape, Tally, drive, guarded
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edgebert.frontend import load_onnx, to_relax

OPS = ["Add", "Mul", "MatMul", "Softmax", "Tanh", "Relu", "Gather", "Reshape", "Transpose", "LayerNormalization",
       "Cast", "Where", "Identity", "Concat", "Slice", "Erf", "TopK", "Loop", "If", "Conv", "Frobnicate"]
OUTSIDE = ["../w.data", "../../etc/hostname", "/etc/hostname", "sub/../../w.data", "link.data", "/dev/zero",
           "..", "w.data\x00x"]


def base_model() -> onnx.ModelProto:
    """ids [1, seq] -> Gather(emb) -> MatMul(w) + b -> Softmax -> LayerNorm -> out [1, seq, 8]."""
    rng = np.random.default_rng(0)
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "seq", 8])
    inits = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
             for name, shape in (("emb", (16, 8)), ("w", (8, 8)), ("b", (8,)), ("g", (8,)), ("beta", (8,)))]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["x"], name="embed", axis=0),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="proj"),
        helper.make_node("Add", ["y", "b"], ["z"], name="bias"),
        helper.make_node("Softmax", ["z"], ["p"], name="attn", axis=-1),
        helper.make_node("LayerNormalization", ["p", "g", "beta"], ["out"], name="norm", axis=-1, epsilon=1e-5),
    ]
    graph = helper.make_graph(nodes, "tiny", [ids], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def mutate_model(data: Any, model: onnx.ModelProto, written_data: list[bytes]) -> tuple[onnx.ModelProto, str | None]:
    """Edit the model in place; returns it and, when external data was pointed somewhere, the location used
    (`written_data` receives the bytes the folder's w.data must hold)."""
    g = model.graph
    location = None
    for _ in range(data.draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        op = data.draw(st.sampled_from(["opset", "outputs", "graph", "op_type", "input_name", "attr", "init_dims",
                                        "init_type", "init_raw", "io_type", "io_dims", "drop_node", "external",
                                        "domain", "dup_output"]))
        node = data.draw(st.sampled_from(list(g.node))) if len(g.node) else None
        if op == "opset":
            model.opset_import[0].version = data.draw(st.sampled_from([0, 1, 6, 7, 13, 17, 21, 28, 29, 30, 99,
                                                                        2**31 - 1, -5]))
        elif op == "outputs":
            del g.output[:]
        elif op == "graph":
            model.ClearField("graph")
            return model, None
        elif op == "op_type" and node is not None:
            node.op_type = data.draw(st.sampled_from(OPS))
        elif op == "input_name" and node is not None and node.input:
            node.input[data.draw(st.integers(0, len(node.input) - 1))] = data.draw(st.sampled_from(["", "nope", "x",
                                                                                                     "input_ids"]))
        elif op == "attr" and node is not None:
            name = data.draw(st.sampled_from(["axis", "epsilon", "perm", "to", "foo"]))
            value = data.draw(st.sampled_from([0, -1, 1, 5, 99, -99, 2**40, 1.5, float("nan"), [0, 0], [1, 0, 2], "s"]))
            del node.attribute[:]
            node.attribute.append(helper.make_attribute(name, value))
        elif op.startswith("init") and g.initializer:
            t = data.draw(st.sampled_from(list(g.initializer)))
            if op == "init_dims":
                t.dims[:] = data.draw(st.lists(st.sampled_from([0, 1, 3, 8, 16, -1, 2**31]), max_size=3))
            elif op == "init_type":
                t.data_type = data.draw(st.sampled_from([0, 2, 6, 7, 9, 10, 11, 16, 99]))
            else:
                t.raw_data = t.raw_data[: data.draw(st.integers(0, len(t.raw_data)))]
        elif op in ("io_type", "io_dims"):
            v = data.draw(st.sampled_from(list(g.input) + list(g.output))) if len(g.input) + len(g.output) else None
            if v is None:
                continue
            if op == "io_type":
                v.type.tensor_type.elem_type = data.draw(st.sampled_from([0, 1, 2, 6, 7, 9, 11, 16, 99]))
            else:
                dims = v.type.tensor_type.shape.dim
                if dims:
                    dims[data.draw(st.integers(0, len(dims) - 1))].dim_value = data.draw(st.sampled_from(
                        [0, 1, 2, 8, -1, -8, 2**40]))
        elif op == "drop_node" and node is not None:
            g.node.remove(node)
        elif op == "domain" and node is not None:
            node.domain = data.draw(st.sampled_from(["com.microsoft", "ai.onnx", "x"]))
        elif op == "dup_output" and node is not None and node.output:
            node.output[0] = data.draw(st.sampled_from(["out", "x", "input_ids", "emb"]))
        elif op == "external" and g.initializer:
            t = data.draw(st.sampled_from(list(g.initializer)))
            if t.data_location == TensorProto.EXTERNAL:
                continue
            location = data.draw(st.sampled_from([*OUTSIDE, "w.data", "w.data"]))
            raw = t.raw_data
            t.ClearField("raw_data")
            t.ClearField("float_data")
            t.data_location = TensorProto.EXTERNAL
            del t.external_data[:]
            (folder_data := bytearray(4096))[: len(raw)] = raw  # w.data holds the tensor at offset 0
            written_data.append(bytes(folder_data))
            for key, value in (("location", location),
                               ("offset", data.draw(st.sampled_from(["0", "0", "0", "4", "-1", "x", "99999999"]))),
                               ("length", str(len(raw)) if data.draw(st.integers(0, 3)) else "1000000")):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
    return model, location


def _outside(folder: Path, location: str) -> bool:
    if location.startswith("/") or ".." in Path(location).parts or "\x00" in location:
        return True
    target = (folder / location).resolve()
    return not target.is_relative_to(folder.resolve())


def campaign_onnx(count: int, seed: int = 0, deadline: float | None = None) -> Tally:
    """Mutated ONNX models (saved to disk, some with external data) through load_onnx and to_relax."""
    base = base_model().SerializeToString()
    root = Path(tempfile.mkdtemp(prefix="edgebert-fuzz-onnx-"))
    (root / "secret.data").write_bytes(bytes(4096))  # what a `../` location would read
    tally = Tally("onnx")

    def body(data: Any) -> None:
        model = onnx.ModelProto()
        model.ParseFromString(base)
        written: list[bytes] = []
        model, location = mutate_model(data, model, written)
        folder = Path(tempfile.mkdtemp(dir=root))
        (folder / "w.data").write_bytes(written[-1] if written else bytes(4096))
        (folder / "sub").mkdir()
        os.symlink(root / "secret.data", folder / "link.data")
        path = folder / "m.onnx"
        raw = model.SerializeToString()
        if data.draw(st.integers(0, 9)) == 0:
            raw = raw[: data.draw(st.integers(0, len(raw)))]
        path.write_bytes(raw)
        seq_len = data.draw(st.sampled_from([8, 8, 8, 8, 8, 3, None, 0, -1]))

        def target() -> None:
            loaded = load_onnx(path, seq_len=seq_len)  # a CompileError is the clean refusal
            if location is not None and _outside(folder, location):
                raise Escape("unsafe", f"external data {location!r} outside the model folder was read")
            to_relax(loaded)

        guarded(tally, raw, ".onnx", target)

    return drive(tally, body, count, seed, deadline, chunk=50)
