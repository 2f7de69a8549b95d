"""A tiny training run: the loss falls, easy sentences are confident at exit 1, hard ones need later exits;
pruning fine-tune, AF8 calibration and the train_compressed example end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgebert.frontend.models.compressed_albert import (
    CompressedAlbert,
    CompressionConfig,
    albert_config,
    load_compressed,
)
from edgebert.frontend.models.compressed_export import read_edgebert_metadata
from edgebert.frontend.models.compressed_training import (
    TrainSettings,
    calibrate_activations,
    evaluate_exits,
    record_entropies,
    train,
)
from edgebert.frontend.models.pruning import Pruner
from edgebert.frontend.models.synthetic_tasks import DIFFICULTIES, TASKS, VOCAB, make_dataset
from edgebert.frontend.predictor import build_lookup_table
from edgebert.isa.traces import read_entropy_array, read_lookup_table

SEQ = 16
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_compressed.py"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Deterministic, and faster than 2 threads on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread):
    torch.manual_seed(0)
    config = albert_config(len(VOCAB), hidden=32, layers=3, heads=2, intermediate=64, max_positions=SEQ)
    model = CompressedAlbert(config, CompressionConfig(entropy_threshold=0.3))
    model.reset_parameters(seed=0)
    data = make_dataset("sentiment", 2000, SEQ, seed=0)
    losses = train(model, data, TrainSettings(epochs=10, batch_size=32, lr=3e-3, seed=0))
    return model, losses, make_dataset("sentiment", 600, SEQ, seed=1)


def test_tasks_are_deterministic_and_balanced():
    for name, spec in TASKS.items():
        a, b = make_dataset(name, 300, SEQ, seed=4), make_dataset(name, 300, SEQ, seed=4)
        np.testing.assert_array_equal(a.input_ids, b.input_ids)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert not np.array_equal(a.input_ids, make_dataset(name, 300, SEQ, seed=5).input_ids)
        counts = np.bincount(a.labels, minlength=spec.num_labels)
        assert counts.min() > 300 / spec.num_labels / 2
        assert set(a.difficulty) == set(DIFFICULTIES)
        assert np.all(a.input_ids[:, 0] == 1) and np.all(a.attention_mask.sum(1) <= SEQ)


def test_loss_falls(trained):
    _, losses, _ = trained
    assert losses[-1] < 0.7 * losses[0]


def test_exits_differ_in_confidence(trained):
    model, _, data = trained
    report = evaluate_exits(model, data)
    easy, hard = report.by_difficulty["easy"], report.by_difficulty["hard"]
    # easy sentences: decided by the first exit, confidently
    assert easy["accuracy"][0] > 0.95
    assert easy["mean_entropy"][0] < hard["mean_entropy"][0] - 0.2
    # hard sentences (negations, margin 1): the last exit is clearly more accurate than the first
    assert hard["accuracy"][-1] > hard["accuracy"][0] + 0.15
    assert report.accuracy[-1] > report.accuracy[0]
    assert 1.0 <= report.mean_exit_layer <= 3.0


def test_entropy_trace_and_lookup_from_model(trained, tmp_path):
    model, _, data = trained
    ent = record_entropies(model, data)
    assert ent.shape == (len(data), 3) and np.all(ent >= -1e-6) and np.all(ent <= np.log(2) + 1e-6)
    table = build_lookup_table(ent)
    assert table.shape == (100, 2)
    assert np.all(np.isfinite(table))


def test_pruning_fine_tune_and_af8_activations(trained):
    model, _, data = trained
    import copy

    model = copy.deepcopy(model)
    pruner = Pruner(model, "movement", {"encoder": 0.5, "embedding": 0.5})
    train(model, make_dataset("sentiment", 320, SEQ, seed=2), TrainSettings(epochs=1, batch_size=32, lr=1e-3), pruner)
    report = model.sparsity_report()
    assert abs(report["encoder"]["achieved"] - 0.5) < 1e-3 and abs(report["embedding"]["achieved"] - 0.5) < 0.01
    model.compression.quantize_weights = True
    biases = calibrate_activations(model, data.subset(np.arange(200)))
    assert "layer1.qkv_in" in biases and "exit3.classifier_in" in biases and all(0 <= b <= 7 for b in biases.values())
    assert evaluate_exits(model, data).accuracy[-1] > 0.6


def test_train_compressed_example_end_to_end(tmp_path):
    spec = importlib.util.spec_from_file_location("train_compressed", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    argv = [
        "--task",
        "topic",
        "--layers",
        "2",
        "--hidden",
        "16",
        "--heads",
        "2",
        "--seq-len",
        "12",
        "--train-size",
        "128",
        "--eval-size",
        "64",
        "--epochs",
        "1",
        "--span",
        "--ramp",
        "2",
        "--prune",
        "magnitude",
        "--prune-epochs",
        "1",
        "--af8",
        "--qat-epochs",
        "1",
        "--threads",
        "1",
        "-o",
        str(out / "m.pt"),
        "--onnx",
        str(out / "m.onnx"),
        "--entropy-trace",
        str(out / "e.txt"),
        "--lookup-table",
        str(out / "l.csv"),
    ]
    assert module.main(argv) == 0
    model = load_compressed(str(out / "m.pt"))
    meta = read_edgebert_metadata(out / "m.onnx")
    assert meta["edgebert.task"]["name"] == "topic" and meta["edgebert.task"]["num_labels"] == 3
    assert meta["edgebert.quantization"]["format"] == "af8"
    assert read_entropy_array(out / "e.txt").shape == (64, 2)
    assert read_lookup_table(out / "l.csv").shape == (100, 1)
    data = make_dataset("topic", 1, 12, seed=2000)
    session = ort.InferenceSession(str(out / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": data.input_ids, "attention_mask": data.attention_mask})
    with torch.no_grad():
        ref = model(torch.from_numpy(data.input_ids), torch.from_numpy(data.attention_mask)).exit_logits
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)


def test_span_penalty_shrinks_spans(trained):
    import copy

    model = copy.deepcopy(trained[0])
    model.compression.span_enabled = True
    model.span.max_span, model.span.ramp = SEQ, 2
    model.span.set_spans(torch.full_like(model.span.z, float(SEQ)))
    model.span.z.requires_grad_(True)
    train(
        model,
        make_dataset("sentiment", 320, SEQ, seed=3),
        TrainSettings(epochs=2, batch_size=32, lr=2e-2, span_penalty=5.0),
    )
    assert float(model.span.spans().detach().mean()) < SEQ - 1.0
    spans = model.span.freeze()
    assert spans.dtype == np.int64 and spans.min() >= 1 and spans.max() <= SEQ
