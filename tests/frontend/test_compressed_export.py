"""ONNX export of the compressed model checked against onnxruntime: every exit output, entropies, exit layers,
baked-in compression (zeros, AF8 values, span masks) and the edgebert.* metadata_props."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from edgebert.frontend.models.attention_span import span_mask
from edgebert.frontend.models.compressed_albert import (
    CompressedAlbert,
    CompressionConfig,
    albert_config,
    early_exit_layer,
    exit_entropy,
    exit_entropy_np,
)
from edgebert.frontend.models.compressed_export import exit_output_names, export_onnx, read_edgebert_metadata
from edgebert.frontend.models.pruning import Pruner
from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset
from edgebert.isa import adaptivfloat

SEQ = 16
LAYERS = 3


def _randomised(model: CompressedAlbert, seed: int) -> CompressedAlbert:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "span.z":
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if "LayerNorm" in name else 0.0))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random model with every compression on (span, pruning, AF8), its ONNX file and an ORT session."""
    task = TASKS["topic"]
    config = albert_config(len(VOCAB), hidden=32, layers=LAYERS, heads=4, intermediate=48, max_positions=SEQ)
    comp = CompressionConfig(
        task=task.name,
        num_labels=task.num_labels,
        label_names=list(task.label_names),
        entropy_threshold=0.4,
        span_enabled=True,
        max_span=SEQ,
        span_ramp=3,
        quantize_weights=True,
    )
    model = _randomised(CompressedAlbert(config, comp), seed=5)
    with torch.no_grad():
        model.span.set_spans(torch.tensor([[1.0, 4.0, 7.0, 16.0], [2.0, 2.0, 9.0, 5.0], [0.0, 12.0, 3.0, 6.0]]))
    Pruner(model, "movement", {"encoder": 0.5, "embedding": 0.6}).apply()  # zero scores: still exact counts
    Pruner(model, "magnitude", {"encoder": 0.5, "embedding": 0.6}).apply()
    model.span.freeze()
    model.freeze_weight_biases()
    path = tmp_path_factory.mktemp("onnx") / "compressed.onnx"
    proto = export_onnx(model, path, SEQ)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    data = make_dataset("topic", 6, SEQ, seed=9)
    return model, proto, session, data


def _run_both(exported):
    model, _, session, data = exported
    ort_logits, torch_logits = [], []
    for k in range(len(data)):
        ids, mask = data.input_ids[k : k + 1], data.attention_mask[k : k + 1]
        ort_logits.append(session.run(None, {"input_ids": ids, "attention_mask": mask}))
        with torch.no_grad():
            out = model(torch.from_numpy(ids), torch.from_numpy(mask))
        torch_logits.append([t.numpy() for t in out.exit_logits])
    # -> [L, n, labels]
    return (np.concatenate(ort_logits, axis=1), np.concatenate(torch_logits, axis=1))


def test_outputs_are_every_exit(exported):
    _, proto, session, _ = exported
    assert [o.name for o in session.get_outputs()] == exit_output_names(LAYERS)
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in proto.graph.output] == ["exit_1_logits", "exit_2_logits", "exit_3_logits"]


def test_onnx_matches_torch_on_every_exit(exported):
    ort_logits, torch_logits = _run_both(exported)
    assert ort_logits.shape == (LAYERS, 6, 3)
    np.testing.assert_allclose(ort_logits, torch_logits, atol=1e-5, rtol=0)


def test_entropies_and_exit_layers_agree(exported):
    model, _, _, data = exported
    ort_logits, _ = _run_both(exported)
    with torch.no_grad():
        out = model(torch.from_numpy(data.input_ids), torch.from_numpy(data.attention_mask))
    torch_ent = torch.stack([exit_entropy(lg) for lg in out.exit_logits]).numpy()
    ort_ent = exit_entropy_np(ort_logits)
    np.testing.assert_allclose(ort_ent, torch_ent, atol=1e-5)
    thr = model.compression.entropy_threshold
    _, torch_layers, _ = model.predict_early_exit(
        torch.from_numpy(data.input_ids), torch.from_numpy(data.attention_mask)
    )
    np.testing.assert_array_equal(early_exit_layer(ort_ent, thr), torch_layers)


