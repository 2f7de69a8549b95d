"""CompressedAlbert against independent references: transformers' AlbertModel, numpy span mask and entropy,
the AdaptivFloat reference quantizer, and pruning sparsity targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AlbertModel

from edgebert.frontend.models.af8_fake_quant import AF8FakeQuant, af8_fake_quant
from edgebert.frontend.models.attention_span import masked_softmax, span_mask
from edgebert.frontend.models.compressed_albert import (
    CompressedAlbert,
    CompressionConfig,
    albert_config,
    early_exit_layer,
    exit_entropy,
    exit_entropy_np,
    load_compressed,
    save_compressed,
)
from edgebert.frontend.models.pruning import Pruner, cubic_schedule, topk_mask
from edgebert.frontend.models.synthetic_tasks import VOCAB
from edgebert.isa import adaptivfloat

SEQ = 16


def _randomised(model: CompressedAlbert, seed: int = 0, std: float = 0.2) -> CompressedAlbert:
    """Every parameter random (biases and LayerNorms too: the default init would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "span.z":
                p.copy_(torch.randn(p.shape, generator=gen) * std + (1.0 if "LayerNorm" in name else 0.0))
    return model.eval()


def _inputs(batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, len(VOCAB), (batch, SEQ), generator=gen)
    mask = torch.ones(batch, SEQ, dtype=torch.long)
    mask[1, 11:] = 0
    mask[2, 6:] = 0
    ids[mask == 0] = 0
    return ids, mask


@pytest.fixture(scope="module")
def config():
    return albert_config(len(VOCAB), hidden=32, layers=3, heads=4, intermediate=48, embedding=24, max_positions=SEQ)


def test_uncompressed_equals_transformers_albert(config):
    model = _randomised(CompressedAlbert(config, CompressionConfig()))
    ref = AlbertModel(config, add_pooling_layer=False).eval()
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("embeddings.", "encoder."))}
    ref.load_state_dict(state, strict=True)
    ids, mask = _inputs()
    with torch.no_grad():
        out = model(ids, mask)
        expected = ref(ids, attention_mask=mask, output_hidden_states=True)
    assert len(out.hidden_states) == config.num_hidden_layers
    for mine, theirs in zip(out.hidden_states, expected.hidden_states[1:], strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.last_hidden_state.numpy(), expected.last_hidden_state.numpy(), atol=1e-5)
    assert len(out.exit_logits) == 3 and out.exit_logits[0].shape == (3, 2)


def _numpy_span_mask(z: float, seq: int, ramp: int) -> np.ndarray:
    m = np.zeros((seq, seq))
    for i in range(seq):
        for j in range(seq):
            m[i, j] = (abs(i - j) <= z) if ramp == 0 else min(max((ramp + z - abs(i - j)) / ramp, 0.0), 1.0)
    return m


@pytest.mark.parametrize("ramp", [0, 1, 4])
def test_span_mask_matches_numpy(ramp):
    spans = torch.tensor([[0.0, 2.0, 3.5, 40.0]])
    got = span_mask(spans, SEQ, ramp).numpy()
    assert got.shape == (1, 4, SEQ, SEQ)
    for h, z in enumerate(spans[0].tolist()):
        np.testing.assert_allclose(got[0, h], _numpy_span_mask(z, SEQ, ramp), atol=1e-7)


def test_masked_softmax_is_isa_semantics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, SEQ, SEQ)).astype(np.float32) * 3
    m = span_mask(torch.tensor([1.0, 3.0, 6.0, 30.0]), SEQ, 2).numpy()
    e = np.exp(x - x.max(-1, keepdims=True)) * m
    expected = e / e.sum(-1, keepdims=True)
    got = masked_softmax(torch.from_numpy(x), torch.from_numpy(m)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(
        masked_softmax(torch.from_numpy(x), None).numpy(),
        masked_softmax(torch.from_numpy(x), torch.ones(SEQ, SEQ)).numpy(),
        atol=1e-6,
    )


def test_exit_entropy_and_rule():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 7, 3)).astype(np.float32) * 4
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(-1, keepdims=True)
    expected = -(p * np.log(p)).sum(-1)
    np.testing.assert_allclose(exit_entropy(torch.from_numpy(logits)).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(exit_entropy_np(logits), expected, atol=1e-5)
    ent = np.array([[0.5, 0.1, 0.5], [0.05, 0.3, 0.5], [0.6, 0.0, 0.5]])
    assert early_exit_layer(ent, 0.2).tolist() == [2, 1, 3]


def test_af8_fake_quant_is_reference_quantizer_bit_for_bit():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(64, 33)) * rng.choice([1e-3, 0.05, 1.0, 20.0], size=(64, 1))).astype(np.float32)
    for bias in range(8):
        got = AF8FakeQuant.apply(torch.from_numpy(x), bias).numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), adaptivfloat.quantize(x, bias).view(np.uint32))
    t = torch.from_numpy(x).requires_grad_(True)
    af8_fake_quant(t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.ones_like(x))  # straight-through


