"""examples/build_albert.py and edgebert.frontend.models.hf_albert_export: configs, re-randomised weights, ONNX vs torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from edgebert.frontend.models.hf_albert_export import (
    PRESETS,
    ExportSpec,
    albert_config,
    build_albert,
    export_onnx,
    make_inputs,
)
from edgebert.isa.errors import CompileError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "build_albert.py"


def _example_main():
    spec = importlib.util.spec_from_file_location("build_albert_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("albert")
    rc = _example_main()(["--preset", "tiny", "--seq-len", "13", "--pad", "3", "-o", str(out / "albert.onnx"),
                          "--inputs", str(out / "in.npz"), "--outputs", "logits,last_hidden_state"])
    assert rc == 0
    return out


def test_cli_writes_model_and_matching_inputs(cli_export):
    model = onnx.load(str(cli_export / "albert.onnx"))
    inputs = dict(np.load(cli_export / "in.npz"))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["logits", "last_hidden_state"]
    for value in model.graph.input:
        assert [d.dim_value for d in value.type.tensor_type.shape.dim] == [1, 13]
    assert inputs["input_ids"].dtype == np.int64 and inputs["input_ids"].shape == (1, 13)
    assert inputs["attention_mask"].tolist() == [[1] * 10 + [0] * 3]
    assert inputs["input_ids"].max() < PRESETS["tiny"]["vocab_size"]
    logits, hidden = ort.InferenceSession(str(cli_export / "albert.onnx")).run(None, inputs)
    assert logits.shape == (1, 2) and hidden.shape == (1, 13, 64)


def test_every_parameter_is_rerandomised_and_none_merged():
    model = build_albert(albert_config("tiny"), seed=3)
    for name, p in model.named_parameters():
        values = p.detach().numpy()
        assert np.unique(values).size > 1, f"{name} is constant"
        if "LayerNorm" in name and name.endswith("weight"):
            assert not np.allclose(values, 1.0)
        if name.endswith("bias"):
            assert not np.allclose(values, 0.0)


def test_export_matches_torch_and_keeps_initializers_distinct(tmp_path):
    cfg = albert_config("tiny", num_hidden_layers=2)
    model = build_albert(cfg, seed=1)
    path = export_onnx(model, tmp_path / "m.onnx", ExportSpec(seq_len=9, outputs=("logits", "pooler_output")))
    inputs = make_inputs(9, cfg.vocab_size, pad=2, seed=4)
    logits, pooled = ort.InferenceSession(str(path)).run(None, inputs)
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(inputs["input_ids"]),
                    attention_mask=torch.from_numpy(inputs["attention_mask"]))
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=1e-5)
    assert pooled.shape == (1, cfg.hidden_size)
    arrays = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    big = [a.tobytes() for a in arrays if a.size > 1]
    assert len(big) == len(set(big)), "two initializers hold identical data"


def test_token_type_ids_input_and_base_head(tmp_path):
    cfg = albert_config("tiny", num_hidden_layers=1)
    model = build_albert(cfg, head="base")
    path = export_onnx(model, tmp_path / "b.onnx",
                       ExportSpec(seq_len=8, outputs=("last_hidden_state",), token_type_ids=True))
    names = [i.name for i in onnx.load(str(path)).graph.input]
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    inputs = make_inputs(8, cfg.vocab_size, token_type_ids=True)
    (hidden,) = ort.InferenceSession(str(path)).run(None, inputs)
    assert hidden.shape == (1, 8, 64)


def test_albert_base_preset_shape():
    cfg = albert_config("albert-base")
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.embedding_size,
            cfg.num_hidden_layers, cfg.vocab_size) == (768, 12, 3072, 128, 12, 30000)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: albert_config("huge"), "unknown ALBERT preset"),
        (lambda: albert_config("tiny", num_attention_heads=5), "not a multiple"),
        (lambda: make_inputs(4, 10, pad=4), "pad 4"),
    ],
)
def test_bad_requests_raise_compile_error(call, message):
    with pytest.raises(CompileError, match=message):
        call()


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    rc = _example_main()(["--preset", "tiny", "--seq-len", "999", "-o", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("build_albert: error: seq_len 999") and "Traceback" not in err
