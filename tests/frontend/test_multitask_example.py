"""examples/train_multitask.py end to end on a tiny configuration."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest

from edgebert.frontend.models.compressed_export import read_edgebert_metadata
from edgebert.frontend.models.multitask_albert import load_multitask

TINY = (
    "--layers 2 --hidden 16 --heads 2 --seq-len 12 --train-size 64 --eval-size 32 --pretrain-epochs 1 "
    "--adapter-epochs 1 --prune magnitude --prune-epochs 1 --af8 --af8-activations --af8-attention --qat-epochs 1 --threads 1 "
    "--pretrain-tasks sentiment"
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_multitask.py"


def test_train_multitask_example(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_multitask", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = shlex.split(TINY)
    rc = module.main([*args, "-o", str(tmp_path / "mt.pt"), "--onnx-dir", str(tmp_path / "onnx")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "[valence]" in out and "[bytes]" in out and "fp32 activations (before AF8 activations)" in out
    model = load_multitask(str(tmp_path / "mt.pt"))
    assert model.task_names == ["sentiment", "topic", "valence"]
    for task in model.task_names:
        meta = read_edgebert_metadata(tmp_path / "onnx" / f"{task}.onnx")
        assert meta["edgebert.task"]["name"] == task
        assert meta["edgebert.quantization"]["format"] == "af8"
        acts = meta["edgebert.quantization"]["activations"]
        assert acts["enabled"] and acts["exp_bias"] == model.backbone.activation_quant.biases
        assert "layer2.attn_probs_in" in acts["exp_bias"]
        assert meta["edgebert.sparsity"]["groups"]["encoder"]["achieved"] == 0.5


def test_af8_activations_need_af8_weights(capsys):
    spec = importlib.util.spec_from_file_location("train_multitask", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exc:
        module.main(["--af8-activations"])
    assert exc.value.code == 2
    assert "--af8-activations needs --af8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        module.main(["--af8", "--af8-attention"])
    assert exc.value.code == 2
    assert "--af8-attention needs --af8 --af8-activations" in capsys.readouterr().err