@pytest.fixture(scope="module")
def compressed(config):
    comp = CompressionConfig(span_enabled=True, max_span=SEQ, span_ramp=2, quantize_weights=True)
    model = _randomised(CompressedAlbert(config, comp), seed=3)
    Pruner(model, "magnitude", {"encoder": 0.5, "embedding": 0.6}).apply()
    return model


def test_quantized_weights_are_af8_values(compressed):
    eff = compressed.effective_weights()
    biases = compressed.weight_biases()
    assert set(biases) == set(compressed.quantized_weight_names()) and len(biases) >= 10
    for name, bias in biases.items():
        w = eff[name].detach().numpy()
        codes = adaptivfloat.encode(w, bias)
        np.testing.assert_array_equal(adaptivfloat.decode(codes, bias), w)  # exactly representable
        params = dict(compressed.named_parameters())
        raw = params[name].detach() * compressed.prune_masks.get(name, 1.0)
        assert bias == adaptivfloat.choose_bias(raw.numpy())
        np.testing.assert_array_equal(w, adaptivfloat.quantize(raw.numpy(), bias))


@pytest.mark.parametrize("method", ["magnitude", "movement"])
def test_pruning_reaches_target_sparsity_per_group(config, method):
    model = _randomised(CompressedAlbert(config, CompressionConfig()), seed=4)
    targets = {"encoder": 0.5, "embedding": 0.6, "exits": 0.3}
    pruner = Pruner(model, method, targets)
    ids, mask = _inputs()
    for _ in range(2):
        model.zero_grad()
        sum(lg.sum() for lg in model(ids, mask).exit_logits).backward()
        pruner.accumulate()
    pruner.apply()
    report = model.sparsity_report()
    assert set(report) == set(targets)
    params = dict(model.named_parameters())
    for group, entry in report.items():
        for name, s in entry["tensors"].items():
            assert abs(s - targets[group]) <= 1.0 / params[name].numel() + 1e-12
        assert abs(entry["achieved"] - targets[group]) < 0.01
    eff = model.effective_weights()
    for name, m in model.prune_masks.items():
        assert torch.all(eff[name][m == 0] == 0)
    if method == "magnitude":  # kept weights are the largest in magnitude
        w = params["encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"].detach().abs()
        m = model.prune_masks["encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"]
        assert w[m == 1].min() >= w[m == 0].max()


def test_topk_mask_and_schedule():
    scores = torch.arange(10.0)
    assert topk_mask(scores, 0.3).tolist() == [0.0] * 3 + [1.0] * 7
    assert cubic_schedule(0, 10, 0.5) == 0.0 and cubic_schedule(10, 10, 0.5) == 0.5
    assert 0.0 < cubic_schedule(3, 10, 0.5) < 0.5


def test_span_freeze_and_checkpoint_round_trip(compressed, tmp_path):
    model = compressed
    with torch.no_grad():
        model.span.set_spans(torch.tensor([[1.2, 3.7, 8.0, 99.0]] * 3))
    spans = model.span.freeze()
    assert spans.tolist() == [[1, 4, 8, SEQ]] * 3
    path = tmp_path / "m.pt"
    save_compressed(model, str(path))
    loaded = load_compressed(str(path))
    ids, mask = _inputs()
    with torch.no_grad():
        a, b = model(ids, mask), loaded(ids, mask)
    for x, y in zip(a.exit_logits, b.exit_logits, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_short_spans_with_padding_stay_finite(config):
    model = _randomised(CompressedAlbert(config, CompressionConfig(span_enabled=True, max_span=SEQ, span_ramp=1)))
    model.span.set_spans(torch.ones(3, 4))
    ids, mask = _inputs()  # example 2 has 10 padded positions, most farther than span + ramp from real tokens
    with torch.no_grad():
        out = model(ids, mask)
    assert all(torch.isfinite(t).all() for t in (*out.exit_logits, *out.hidden_states))


def test_activation_quantizer_calibrates_then_applies_reference():
    from edgebert.frontend.models.af8_fake_quant import ActivationQuantizer

    aq = ActivationQuantizer()
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(4, 9)).astype(np.float32) * 3)
    assert aq("p", x) is x
    aq.mode = "calibrate"
    aq("p", x)
    aq("p", x * 0.5)
    biases = aq.finish_calibration()
    assert biases == {"p": adaptivfloat.choose_bias(np.array([float(x.abs().max())], dtype=np.float32))}
    np.testing.assert_array_equal(aq("p", x).numpy(), adaptivfloat.quantize(x.numpy(), biases["p"]))
