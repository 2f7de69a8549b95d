"""Multi-task AF8 (weights and activations): the multi-task binary equals, bit for bit, each task's own single-task
program and the PyTorch AF8 model (one activation bias per point shared by every task)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from multitask_cases import SEQ, TASK_NAMES, sentences, task_weight_reads, train_tiny
from onnx import numpy_helper

from edgebert.compiler import cli as compiler_cli
from edgebert.compiler.compression import weight_key
from edgebert.compiler.early_exit import EarlyExitOptions
from edgebert.compiler.multitask import common_task_formats, compile_multitask, load_task, pad_heads
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator.runner import Runner
from edgebert.frontend.models.compressed_export import read_edgebert_metadata
from edgebert.frontend.models.multitask_albert import load_multitask, save_multitask
from edgebert.frontend.models.multitask_export import export_all_tasks
from edgebert.isa import adaptivfloat
from edgebert.isa.ebin import load_ebin

N_SENTENCES = 10
AF8 = 1  # isa FORMATS index of af8


def _entropy(logits: np.ndarray) -> float:
    z = logits.reshape(-1).astype(np.float64)
    z = z - z.max()
    p = np.exp(z) / np.exp(z).sum()
    return float(-(p * np.log(p)).sum())


def _torch_exits(model, x: dict) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(x["input_ids"]), torch.from_numpy(x["attention_mask"]))
    return [o.numpy() for o in out.exit_logits]


@pytest.fixture(scope="module", params=[True, False], ids=["per-depth", "depth-shared"])
def af8(request, tmp_path_factory):
    per_depth = request.param
    mt = train_tiny(per_depth=per_depth, af8_activations=True, af8_attention=per_depth)  # per-depth: AF8 attention
    out = tmp_path_factory.mktemp("mt_af8")
    paths = export_all_tasks(mt, out, SEQ)
    xs = {t: sentences(t, N_SENTENCES) for t in TASK_NAMES}
    refs = {t: [_torch_exits(mt.task(t), x) for x in xs[t]] for t in TASK_NAMES}
    thr = {}
    for t in TASK_NAMES:  # between two middle exit-1 entropies: several exit layers
        ents = sorted(_entropy(r[0]) for r in refs[t])
        thr[t] = (ents[len(ents) // 2 - 1] + ents[len(ents) // 2]) / 2
    res = compile_multitask([paths[t] for t in TASK_NAMES], thresholds=thr)
    singles = {t: compile_onnx(paths[t], early_exit=dataclasses.replace(EarlyExitOptions(), threshold=thr[t])).program
               for t in TASK_NAMES}
    return {"mt": mt, "paths": paths, "xs": xs, "refs": refs, "thr": thr, "res": res, "singles": singles,
            "per_depth": per_depth, "dir": out}


def test_activation_biases_are_shared_by_every_task(af8):
    """One bias per activation point for every task (the shared code's `quant` immediates), exported and used."""
    metas = [read_edgebert_metadata(str(af8["paths"][t]))["edgebert.quantization"]["activations"] for t in TASK_NAMES]
    assert all(m["enabled"] for m in metas)
    assert all(m["exp_bias"] == metas[0]["exp_bias"] for m in metas)
    points = metas[0]["exp_bias"]
    assert {"layer1.adapter_attention_down_in", "layer1.adapter_ffn_up_in", "exit1.classifier_in"} <= set(points)
    if not af8["per_depth"]:  # tied across layers so the layers run as one loop
        assert points["layer1.qkv_in"] == points["layer2.qkv_in"] == points["layer3.qkv_in"]
    prog = af8["res"].program
    quants = {i["exp_bias"] for i in prog.code if i.mnemonic == "quant"}
    assert quants <= set(points.values()) and quants
    # every weight matmul is AF8 x AF8; the attention's QK^T and PV (2 per head per layer) too with AF8 attention
    mm = [i for i in prog.code if i.mnemonic == "matmul"]
    fp32 = [i for i in mm if not (i["a_fmt"] == AF8 and i["b_fmt"] == AF8)]
    heads = af8["mt"].config.num_attention_heads
    looped = prog.metadata["early_exit"]["layout"] == "looped"
    assert looped == (not af8["per_depth"])  # per-depth adapters: each layer reads other weights, so unrolled
    attention = af8["mt"].backbone.compression.quantize_attention
    assert attention == af8["per_depth"] and ("layer1.attn_probs_in" in points) == attention
    assert len(fp32) == (0 if attention else 2 * heads)
    # the task weights' AF8 codes are read in place from the SRAM task region (r14; the looped heads' table by r7)
    reads = task_weight_reads(prog)
    assert reads and {m for m, *_ in reads} == {"matmul"} and {sp for *_, sp in reads} == {"sram"}
    assert {b for _, _, b, _ in reads} == ({7, 14} if looped else {14})
    body = prog.code[prog.metadata["multitask"]["entry_instructions"]:]
    assert all(i["b_fmt"] == AF8 for i in body if i.mnemonic == "matmul" and i["b_base"] == 14)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_each_task_bit_exact_with_single_task_program_and_pytorch(af8, task):
    multi, single = Runner(af8["res"].program), Runner(af8["singles"][task])
    thr, exits, identical = af8["thr"][task], [], 0
    for x, ref in zip(af8["xs"][task], af8["refs"][task], strict=True):
        a = multi.run(x, task=task)
        b = single.run(x)
        # the multi-task binary is the single-task program bit for bit (unpadded heads: AF8 products are exact)
        assert a.exit_layer == b.exit_layer
        assert a.outputs["logits"].tobytes() == b.outputs["logits"].tobytes()
        ents = [_entropy(r) for r in ref]
        want = next((i + 1 for i, e in enumerate(ents[:-1]) if e < thr), len(ents))
        if min(abs(e - thr) for e in ents[:-1]) > 1e-4:
            assert a.exit_layer == want
        identical += a.outputs["logits"].tobytes() == ref[a.exit_layer - 1].tobytes()
        exits.append(a.exit_layer)
    # bit-identical to PyTorch's AF8 model except where an fp32 attention matmul or SFU op lands one ulp apart on
    # an AF8 rounding boundary (docs/multitask.md); measured 30 of 30 per variant
    assert identical >= N_SENTENCES - 1, identical
    assert len(set(exits)) > 1, exits


def test_checkpoint_keeps_the_shared_activation_biases(af8, tmp_path):
    mt = af8["mt"]
    save_multitask(mt, tmp_path / "mt.pt")
    back = load_multitask(tmp_path / "mt.pt")
    quants = {id(back.task(t).activation_quant) for t in TASK_NAMES}
    assert len(quants) == 1  # still one quantizer shared by the tasks
    assert back.backbone.activation_quant.biases == mt.backbone.activation_quant.biases
    x = af8["xs"]["topic"][0]
    got, want = _torch_exits(back.task("topic"), x), _torch_exits(mt.task("topic"), x)
    assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))


