"""adapter-ALBERT: frozen shared backbone, per-task adapters/heads, training, ONNX export with shared initializers."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from edgebert.frontend.models.adapters import AdapterConfig, is_backbone_parameter
from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, albert_config
from edgebert.frontend.models.compressed_export import exit_output_names, read_edgebert_metadata
from edgebert.frontend.models.compressed_training import TrainSettings, evaluate_exits
from edgebert.frontend.models.multitask_albert import MultiTaskAlbert, footprint_bytes, load_multitask, save_multitask
from edgebert.frontend.models.multitask_export import (
    export_all_tasks,
    initializer_digests,
    task_weight_tables,
    tensor_digest,
)
from edgebert.frontend.models.multitask_training import (
    make_backbone_pruner,
    pretrain_backbone,
    train_task_adapters,
)
from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset

TASK_NAMES = ["sentiment", "topic", "valence"]
SEQ, LAYERS, HIDDEN, BOTTLENECK = 16, 2, 32, 8


@pytest.fixture(scope="module")
def trained():
    """A tiny adapter-ALBERT: multi-task pre-training, magnitude pruning, AF8 QAT, then adapters per task."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = albert_config(len(VOCAB), hidden=HIDDEN, layers=LAYERS, heads=2, intermediate=64, max_positions=SEQ)
    mt = MultiTaskAlbert(cfg, TASK_NAMES, CompressionConfig(), AdapterConfig(bottleneck=BOTTLENECK))
    train_sets = {t: make_dataset(t, 700, SEQ, seed=0) for t in TASK_NAMES}
    eval_sets = {t: make_dataset(t, 400, SEQ, seed=2000) for t in TASK_NAMES}
    pretrain_backbone(mt, train_sets, TrainSettings(epochs=6, lr=4e-3))
    pruner = make_backbone_pruner(mt, "magnitude", {"encoder": 0.5, "embedding": 0.6})
    pretrain_backbone(mt, train_sets, TrainSettings(epochs=1, lr=1e-3, seed=1), pruner)
    mt.set_compression(quantize_weights=True)
    pretrain_backbone(mt, train_sets, TrainSettings(epochs=1, lr=5e-4, seed=2))
    mt.freeze_backbone_weight_biases()
    before = mt.backbone_state()
    before_eff = {n: w.detach().clone() for n, w in mt.backbone.effective_weights().items() if is_backbone_parameter(n)}
    init_adapters = {}
    for t in TASK_NAMES:
        m = mt.task(t)
        m.reset_task_parameters(0)
        init_adapters[t] = {n: p.detach().clone() for n, p in m.named_parameters() if n.startswith("adapters.")}
        train_task_adapters(mt, t, train_sets[t], TrainSettings(epochs=6, lr=5e-3, seed=3), seed=0)
    reports = {t: evaluate_exits(mt.task(t), eval_sets[t]) for t in TASK_NAMES}
    return {
        "mt": mt,
        "before": before,
        "before_eff": before_eff,
        "init_adapters": init_adapters,
        "reports": reports,
        "eval": eval_sets,
    }


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """Every task exported with a dynamic batch; task -> (path, ModelProto)."""
    out = tmp_path_factory.mktemp("multitask")
    paths = export_all_tasks(trained["mt"], out, SEQ, dynamic_batch=True)
    return {t: (p, onnx.load(str(p))) for t, p in paths.items()}


def test_backbone_bit_identical_after_adapter_training(trained):
    mt = trained["mt"]
    after = mt.backbone_state()
    assert after.keys() == trained["before"].keys() and len(after) > 10 and len(trained["before_eff"]) > 5
    for name, value in trained["before"].items():
        assert torch.equal(value, after[name]), name
        assert not dict(mt.backbone.named_parameters())[name].requires_grad
    for name, value in mt.backbone.effective_weights().items():
        if is_backbone_parameter(name):
            assert torch.equal(value, trained["before_eff"][name]), name
    for t in TASK_NAMES:  # every task model sees the very same tensors
        params = dict(mt.task(t).named_parameters())
        for name in after:
            assert params[name] is dict(mt.backbone.named_parameters())[name]


