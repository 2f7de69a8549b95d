"""Early exit inside ONE layer loop (compiler/lower/exit_loop.py): structure, size independent of L, exits vs ORT."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgebert.compiler.options import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator.runner import Runner
from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, albert_config
from edgebert.frontend.models.compressed_export import export_onnx
from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset

SEQ = 16


def _model(path, layers: int, spans=None) -> str:
    """An untrained tiny compressed ALBERT with an exit head per layer (optionally fixed per-layer spans)."""
    task = TASKS["sentiment"]
    cfg = albert_config(len(VOCAB), hidden=32, layers=layers, heads=2, intermediate=64, max_positions=SEQ,
                        dropout=0.0)
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names),
                             entropy_threshold=0.2, span_enabled=spans is not None, max_span=SEQ, span_ramp=4)
    torch.manual_seed(0)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=layers)
    if spans is not None:
        with torch.no_grad():
            model.span.z.copy_(torch.tensor(spans, dtype=torch.float32) / SEQ)
    export_onnx(model, str(path), SEQ, threshold=0.2)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("eeloop")
    return {n: _model(d / f"l{n}.onnx", n) for n in (3, 6)}


def _head_table(prog) -> int:
    return sum(len(s.data) for s in prog.segments if s.name == "ee.head_table")


def test_one_layer_body_in_a_loop(models):
    progs = {n: compile_onnx(p, early_exit=True).program for n, p in models.items()}
    for prog in progs.values():
        code = prog.code
        assert prog.metadata["early_exit"]["layout"] == "looped"
        blts = [i for i, c in enumerate(code) if c.mnemonic == "blt"]
        bexits = [i for i, c in enumerate(code) if c.mnemonic == "bexit"]
        assert len(blts) == 1 and len(bexits) == 1
        top = code[blts[0]].values["target"]
        assert top < bexits[0] < blts[0]  # the exit branch is inside the loop body
        # the head weights are read through base register r7 (stepped by r1 every iteration)
        assert any(c.values.get("src_base") == 7 for c in code[top:blts[0]] if c.mnemonic == "ld")
    # code size independent of L; only the strided head table grows with L
    assert len(progs[3].code) == len(progs[6].code)
    assert _head_table(progs[6]) == 2 * _head_table(progs[3]) > 0


def test_no_exit_runs_the_loop_l_times(models):
    prog = compile_onnx(models[6], early_exit=True).program
    code = prog.code
    blt = next(i for i, c in enumerate(code) if c.mnemonic == "blt")
    res = Runner(prog, trace=True).run(entropy_values=[5.0] * 5, timing_only=True)
    assert res.exit_layer == 6
    assert sum(1 for t in res.machine.trace if t[-1] == blt) == 6  # taken 5 times, falls through once


def test_exits_and_logits_match_onnxruntime_per_layer(models):
    """Every head's block of the table is the right one: thresholds giving exits at several layers, vs ORT."""
    path = models[6]
    ev = make_dataset("sentiment", 4, SEQ, seed=3)
    ids, mask = np.asarray(ev.input_ids, np.int64), np.asarray(ev.attention_mask, np.int64)
    sess = ort.InferenceSession(path)
    outs = [sess.run(None, {"input_ids": ids[i:i + 1], "attention_mask": mask[i:i + 1]}) for i in range(len(ids))]

    def entropy(x):
        z = np.asarray(x, np.float64).ravel()
        z = z - z.max()
        e = np.exp(z)
        return float(np.log(e.sum()) - (z * e).sum() / e.sum())

    ent = np.array([[entropy(o) for o in out] for out in outs])
    row = ent[0]
    # thresholds just above head k's entropy when it is the lowest so far: sentence 0 exits after layer k
    ks = [k for k in range(5) if row[k] < row[:k].min(initial=np.inf)]
    seen = set()
    for k in ks[:3] + [None]:
        thr = 1e-6 if k is None else float(row[k]) + 1e-5
        if k is not None and np.any(np.abs(ent[:, :-1] - thr) < 1e-6):
            continue
        prog = compile_onnx(path, early_exit=EarlyExitOptions(threshold=thr)).program
        runner = Runner(prog)
        for i in range(len(ids)):
            below = np.flatnonzero(ent[i, :-1] < thr)
            want = int(below[0]) + 1 if below.size else ent.shape[1]
            res = runner.run({"input_ids": ids[i:i + 1], "attention_mask": mask[i:i + 1]}, check_races=i == 0)
            assert res.exit_layer == want
            np.testing.assert_allclose(res.outputs["logits"].ravel(), outs[i][want - 1].ravel(), atol=1e-5)
            seen.add(want)
    assert 6 in seen and len(seen) >= 2


def test_layers_that_differ_stay_unrolled(tmp_path):
    """Per-layer attention spans that differ (the span fields of the softmax) cannot share one body."""
    path = _model(tmp_path / "span.onnx", 3, spans=[[4, 16], [8, 16], [4, 16]])
    prog = compile_onnx(path, early_exit=True).program
    assert prog.metadata["early_exit"]["layout"].startswith("unrolled: ")
    assert sum(c.mnemonic == "bexit" for c in prog.code) == 2
    same = _model(tmp_path / "span_same.onnx", 3, spans=[[4, 8]] * 3)
    assert compile_onnx(same, early_exit=True).program.metadata["early_exit"]["layout"] == "looped"


def test_heads_with_different_code_are_lowered_again_unrolled(models, monkeypatch):
    """When the trial lowerings of the heads differ (e.g. other AF8 biases), the backend falls back to unrolled."""
    from edgebert.compiler.errors import ExitLoopUnfit
    from edgebert.compiler.lower import weight_tables

    def differ(*args, **kwargs):
        raise ExitLoopUnfit("exit head 2's code differs from head 1's (matmul vs matmul)")

    monkeypatch.setattr(weight_tables, "match_copy", differ)
    prog = compile_onnx(models[3], early_exit=True).program
    assert prog.metadata["early_exit"]["layout"] == "unrolled: exit head 2's code differs from head 1's (matmul vs matmul)"
    assert sum(c.mnemonic == "bexit" for c in prog.code) == 2
    assert not any(s.name == "ee.head_table" for s in prog.segments)
