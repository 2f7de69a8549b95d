"""Hugging Face encoders (examples/build_encoder.py) exported every common way, compiled by edgebertc, emulated,
and compared output by output with onnxruntime (max abs error <= 1e-4). docs/generality.md has the full matrix.

Every case passes except the rejections the issue allows, in REJECTED (each must fail in exactly its class:
onnxruntime contrib ops, rejected with what to export instead, and an activation the exporter itself cannot export).
Cases that fail for another reason would be strict xfails from XFAIL (empty now), one failure class each
(scripts/encoder_matrix.py CLASSES): a case that starts passing, or fails in another class, fails the test.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from encoder_cases import SEQ_LEN, KnownFailure, check_case, ci_cases, expect, matrix, repros

_LEGACY = ("legacy14", "legacy17", "legacy18", "legacy20")

#: case -> the failure class it stops in today (docs/generality.md: cause and fix of each class). Keys: zoo case
#: names (ci_cases), `repro:<name>` (scripts/generality_repros.py), `build_albert:<exporter>` (--dynamic).
XFAIL: dict[str, str] = {}

#: case -> the class it is rejected in on purpose (docs/generality.md "What is rejected, and why").
REJECTED: dict[str, str] = {
    "repro:contrib_fast_gelu": "contrib-ops",
    "bert-sequence-classification-legacy18-static-ortopt": "contrib-ops",
    "albert-sequence-classification-legacy18-static-ortopt": "contrib-ops",
    # the legacy exporter has no symbolic for aten::expm1 (xIELU); the dynamo export of the same model compiles
    "albert-sequence-classification-legacy18-static-xielu": "export",
}


def _param(value, key: str):
    marks = [pytest.mark.xfail(strict=True, raises=KnownFailure, reason=XFAIL[key])] if key in XFAIL else []
    return pytest.param(value, id=key.partition(":")[2] or key, marks=marks)


@pytest.mark.parametrize("spec", [_param(s, s.name) for s in ci_cases()])
def test_encoder_matches_onnxruntime(spec, tmp_path):
    if spec.name in REJECTED:
        row = matrix.run_case(spec, tmp_path)
        assert not row.passed and row.failure_class == REJECTED[spec.name], (row.failure_class, row.error)
        if row.failure_class == "contrib-ops":
            assert "as torch.onnx.export wrote it" in row.error
        return
    row = check_case(spec, tmp_path, XFAIL.get(spec.name))
    assert row.max_abs_error is not None and row.max_abs_error <= matrix.TOL


@pytest.mark.parametrize("repro", [_param(r, f"repro:{r.name}") for r in repros.REPROS])
def test_minimal_reproducer(repro):
    """A few-node graph per failure class (scripts/generality_repros.py): valid in onnxruntime; compiles and
    matches it now that its class is fixed (or is rejected on purpose, REJECTED)."""
    got, error = repros.check(repro)
    key = f"repro:{repro.name}"
    if key in REJECTED:
        assert got == REJECTED[key], (got, error)
        return
    if got != "pass":
        expect(repro.name, got, f"{got}: {error}", XFAIL.get(key))


def test_xfail_table_names_real_cases_and_classes():
    names = {s.name for s in ci_cases()} | {f"repro:{r.name}" for r in repros.REPROS}
    names |= {"build_albert:legacy", "build_albert:dynamo"}
    table = {**XFAIL, **REJECTED}
    assert set(table) <= names, sorted(set(table) - names)
    assert set(table.values()) <= set(matrix.CLASS_IDS), sorted(set(table.values()) - set(matrix.CLASS_IDS))


def test_failure_classes_match_the_errors_edgebertc_gives():
    """The classifier puts today's one-line errors in the classes docs/generality.md describes."""
    c = matrix.classify
    assert c("backend", "main: op relax.erf (binding 'lv72') is not supported by the edgebert backend") == "erf-gelu"
    assert c("import", "TVM ONNX import failed: Cannot use and / or / not operator to Expr, hint: ...",
             True) == "dynamic-expand"
    assert c("load", "1 unsupported ONNX node(s) [op types: Max]: node_Max_30 (Max)", True) == "dynamic-shape-ops"
    assert c("load", "2 unsupported ONNX node(s) [op types: Min]: node_minimum (Min)", False) == "activation-ops"
    assert c("load", "1 unsupported ONNX node(s) [op types: Split]: /model/Split (Split)") == "split"
    assert c("load", "3 unsupported ONNX node(s) [op types: com.microsoft::Attention, Split]: ...") == "contrib-ops"
    assert c("compare", "max abs error 0.3 > 0.0001 (output logits)") == "mismatch"


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_build_albert_dynamic_exports_symbolic_axes(exporter, tmp_path):
    """examples/build_albert.py --dynamic: symbolic batch and sequence, any [B, S] runs in onnxruntime; edgebertc
    compiles it with --seq-len and matches onnxruntime."""
    main = matrix.load_example("build_albert").main
    path = tmp_path / "albert.onnx"
    assert main(["--dynamic", "--exporter", exporter, "--seq-len", str(SEQ_LEN), "--pad", "2", "-o", str(path),
                 "--inputs", str(tmp_path / "in.npz"), "--outputs", "logits,last_hidden_state"]) == 0
    model = onnx.load(str(path))
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        assert [d.HasField("dim_value") for d in dims] == [False, False], value
    inputs = dict(np.load(tmp_path / "in.npz"))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, seq in ((1, SEQ_LEN), (3, 5)):
        feed = {k: np.repeat(v[:, :seq], batch, axis=0) for k, v in inputs.items()}
        logits, hidden = sess.run(None, feed)
        assert logits.shape == (batch, 2) and hidden.shape == (batch, seq, 64)
    want = matrix.onnxruntime_outputs(model, inputs)
    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.emulator import run

    got = run(compile_onnx(path, SEQ_LEN).program, inputs).outputs
    assert max(matrix.compare(got, want).values()) <= matrix.TOL