def test_adapters_trained_and_task_specific(trained):
    mt = trained["mt"]
    for t in TASK_NAMES:
        params = dict(mt.task(t).named_parameters())
        moved = [float((params[n].detach() - v).abs().max()) for n, v in trained["init_adapters"][t].items()]
        assert min(moved) > 0.0
    a, b = (dict(mt.task(t).named_parameters()) for t in ("sentiment", "topic"))
    assert not torch.equal(a["adapters.ffn.0.down.weight"], b["adapters.ffn.0.down.weight"])


def test_every_task_beats_chance_at_last_exit(trained):
    for t, report in trained["reports"].items():
        chance = 1.0 / TASKS[t].num_labels
        assert report.accuracy[-1] > chance + 0.1, (t, report.accuracy)


def test_backbone_sparse_and_af8(trained):
    mt = trained["mt"]
    report = mt.backbone.sparsity_report()
    assert report["encoder"]["achieved"] == pytest.approx(0.5, abs=0.01)
    assert report["embedding"]["achieved"] == pytest.approx(0.6, abs=0.01)
    biases = mt.backbone.frozen_weight_biases
    assert "encoder.albert_layer_groups.0.albert_layers.0.ffn.weight" in biases
    for t in TASK_NAMES:  # adapters and heads are AF8 too, biases frozen after training
        assert "adapters.attention.1.up.weight" in mt.task(t).frozen_weight_biases