def test_task_weight_biases_are_shared(af8):
    """share_task_weight_biases: every task weight slot has one AF8 bias in every task model, so the compiler stores
    every slot AF8 (no fp32 fallback notes)."""
    mt = af8["mt"]
    biases = [mt.task(t).frozen_weight_biases for t in TASK_NAMES]
    slots = [n for n in biases[0] if n.startswith(("adapters.", "exits."))]
    assert slots and all(b[n] == biases[0][n] for b in biases for n in slots)
    assert not af8["res"].notes


def test_a_slot_without_a_common_bias_is_stored_fp32_with_a_note(af8, tmp_path, capsys):
    """Two tasks whose weights in one slot need different AF8 biases (tiny values vs large ones): fp32, and a note
    naming the slot and the tasks' biases."""
    tasks = [load_task(af8["paths"][t]) for t in TASK_NAMES]
    protos = [pad_heads(t, 5) for t in tasks]
    name = tasks[1].multitask["layout"]["adapters"]["ffn"]["down.weight"][0]
    init = next(i for i in protos[1].graph.initializer if i.name == name)
    big = adaptivfloat.quantize(np.full(numpy_helper.to_array(init).shape, 100.0, np.float32), 7)
    init.CopyFrom(numpy_helper.from_array(big, name))
    formats, notes = common_task_formats(tasks, protos, af8=True)
    assert len(notes) == 1 and "adapters.ffn.down.weight.0" in notes[0] and "topic 7" in notes[0], notes
    assert formats[weight_key(big)] is None
    if af8["per_depth"]:  # edgebertc prints the note (and the program still runs: fp32 weights, exact values)
        paths = [str(af8["paths"][t]) for t in TASK_NAMES]
        paths[1] = str(tmp_path / "topic.onnx")
        unpadded = onnx.load(str(af8["paths"]["topic"]))
        next(i for i in unpadded.graph.initializer if i.name == name).CopyFrom(numpy_helper.from_array(big, name))
        onnx.save(unpadded, paths[1])
        thr = [f"--task-threshold={t}={af8['thr'][t]!r}" for t in TASK_NAMES]
        assert compiler_cli.main([*paths, *thr, "-o", str(tmp_path / "multi.ebin")]) == 0
        err = capsys.readouterr().err
        assert "edgebertc: note: task weight slot adapters.ffn.down.weight.0: no AF8 bias" in err
        x = af8["xs"]["sentiment"][0]  # sentiment's weights did not change: same answer, fp32 matmul arithmetic
        got = Runner(load_ebin(tmp_path / "multi.ebin")).run(x, task="sentiment")
        want = Runner(af8["res"].program).run(x, task="sentiment")
        assert got.exit_layer == want.exit_layer
        np.testing.assert_allclose(got.outputs["logits"], want.outputs["logits"], atol=1e-5, rtol=0)