def test_ci_subset_covers_every_family_head_and_export():
    cases = ci_cases()
    assert {(s.family, s.head) for s in cases} == {(f, h) for f in matrix.zoo.FAMILIES for h in matrix.zoo.HEADS}
    exports = {(s.exporter + str(s.opset or ""), s.dynamic) for s in cases}
    assert {(e, False) for e in (*_LEGACY, "dynamo", "dynamo18")} <= exports
    assert {("legacy18", True), ("dynamo", True)} <= exports
    assert {s.hidden_act for s in cases if s.hidden_act} == set(matrix.zoo.activations())


@pytest.mark.parametrize("family", sorted(matrix.zoo.FAMILIES))
def test_zoo_models_are_random_everywhere_and_onnx_matches_torch(family, tmp_path):
    """build_encoder: no parameter keeps transformers' constant init (zero biases, unit LayerNorm weights, which
    the exporters would merge), and the exported graph computes what the torch model computes."""
    import torch

    zoo = matrix.zoo
    spec = zoo.EncoderSpec(family, "token-classification", seq_len=SEQ_LEN)
    cfg = zoo.encoder_config(spec)
    model = zoo.build_model(spec, cfg)
    for name, p in model.named_parameters():
        values = p.detach().reshape(-1)
        assert values.numel() < 2 or float(values.std()) > 1e-3, f"{name} is constant"
    done = zoo.build_encoder(family, "token-classification", tmp_path / "m.onnx", seq_len=SEQ_LEN)
    feeds = {k: torch.from_numpy(v) for k, v in done.inputs.items()}
    with torch.no_grad():
        want = model(**feeds).logits.numpy()
    got = matrix.onnxruntime_outputs(onnx.load(str(done.path)), done.inputs)["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # MobileBERT's un-normalised activations are large
    assert done.inputs["attention_mask"][0, -spec.pad:].tolist() == [0] * spec.pad
    assert done.inputs["input_ids"].max() < cfg.vocab_size


@pytest.mark.parametrize("name", ["bert-base-legacy18-static", "bert-base-dynamo-dynamic", "roberta-base-dynamo-static"])
def test_sdpa_attention_is_one_composite(tmp_path, name):
    """transformers' SDPA path exports q and k^T each scaled by sqrt(1 / sqrt(d)), a NaN guard after the softmax and
    a no-op reshape (dynamo: k^T as two transposes with a reshape between; RoBERTa: the transpose of [H, S, D]
    between reshapes dropping and restoring the batch dim): canonicalised, the attention is one
    `edgebert.attention` composite (what the memory-hierarchy plan blocks per head on edgebert-cmod's buffers; the
    per-head `attention_core` had to fit whole), and the program still matches onnxruntime."""
    import dataclasses

    from edgebert.compiler.pipeline import relax_pipeline
    from edgebert.frontend import load_onnx, to_relax

    spec = next(s for s in matrix.matrix_cases(("core",)) if s.name == name)
    path = tmp_path / "bert.onnx"
    matrix.zoo.build_encoder(**{**dataclasses.asdict(spec), "path": path})
    mod = relax_pipeline(to_relax(load_onnx(path, spec.seq_len)), None, {})
    composites = {str(f.attrs["Composite"]) for _, f in mod.functions.items()
                  if f.attrs is not None and "Composite" in f.attrs}
    assert "edgebert.attention" in composites and "edgebert.attention_core" not in composites, composites
    row = matrix.run_case(spec, tmp_path)
    assert row.passed and row.max_abs_error <= matrix.TOL, row.error
