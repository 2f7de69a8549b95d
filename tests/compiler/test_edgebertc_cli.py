"""edgebertc end to end: determinism, -S round trip through edgebert-as, --dump-ir, -v, and clean errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgebert.compiler.cli import main as edgebertc
from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export
from edgebert.isa.asm_cli import main as edgebert_as


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    spec = ExportSpec(seq_len=8, outputs=("logits", "last_hidden_state"))
    path, _ = build_and_export(d / "tiny.onnx", preset="tiny", spec=spec, seed=3)
    return path


def test_same_model_same_flags_byte_identical(tiny_model, tmp_path):
    a, b = tmp_path / "a.ebin", tmp_path / "b.ebin"
    assert edgebertc([str(tiny_model), "-o", str(a)]) == 0
    assert edgebertc([str(tiny_model), "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_assembly_round_trips_through_edgebert_as(tiny_model, tmp_path):
    binary, asm, again = tmp_path / "p.ebin", tmp_path / "p.s", tmp_path / "again.ebin"
    assert edgebertc([str(tiny_model), "-o", str(binary)]) == 0
    assert edgebertc([str(tiny_model), "-S", "-o", str(asm)]) == 0
    text = asm.read_text()
    assert re.search(r"^\s*blt r1, r2, ", text, re.M), "the layer loop's back edge"
    assert edgebert_as([str(asm), "-o", str(again)]) == 0
    assert again.read_bytes() == binary.read_bytes()


def test_dump_ir_and_verbose_timings(tiny_model, tmp_path, capsys):
    dump = tmp_path / "ir"
    assert edgebertc([str(tiny_model), "-o", str(tmp_path / "p.ebin"), "--dump-ir", str(dump), "-v"]) == 0
    names = sorted(p.name for p in dump.iterdir())
    assert names[0].startswith("00-") and any("lowered" in n for n in names) and any("scheduled" in n for n in names)
    assert len(names) >= 5
    err = capsys.readouterr().err
    for stage in ("load", "import", "lower", "plan-memory", "schedule", "emit", "total"):
        assert re.search(rf"^{re.escape(stage)}\s+[\d.]+ ms$", err, re.M), stage


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("edgebertc: error: ") and "\n" not in err, err
    return err


def test_missing_file_is_one_line_error(tmp_path, capsys):
    err = _one_line_error(capsys, edgebertc([str(tmp_path / "nope.onnx")]))
    assert "nope.onnx" in err


def test_unsupported_op_is_one_line_error(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Cos", ["x"], ["y"], name="the_cos")], "g", [x], [y])
    path = tmp_path / "cos.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    err = _one_line_error(capsys, edgebertc([str(path), "-o", str(tmp_path / "c.ebin")]))
    assert "the_cos" in err and "Cos" in err


def test_sram_too_small_names_the_op_and_a_size(tiny_model, tmp_path, capsys):
    from edgebert.isa.hardware import bundled_config_text

    text = bundled_config_text("ideal-256mac")
    small = re.sub(r"(\[memory\.sram\]\s*\nsize_bytes = )\d+", r"\g<1>2048", text)
    hw = tmp_path / "small.toml"
    hw.write_text(small)
    err = _one_line_error(capsys, edgebertc([str(tiny_model), "--hw", str(hw), "-o", str(tmp_path / "x.ebin")]))
    assert "SRAM too small: op '" in err and "memory.sram.size_bytes is 2048" in err, err
    assert re.search(r"needs \d+ bytes for its smallest block \(.+\).*memory\.sram\.size_bytes = \d+\)", err), err


def test_wrong_seq_len_is_rejected(tiny_model, tmp_path, capsys):
    err = _one_line_error(capsys, edgebertc([str(tiny_model), "--seq-len", "9", "-o", str(tmp_path / "x.ebin")]))
    assert "sequence length" in err


def test_program_metadata(tiny_model):
    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.isa.hardware import default_config

    prog = compile_onnx(tiny_model).program
    meta = prog.metadata
    assert [i["name"] for i in meta["inputs"]] == ["input_ids", "attention_mask"]
    assert meta["inputs"][0]["shape"] == [1, 8] and meta["inputs"][0]["dtype"] == "int64"
    assert [o["name"] for o in meta["outputs"]] == ["logits", "last_hidden_state"]
    assert all(o["space"] == "dram" and o["dtype"] == "float32" for o in meta["outputs"])
    assert len(meta["source_model_sha256"]) == 64 and meta["compiler"].startswith("edgebertc")
    assert meta["hw_name"] == default_config().name and prog.hw_fingerprint == default_config().fingerprint
    assert np.all([s.space in ("envm", "dram") for s in prog.segments])


def test_refuses_to_overwrite_its_input(tiny_model, tmp_path, capsys):
    """`edgebertc m.onnx -o m.onnx` must not destroy the model (checked before any work)."""
    before = Path(tiny_model).read_bytes()
    assert edgebertc([str(tiny_model), "-o", str(tiny_model)]) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err
    assert Path(tiny_model).read_bytes() == before