def test_onnx_matches_torch_on_every_exit(trained, exported):
    mt, data = trained["mt"], trained["eval"]
    for t in TASK_NAMES:
        path, _ = exported[t]
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ids, mask = data[t].input_ids[:32], data[t].attention_mask[:32]
        got = sess.run(exit_output_names(LAYERS), {"input_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            ref = mt.task(t)(torch.from_numpy(ids), torch.from_numpy(mask)).exit_logits
        assert len(got) == LAYERS
        for g, r in zip(got, ref, strict=True):
            assert g.shape == (32, TASKS[t].num_labels)
            np.testing.assert_allclose(g, r.numpy(), atol=1e-5, rtol=0)


def test_backbone_initializers_identical_across_tasks(exported):
    digests = {t: initializer_digests(p) for t, (_, p) in exported.items()}
    metas = {t: read_edgebert_metadata(p)["edgebert.multitask"] for t, (_, p) in exported.items()}
    backbone = {t: {n: digests[t][n] for n in m["backbone_initializers"]} for t, m in metas.items()}
    ref = backbone["sentiment"]
    assert any("attention.query.weight" in n for n in ref) and any("word_embeddings" in n for n in ref)
    for t in TASK_NAMES:
        assert backbone[t] == ref  # same names, same content hashes
        assert metas[t]["backbone_digest"] == metas["sentiment"]["backbone_digest"]
    task_digests = {t: {digests[t][n] for n in m["task_initializers"]} for t, m in metas.items()}
    for i, a in enumerate(TASK_NAMES):
        assert all(n.startswith(f"task.{a}.") for n in metas[a]["task_initializers"])
        for b in TASK_NAMES[i + 1 :]:
            assert not task_digests[a] & task_digests[b], (a, b)


def test_multitask_metadata_schema(trained, exported):
    mt = trained["mt"]
    for t, (_, proto) in exported.items():
        meta = read_edgebert_metadata(proto)
        assert meta["edgebert.task"]["name"] == t
        assert meta["edgebert.task"]["num_labels"] == TASKS[t].num_labels
        mtm = meta["edgebert.multitask"]
        names = {i.name for i in proto.graph.initializer}
        assert set(mtm["backbone_initializers"]) | set(mtm["task_initializers"]) == names
        assert not set(mtm["backbone_initializers"]) & set(mtm["task_initializers"])
        nbytes = {i.name: numpy_helper.to_array(i).nbytes for i in proto.graph.initializer}
        assert mtm["backbone_bytes"] + mtm["task_bytes"] == sum(nbytes.values())
        assert mtm["tasks"] == TASK_NAMES and mtm["num_labels"] == TASKS[t].num_labels
        layout = mtm["layout"]
        assert layout["per_depth"] and layout["sites"] == ["attention", "ffn"] and layout["bottleneck"] == BOTTLENECK
        params = dict(mt.task(t).named_parameters())
        inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
        eff = mt.task(t).effective_weights()
        for site in ("attention", "ffn"):
            for part, names_per_depth in layout["adapters"][site].items():
                assert len(names_per_depth) == LAYERS
                for d, name in enumerate(names_per_depth):
                    torch_name = f"adapters.{site}.{d}.{part}"
                    value = eff.get(torch_name, params[torch_name]).detach().numpy()
                    stored = inits[name].T if mtm["initializers"][name]["transposed"] else inits[name]
                    np.testing.assert_array_equal(stored, value)
                    assert tensor_digest(inits[name]) == mtm["initializers"][name]["sha256"]
        for names_per_depth in layout["exit_heads"].values():
            assert len(names_per_depth) == LAYERS and all(n in names for n in names_per_depth)
        tables = task_weight_tables(proto)
        assert tables["adapters.ffn.down.weight"].shape == (LAYERS, HIDDEN, BOTTLENECK)  # stored as W^T (MatMul)
        assert tables["exit_heads.classifier.weight"].shape == (LAYERS, TASKS[t].num_labels, HIDDEN)  # Gemm transB
        for d in range(LAYERS):
            w = eff[f"adapters.ffn.{d}.down.weight"].detach().numpy()
            np.testing.assert_array_equal(tables["adapters.ffn.down.weight"][d], w.T)
            np.testing.assert_array_equal(tables["exit_heads.dense.bias"][d], params[f"exits.{d}.dense.bias"].detach())
        # the compressed metadata's initializer references follow the renaming
        for entry in meta["edgebert.quantization"]["weights"].values():
            assert entry["initializer"] is None or entry["initializer"] in names


def test_parameter_and_byte_counts(trained):
    mt = trained["mt"]
    counts = mt.parameter_counts()
    per_adapter = 2 * HIDDEN * BOTTLENECK + BOTTLENECK + HIDDEN
    for t in TASK_NAMES:
        c = counts["tasks"][t]
        assert c["adapters"] == 2 * LAYERS * per_adapter
        assert c["exits"] == LAYERS * (HIDDEN * HIDDEN + HIDDEN + TASKS[t].num_labels * (HIDDEN + 1))
        assert c["adapters_to_backbone"] == pytest.approx(c["adapters"] / counts["backbone"])
        assert c["adapters_to_backbone"] < 0.25
    fp = footprint_bytes(mt)
    assert fp["backbone"]["fp32"] == 4 * (counts["backbone"] - sum(p.numel() for p in mt.backbone.span.parameters()))
    assert fp["backbone"]["stored"] < fp["backbone"]["fp32"] / 3  # sparse AF8
    for t in TASK_NAMES:
        assert fp["tasks"][t]["fp32"] == 4 * counts["tasks"][t]["total"]
        assert fp["tasks"][t]["stored"] < fp["tasks"][t]["fp32"] / 2  # AF8 weights, fp32 biases


def test_save_load_roundtrip(trained, tmp_path):
    mt = trained["mt"]
    path = tmp_path / "mt.pt"
    save_multitask(mt, str(path))
    back = load_multitask(str(path))
    ids = torch.from_numpy(trained["eval"]["valence"].input_ids[:8])
    mask = torch.from_numpy(trained["eval"]["valence"].attention_mask[:8])
    with torch.no_grad():
        for t in TASK_NAMES:
            a = mt.task(t)(ids, mask).exit_logits
            b = back.task(t)(ids, mask).exit_logits
            for x, y in zip(a, b, strict=True):
                assert torch.equal(x, y)
    assert back.task("topic").embeddings is back.task("valence").embeddings


@pytest.mark.parametrize(("placement", "per_depth", "span"), [("pfeiffer", True, True), ("houlsby", False, False)])
def test_variants_export_and_layout(tmp_path, placement, per_depth, span):
    torch.manual_seed(1)
    cfg = albert_config(len(VOCAB), hidden=16, layers=3, heads=2, intermediate=32, max_positions=12)
    comp = CompressionConfig(span_enabled=span, max_span=12, span_ramp=2)
    mt = MultiTaskAlbert(cfg, ["sentiment", "valence"], comp, AdapterConfig(4, placement, per_depth))
    if span:
        with torch.no_grad():
            mt.backbone.span.z.copy_(torch.tensor([[2.0, 5.0], [3.0, 9.0], [1.0, 4.0]]))
        mt.backbone.span.freeze()
    for m in mt.tasks.values():
        for p in m.parameters():  # non-zero biases everywhere (the exporter merges equal tensors)
            p.data.add_(torch.randn_like(p) * 0.01)
    paths = export_all_tasks(mt, tmp_path, 12)
    data = make_dataset("valence", 1, 12, seed=5)
    for t, path in paths.items():
        layout = read_edgebert_metadata(path)["edgebert.multitask"]["layout"]
        sites = ["ffn"] if placement == "pfeiffer" else ["attention", "ffn"]
        assert layout["sites"] == sites and set(layout["adapters"]) == set(sites)
        names = layout["adapters"]["ffn"]["down.weight"]
        assert len(names) == 3 and (len(set(names)) == 3) == per_depth
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input_ids": data.input_ids, "attention_mask": data.attention_mask})
        with torch.no_grad():
            ref = mt.task(t)(torch.from_numpy(data.input_ids), torch.from_numpy(data.attention_mask)).exit_logits
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r.numpy(), atol=1e-5, rtol=0)
    metas = {t: read_edgebert_metadata(p) for t, p in paths.items()}
    digests = {t: initializer_digests(onnx.load(str(p))) for t, p in paths.items()}
    shared = [{n: digests[t][n] for n in m["edgebert.multitask"]["backbone_initializers"]} for t, m in metas.items()]
    assert shared[0] == shared[1]
    masks = metas["valence"]["edgebert.attention_spans"]["mask_initializers"]
    if span:  # span masks are backbone constants named by content
        assert all(n in shared[0] and n.startswith("backbone.const.") for n in masks)


def test_adapters_off_or_identity_equal_compressed_albert():
    torch.manual_seed(2)
    cfg = albert_config(len(VOCAB), hidden=16, layers=2, heads=2, intermediate=32, max_positions=12)
    mt = MultiTaskAlbert(cfg, ["topic"])
    m = mt.task("topic")
    plain = CompressedAlbert(cfg, copy.deepcopy(m.compression))
    state = {k: v for k, v in m.state_dict().items() if not k.startswith("adapters.")}
    plain.load_state_dict(state)
    data = make_dataset("topic", 4, 12, seed=1)
    ids, mask = torch.from_numpy(data.input_ids), torch.from_numpy(data.attention_mask)
    with torch.no_grad():
        ref = plain(ids, mask).exit_logits
        m.use_adapters = False
        off = m(ids, mask).exit_logits
        m.use_adapters = True
        for stack in m.adapters.values():  # a zero up-projection makes every adapter the identity
            for a in stack:
                a.up.weight.zero_()
                a.up.bias.zero_()
        on = m(ids, mask).exit_logits
    for x, y, z in zip(ref, off, on, strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)


def test_tied_activation_biases_take_the_widest_layer():
    """finish_calibration(tie_layers=True): one bias per point for every layer (the widest range wins)."""
    from edgebert.frontend.models.af8_fake_quant import ActivationQuantizer
    from edgebert.isa import adaptivfloat

    q = ActivationQuantizer()
    q.amax = {"layer1.ffn_in": 0.5, "layer2.ffn_in": 20.0, "exit1.dense_in": 3.0, "exit2.dense_in": 1.0,
              "embedding_proj_in": 2.0}
    untied = q.finish_calibration()
    assert untied["layer1.ffn_in"] != untied["layer2.ffn_in"]
    tied = q.finish_calibration(tie_layers=True)
    wide = adaptivfloat.choose_bias(np.array([20.0], dtype=np.float32))
    assert tied["layer1.ffn_in"] == tied["layer2.ffn_in"] == wide
    assert tied["exit1.dense_in"] == tied["exit2.dense_in"] == untied["exit1.dense_in"]
    assert tied["embedding_proj_in"] == untied["embedding_proj_in"] and q.mode == "apply"
