"""EdgeBERT metadata_props parsing: the compressed exporter's schema, the flat form, and clear errors."""

from __future__ import annotations

import json

import pytest

from edgebert.frontend.metadata import EdgebertMetadata, parse_metadata
from edgebert.isa.errors import CompileError


def _props(**fields) -> dict[str, str]:
    return {f"edgebert.{k}": json.dumps(v) for k, v in fields.items()}


def test_no_metadata_gives_empty_defaults():
    meta = parse_metadata({"producer": "x"})
    assert meta == EdgebertMetadata(raw={"producer": "x"})
    assert not meta.has_early_exit and meta.task is None and meta.quantization_format == "none"


def test_compressed_exporter_schema():
    props = _props(
        version=1,
        task={"name": "topic", "num_labels": 3, "label_names": ["a", "b", "c"]},
        model={"num_layers": 2, "hidden_size": 32},
        exit_heads={"count": 2, "layers": [1, 2], "outputs": ["exit_1_logits", "exit_2_logits"],
                    "entropy": "natural_log"},
        entropy_threshold=0.4,
        attention_spans={"enabled": True, "ramp": 3, "max_span": 16, "spans": [[4, 16], [8, 2]]},
        sparsity={"method": "movement", "groups": {}},
        quantization={"format": "af8", "exp_bits": 3},
        future_field={"anything": 1},
    )
    meta = parse_metadata(props, output_names=("exit_1_logits", "exit_2_logits"))
    assert meta.version == 1 and meta.tasks == ("topic",) and meta.task_info["num_labels"] == 3
    assert meta.exit_heads == ("exit_1_logits", "exit_2_logits") and meta.exit_layers == (1, 2)
    assert meta.exit_info["entropy"] == "natural_log"
    assert meta.entropy_thresholds == (0.4,) and meta.threshold_for(1) == 0.4
    assert meta.attention_spans == ([4, 16], [8, 2]) and meta.span_ramp == 3.0
    assert meta.sparsity == {"method": "movement", "groups": {}}
    assert meta.quantization_format == "af8" and meta.model_info["hidden_size"] == 32
    assert meta.extra == {"future_field": {"anything": 1}}


def test_flat_and_blob_forms():
    flat = parse_metadata({"edgebert.task": "sst2", "edgebert.exit_heads": '["e1", "e2"]',
                           "edgebert.exit_layers": "[1, 2]", "edgebert.entropy_threshold": "[0.1, 0.2]",
                           "edgebert.attention_spans": "[5, 6]", "edgebert.span_ramp": "2",
                           "edgebert.sparsity": "0.5", "edgebert.latency_target_ms": "50"})
    assert flat.task == "sst2" and flat.threshold_for(1) == 0.2 and flat.sparsity == 0.5
    assert flat.attention_spans == (5, 6) and flat.span_ramp == 2.0 and flat.latency_target_ms == 50.0
    blob = parse_metadata({"edgebert": json.dumps({"tasks": ["a", "b"], "entropy_threshold": 0.3})})
    assert blob.tasks == ("a", "b") and blob.entropy_thresholds == (0.3,)


def test_disabled_spans_give_no_spans():
    meta = parse_metadata(_props(attention_spans={"enabled": False, "ramp": 3, "spans": None}))
    assert meta.attention_spans == () and meta.span_ramp == 3.0 and meta.span_info["enabled"] is False


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"edgebert.exit_heads": "[1, 2"}, "not valid JSON"),
        (_props(exit_heads=["a"], entropy_threshold="low"), "finite number"),
        (_props(exit_heads=["a", "b"], entropy_threshold=[0.1, 0.2, 0.3]), "3 entropy thresholds for 2"),
        (_props(exit_heads=["nope"]), "not graph outputs"),
        (_props(exit_heads={"outputs": ["out"], "layers": [1, 2]}), "2 exit layers for 1"),
        (_props(quantization={"format": "int4"}), "not 'af8' or 'none'"),
        (_props(quantization=[1]), "must be a JSON object"),
        (_props(version="one"), "must hold integers"),
        ({"edgebert": "[1]"}, "must be a JSON object"),
    ],
)
def test_bad_metadata_is_one_clear_error(props, message):
    with pytest.raises(CompileError, match=message):
        parse_metadata(props, output_names=("out", "a", "b"))


def test_threshold_for_without_thresholds():
    with pytest.raises(CompileError, match="no entropy_threshold"):
        parse_metadata(_props(exit_heads=["out"])).threshold_for(0)