def test_per_task_dvfs_keeps_the_outputs(af8):
    """Latency-aware DVFS per task on the AF8 program: same exit layers and logits bit for bit, every sentence
    within the target (DVFS changes time and energy, never numerics)."""
    from edgebert.compiler.dvfs_plan import LayerCycles, all_fastest_s
    from edgebert.isa.hardware import default_config

    rng = np.random.default_rng(0)
    layers = af8["mt"].config.num_hidden_layers
    calib = {t: np.abs(rng.normal(0.2 + 0.3 * k, 0.2, (200, layers))) for k, t in enumerate(TASK_NAMES)}
    paths = [af8["paths"][t] for t in TASK_NAMES]

    def build(target):
        opts = {t: EarlyExitOptions(latency_target_s=target, calibration_entropies=calib[t]) for t in TASK_NAMES}
        return compile_multitask(paths, thresholds=af8["thr"], dvfs=opts).program

    cycles = [d["dvfs_table"]["cycles"] for d in build(1.0).metadata["multitask"]["tasks"]]
    target = max(1.5 * all_fastest_s(default_config(), LayerCycles(c["prologue"], c["layer"], c["epilogue"]), 6,
                                     layers) for c in cycles)
    prog = build(target)
    switch_s = prog.metadata["multitask"]["switch_budget_s"]
    assert 0 < switch_s < 0.1 * target  # the plan keeps the longest task-switch copy in reserve
    dvfs, plain = Runner(prog), Runner(af8["res"].program)
    for t in TASK_NAMES:
        previous = TASK_NAMES[TASK_NAMES.index(t) - 1]
        for k, x in enumerate(af8["xs"][t][:4]):
            # half the sentences start with a task switch (the block copied in first), half with the task resident
            a = dvfs.run(x, task=t, resident_task=t if k % 2 else previous)
            b = plain.run(x, task=t)
            assert a.report["multitask"]["task_block_loaded"] == (k % 2 == 0)
            assert a.exit_layer == b.exit_layer and a.outputs["logits"].tobytes() == b.outputs["logits"].tobytes()
            assert a.report["seconds"] <= target * 1.001 and a.report["race_count"] == 0