def test_metadata_props_parse(exported):
    model, proto, _, _ = exported
    meta = read_edgebert_metadata(proto)
    for key in (
        "edgebert.version",
        "edgebert.task",
        "edgebert.model",
        "edgebert.exit_heads",
        "edgebert.entropy_threshold",
        "edgebert.attention_spans",
        "edgebert.sparsity",
        "edgebert.quantization",
    ):
        assert key in meta, key
    assert meta["edgebert.task"] == {"name": "topic", "num_labels": 3, "label_names": ["sports", "science", "food"]}
    assert meta["edgebert.entropy_threshold"] == pytest.approx(0.4)
    assert meta["edgebert.exit_heads"]["outputs"] == exit_output_names(LAYERS)
    spans = meta["edgebert.attention_spans"]
    assert spans["enabled"] and spans["ramp"] == 3 and spans["max_span"] == SEQ
    assert spans["spans"] == [[1, 4, 7, 16], [2, 2, 9, 5], [1, 12, 3, 6]]  # 0 is frozen to 1 (ISA: 0 = no span)
    assert spans["full"][0] == [False, False, False, True] and spans["full"][1][2] is False
    sp = meta["edgebert.sparsity"]
    assert sp["method"] == "magnitude"
    assert sp["groups"]["encoder"]["target"] == 0.5 and abs(sp["groups"]["encoder"]["achieved"] - 0.5) < 1e-3
    assert abs(sp["groups"]["embedding"]["achieved"] - 0.6) < 1e-2
    q = meta["edgebert.quantization"]
    assert q["format"] == "af8" and (q["exp_bits"], q["mant_bits"], q["exp_offset"]) == (3, 4, -10)
    assert {n: w["exp_bias"] for n, w in q["weights"].items()} == model.weight_biases()


def test_initializers_are_zeroed_and_af8(exported):
    model, proto, _, _ = exported
    meta = read_edgebert_metadata(proto)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    quant = meta["edgebert.quantization"]["weights"]
    tensors = meta["edgebert.sparsity"]["tensors"]
    assert all(quant[n]["initializer"] in inits for n in quant)
    for name, entry in quant.items():
        arr = inits[entry["initializer"]]
        bias = entry["exp_bias"]
        np.testing.assert_array_equal(adaptivfloat.decode(adaptivfloat.encode(arr, bias), bias), arr)
        if name in tensors:
            assert np.mean(arr == 0) >= tensors[name]["sparsity"] - 1e-9
            assert np.mean(arr == 0) == pytest.approx(tensors[name]["zero_fraction"])
            mask = model.prune_masks[name].numpy()
            assert np.all((arr.T if entry["transposed"] else arr)[mask == 0] == 0)


def test_span_masks_in_graph(exported):
    model, proto, _, _ = exported
    meta = read_edgebert_metadata(proto)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    names = meta["edgebert.attention_spans"]["mask_initializers"]
    expected = span_mask(torch.tensor(meta["edgebert.attention_spans"]["spans"], dtype=torch.float32), SEQ, 3)
    for layer, name in enumerate(names):
        np.testing.assert_array_equal(inits[name], expected[layer].numpy())
    onnx.checker.check_model(proto)


def test_uncompressed_export_matches(tmp_path):
    config = albert_config(len(VOCAB), hidden=32, layers=2, heads=2, max_positions=SEQ)
    model = _randomised(CompressedAlbert(config, CompressionConfig()), seed=6)
    proto = export_onnx(model, tmp_path / "plain.onnx", SEQ, batch_size=2, dynamic_batch=True)
    data = make_dataset("sentiment", 5, SEQ, seed=3)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": data.input_ids, "attention_mask": data.attention_mask})
    with torch.no_grad():
        out = model(torch.from_numpy(data.input_ids), torch.from_numpy(data.attention_mask))
    for a, b in zip(got, out.exit_logits, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)
    meta = read_edgebert_metadata(proto)
    assert meta["edgebert.quantization"]["format"] == "none" and meta["edgebert.sparsity"]["method"] == "none"
    assert meta["edgebert.attention_spans"]["enabled"] is False
