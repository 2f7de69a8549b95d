"""Multi-task programs: three adapter-ALBERT tasks in one .ebin vs their single-task programs and onnxruntime."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from multitask_cases import TASK_NAMES, export_tiny, sentences, task_weight_reads

from edgebert.compiler import cli as compiler_cli
from edgebert.compiler.multitask import compile_multitask, load_task, pad_heads
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator import cli as emu_cli
from edgebert.emulator.multitask import switch_cost
from edgebert.emulator.runner import Runner
from edgebert.isa import asm_cli
from edgebert.isa.disassembler import disassemble
from edgebert.isa.ebin import load_ebin, save_ebin
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import default_config, load_config

N_SENTENCES = 10


def _entropy(logits: np.ndarray) -> float:
    z = logits.reshape(-1).astype(np.float64)
    z = z - z.max()
    p = np.exp(z) / np.exp(z).sum()
    return float(-(p * np.log(p)).sum())


def _ort_outputs(path, xs):
    sess = ort.InferenceSession(str(path))
    return [sess.run(None, x) for x in xs]


def _threshold(outs: list[list[np.ndarray]]) -> float:
    """A threshold in the widest gap around the median exit-1 entropy (several exit layers, no near ties)."""
    ents = sorted(_entropy(o[0]) for o in outs)
    gaps = [(ents[i + 1] - ents[i], i) for i in range(len(ents) // 4, 3 * len(ents) // 4)]
    _, i = max(gaps)
    return (ents[i] + ents[i + 1]) / 2


def _reference_exit(outs: list[np.ndarray], thr: float) -> int:
    return next((i + 1 for i, o in enumerate(outs[:-1]) if _entropy(o) < thr), len(outs))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    out = tmp_path_factory.mktemp("mt")
    paths = export_tiny(out)
    xs = {t: sentences(t, N_SENTENCES) for t in TASK_NAMES}
    refs = {t: _ort_outputs(paths[t], xs[t]) for t in TASK_NAMES}
    thresholds = {t: _threshold(refs[t]) for t in TASK_NAMES}
    res = compile_multitask([paths[t] for t in TASK_NAMES], thresholds=thresholds)
    singles = {t: compile_onnx(paths[t], early_exit=dataclasses.replace(_ee(), threshold=thresholds[t])).program
               for t in TASK_NAMES}
    return {"dir": out, "paths": paths, "xs": xs, "refs": refs, "thr": thresholds, "res": res, "singles": singles}


def _ee():
    from edgebert.compiler.early_exit import EarlyExitOptions

    return EarlyExitOptions()


def test_weight_bytes_are_shared_plus_task_specific(case):
    res = case["res"]
    prog = res.program
    shared = sum(res.shared_bytes.values())
    assert res.weight_bytes == shared + sum(res.task_bytes.values())
    assert set(res.task_bytes) == set(TASK_NAMES) and min(res.task_bytes.values()) > 0
    # the shared part is exactly what every single-task program stores identically, once
    seg_digests = {t: {hashlib.sha256(s.data).digest() for s in p.segments} for t, p in case["singles"].items()}
    shared_segs = [s for s in prog.segments if s.name.startswith("shared.")]
    assert sum(len(s.data) for s in shared_segs) == shared
    assert all(s.space == "envm" for s in shared_segs)
    for s in shared_segs:
        assert all(hashlib.sha256(s.data).digest() in d for d in seg_digests.values()), s.name
    # three separate binaries store the backbone three times
    separate = sum(sum(len(s.data) for s in p.segments) for p in case["singles"].values())
    assert separate > res.weight_bytes + shared
    mt = prog.metadata["multitask"]
    assert mt["placement"] == "sram" and mt["task_region"]["bytes"] >= max(res.task_bytes.values())
    assert [t["name"] for t in mt["tasks"]] == TASK_NAMES


def test_one_code_path_for_all_tasks(case):
    prog = case["res"].program
    entry = prog.metadata["multitask"]["entry_instructions"]
    body = prog.code[entry:]
    # every task weight operand is addressed through the task register r14; no duplicated layer code
    assert sum(i.mnemonic == "matmul" for i in body) == sum(i.mnemonic == "matmul" for i in case["singles"]["topic"].code)
    assert any(v == 14 for i in body for k, v in i.values.items() if k.endswith("_base"))
    assert all(i.mnemonic != "bexit" for i in body) and any(i.mnemonic == "bexitr" for i in body)
    text = disassemble(prog)
    for needle in ("mt.body:", "mt.task.topic:", "task_region", "shared.", "task.valence.block"):
        assert needle in text, needle


def test_sram_placement_reads_task_weights_in_place(case):
    """SRAM placement: the matmuls read the task weights (and their bias rows) in place from the task region through
    r14; no `ld` copies them into staging (the entry block's task-switch copy is the only load of a block)."""
    prog = case["res"].program
    assert case["res"].placement == "sram"
    reads = task_weight_reads(prog)
    assert reads and all(m == "matmul" and op in ("b", "bias") and base == 14 and space == "sram"
                         for m, op, base, space in reads), reads
    mt = prog.metadata["multitask"]
    entry = prog.code[: mt["entry_instructions"]]
    assert sum(i.mnemonic == "ld" for i in entry) == len(TASK_NAMES)  # one block copy per task
    # every task weight matmul: b in SRAM at r14 + offset, row stride = the weight's row length
    weights = {e["offset"]: e["bytes"] for e in mt["task_layout"]}
    b_reads = [i for i in prog.code[mt["entry_instructions"]:] if i.mnemonic == "matmul" and i.values["b_base"] == 14]
    assert b_reads and all(i.values["b_stride"] >= i.values["n"] or i.values["k"] == 1 for i in b_reads)
    assert all(any(o <= i.values["b"] < o + n for o, n in weights.items()) for i in b_reads)
    # the eNVM placement keeps the staged code: task weight tiles `ld` from the task store
    envm = compile_multitask([case["paths"][t] for t in TASK_NAMES], thresholds=case["thr"], placement="envm")
    staged = task_weight_reads(envm.program)
    assert any(m == "ld" and space == "envm" for m, _, _, space in staged)
    assert not any(m == "matmul" for m, *_ in staged)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_each_task_matches_single_task_and_onnxruntime(case, task):
    multi = Runner(case["res"].program)
    single = Runner(case["singles"][task])
    padded = Runner(compile_onnx(pad_heads(load_task(case["paths"][task]), 5),
                                 early_exit=dataclasses.replace(_ee(), threshold=case["thr"][task])).program)
    labels = load_task(case["paths"][task]).num_labels
    exits = []
    for x, outs in zip(case["xs"][task], case["refs"][task], strict=True):
        a = multi.run(x, task=task)
        b = single.run(x)
        c = padded.run(x)
        want = _reference_exit(outs, case["thr"][task])
        assert a.exit_layer == b.exit_layer == want
        assert a.outputs["logits"].shape == (1, labels)
        np.testing.assert_allclose(a.outputs["logits"], outs[want - 1], atol=1e-4, rtol=0)
        np.testing.assert_allclose(a.outputs["logits"], b.outputs["logits"], atol=1e-6, rtol=0)
        # bit for bit with the single-task program of the same (padded-head) model
        assert np.array_equal(a.outputs["logits"], c.outputs["logits"][..., :labels])
        assert a.report["race_count"] == 0
        exits.append(want)
    assert len(set(exits)) > 1, exits  # the thresholds give several exit layers


def test_task_switch_loads_only_the_new_task_block(case):
    prog = case["res"].program
    x = case["xs"]["topic"][0]
    runner = Runner(prog)
    cold = runner.run(x, task="topic", resident_task="sentiment")
    warm = runner.run(x, task="topic", resident_task="topic")
    assert np.array_equal(cold.outputs["logits"], warm.outputs["logits"])
    block = prog.metadata["multitask"]["tasks"][1]["block"]["bytes"]
    assert cold.report["multitask"]["task_block_loaded"] and not warm.report["multitask"]["task_block_loaded"]
    assert cold.report["traffic_bytes"]["envm"]["read"] - warm.report["traffic_bytes"]["envm"]["read"] == block
    sw = switch_cost(prog, x, "topic", previous="sentiment")
    assert sw["bytes"] == block and sw["read_bytes"]["envm"] == block and sw["cycles"] > 0 and sw["energy_j"] > 0
    fp = cold.report["multitask"]["footprint"]
    assert fp["shared_bytes"]["envm"] > 0 and fp["task_region_sram_bytes"] == block
    assert set(cold.report["multitask"]["read_energy_j"]) == {"envm", "sram", "dram"}


def _sram(size: int):
    hw = load_config("ideal-256mac")  # one SRAM to resize (a buffer set is fixed)
    return dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=dataclasses.replace(
        hw.memory.sram, size_bytes=size)))


def _check_valence(case, program, hw):
    x, outs = case["xs"]["valence"][0], case["refs"]["valence"][0]
    a = Runner(program, hw).run(x, task="valence")
    want = _reference_exit(outs, case["thr"]["valence"])
    assert a.exit_layer == want and a.report["race_count"] == 0
    np.testing.assert_allclose(a.outputs["logits"], outs[want - 1], atol=1e-4, rtol=0)


def test_task_region_placement_in_small_srams(case):
    paths = [case["paths"][t] for t in TASK_NAMES]
    # 20 KiB: the first plan (peak 12.9 KB) leaves no room for the 8.4 KB task region; replanned below a reserved
    # region with smaller weight staging buffers
    hw = _sram(20480)
    first = max(compile_onnx(pad_heads(load_task(p), 5), hw=hw, early_exit=_ee()).sram_peak_bytes for p in paths)
    res = compile_multitask(paths, hw, thresholds=case["thr"], placement="sram")
    mt = res.program.metadata["multitask"]
    assert first + mt["task_region"]["bytes"] + 64 > 20480
    assert res.placement == "sram" and res.sram_peak_bytes <= mt["task_region"]["address"]
    assert {m for m, *_ in task_weight_reads(res.program)} == {"matmul"}
    _check_valence(case, res.program, hw)
    # 16 KiB: the activations alone take most of it: planned by the memory hierarchy below the task region (some
    # spilled to DRAM), the task weights still read in place from SRAM
    hw = _sram(16384)
    res = compile_multitask(paths, hw, thresholds=case["thr"], placement="sram")
    mt = res.program.metadata["multitask"]
    assert res.placement == "sram" and any("memory-hierarchy plan spills" in n for n in res.notes), res.notes
    assert res.sram_peak_bytes <= mt["task_region"]["address"]
    assert {m for m, *_ in task_weight_reads(res.program)} == {"matmul"}
    _check_valence(case, res.program, hw)
    # 8 KiB: no plan fits below the region: "sram" is a clear error, "auto" reads the blocks from eNVM
    hw = _sram(8192)
    with pytest.raises(CompileError, match=r"task-specific weights do not fit in SRAM: a task block \(\d+ bytes"):
        compile_multitask(paths, hw, thresholds=case["thr"], placement="sram")
    res = compile_multitask(paths, hw, thresholds=case["thr"])
    assert res.placement == "envm" and res.notes and res.program.metadata["multitask"]["task_region"] is None
    assert {m for m, *_ in task_weight_reads(res.program)} == {"ld"}  # recompiled with the task weights staged
    _check_valence(case, res.program, hw)


def test_models_without_a_common_backbone_are_rejected(case, tmp_path):
    other = onnx.load(str(case["paths"]["topic"]))
    for p in other.metadata_props:
        if p.key == "edgebert.multitask":
            md = json.loads(p.value)
            md["backbone_digest"] = "0" * 64
            p.value = json.dumps(md)
    with pytest.raises(CompileError, match="do not share one backbone"):
        compile_multitask([case["paths"]["sentiment"], other])


def test_equal_tensors_inside_one_task_keep_the_block_layout(case, tmp_path):
    """Two task tensors of one task with equal contents (all-zero adapter biases) are one constant in that task's
    program; the linker matches constants by operand position, so the task still gets the common block layout (the
    tensor stored twice) and its outputs equal its own single-task program."""
    from onnx import numpy_helper

    from edgebert.compiler.early_exit import EarlyExitOptions

    topic = onnx.load(str(case["paths"]["topic"]))
    layout = load_task(topic).multitask["layout"]["adapters"]
    zeroed = {layout["attention"]["up.bias"][0], layout["ffn"]["up.bias"][0]}
    for init in topic.graph.initializer:
        if init.name in zeroed:
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(init)), init.name))
    onnx.save(topic, tmp_path / "topic.onnx")
    paths = [case["paths"]["sentiment"], tmp_path / "topic.onnx", case["paths"]["valence"]]
    res = compile_multitask(paths, thresholds=case["thr"])
    assert len(set(res.task_bytes.values())) == 1 and res.weight_bytes == sum(res.shared_bytes.values()) + sum(
        res.task_bytes.values())
    single = Runner(compile_onnx(tmp_path / "topic.onnx",
                                 early_exit=EarlyExitOptions(threshold=case["thr"]["topic"])).program)
    multi = Runner(res.program)
    for x in case["xs"]["topic"][:4]:
        a, b = multi.run(x, task="topic"), single.run(x)
        assert a.exit_layer == b.exit_layer and a.report["race_count"] == 0
        np.testing.assert_allclose(a.outputs["logits"], b.outputs["logits"], atol=1e-6, rtol=0)
    x = case["xs"]["valence"][0]  # the other tasks are unaffected
    np.testing.assert_array_equal(multi.run(x, task="valence").outputs["logits"],
                                  Runner(case["res"].program).run(x, task="valence").outputs["logits"])


def test_clis(case, tmp_path, capsys):
    paths = case["paths"]
    out = tmp_path / "multi.ebin"
    argv = [str(paths["sentiment"]), str(paths["topic"]), f"valence={paths['valence']}", "-o", str(out)]
    argv += [f"--task-threshold={t}={v}" for t, v in case["thr"].items()]
    assert compiler_cli.main(argv) == 0
    prog = load_ebin(out)
    assert prog.metadata["tasks"] == TASK_NAMES
    assert prog.metadata["thresholds"] == pytest.approx([case["thr"][t] for t in TASK_NAMES])
    x = case["xs"]["topic"][1]
    np.savez(tmp_path / "in.npz", **x)
    rep = tmp_path / "r.json"
    assert emu_cli.main([str(out), "--task", "topic", "--inputs", str(tmp_path / "in.npz"), "--json", str(rep),
                         "--outputs", str(tmp_path / "o.npz")]) == 0
    text = capsys.readouterr().out
    assert "task switch to topic" in text and "footprint: shared" in text
    report = json.loads(rep.read_text())
    assert report["multitask"]["task"] == "topic" and report["task_switch"]["bytes"] > 0
    assert np.load(tmp_path / "o.npz")["logits"].shape == (1, 3)
    assert emu_cli.main([str(out), "--task", "nope", "--inputs", str(tmp_path / "in.npz")]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    # several sentences stacked on axis 0 (edgebert-bench's format): --row picks one, without it a clear error
    xs = case["xs"]["topic"][:3]
    np.savez(tmp_path / "three.npz", **{k: np.concatenate([x[k] for x in xs]) for k in xs[0]})
    assert emu_cli.main([str(out), "--task", "topic", "--inputs", str(tmp_path / "three.npz"), "--row", "1",
                         "--outputs", str(tmp_path / "o1.npz"), "-q"]) == 0
    assert np.load(tmp_path / "o1.npz")["logits"].tobytes() == np.load(tmp_path / "o.npz")["logits"].tobytes()
    assert emu_cli.main([str(out), "--task", "topic", "--inputs", str(tmp_path / "three.npz"), "-q"]) == 2
    assert "input 'input_ids' holds 3 sentences (3, 16); the program runs one (1, 16): pick it with --row K" in \
        capsys.readouterr().err
    assert emu_cli.main([str(out), "--task", "topic", "--inputs", str(tmp_path / "three.npz"), "--row", "3"]) == 2
    assert "--row 3: " in capsys.readouterr().err
    assert compiler_cli.main([str(paths["topic"]), "--task", "bad", "-o", str(tmp_path / "x.ebin")]) == 2
    # deterministic, and -S assembles back to the same bytes
    again = tmp_path / "again.ebin"
    assert compiler_cli.main([*argv[:-3], "-o", str(again), *argv[-3:]]) == 0
    assert again.read_bytes() == out.read_bytes()
    asm = tmp_path / "multi.s"
    assert compiler_cli.main([*argv[:-3], "-S", "-o", str(asm), *argv[-3:]]) == 0
    assert asm_cli.main([str(asm), "-o", str(tmp_path / "as.ebin")]) == 0
    assert (tmp_path / "as.ebin").read_bytes() == out.read_bytes()


def test_bench_compare(case):
    from edgebert.emulator.bench import compare, format_markdown

    sent = {t: case["xs"][t][:2] for t in TASK_NAMES}
    res = case["res"]
    out = compare(case["singles"], res.program, sent)
    mem = out["memory"]
    assert mem["weights_multi"] == res.weight_bytes < mem["weights_single"]
    assert mem["multi"]["envm"] < mem["single_total"]["envm"]
    st = out["stream"]
    block = res.program.metadata["multitask"]["tasks"][0]["block"]["bytes"]
    assert st["sentences"] == 6 and st["switches"] == 6 and st["bytes_loaded"] == 6 * block
    assert f"| round-robin | 6 | 6 | {6 * block:,} B |" in format_markdown(out)


def test_depth_shared_adapters_share_one_layer_loop(tmp_path):
    """Adapters shared across depths: the layers (and exit heads) run in ONE loop for every task; the heads'
    per-layer table sits in the SRAM task region, indexed by the loop's register."""
    paths = export_tiny(tmp_path, per_depth=False)
    xs = {t: sentences(t, 6, seed=11) for t in TASK_NAMES}
    refs = {t: _ort_outputs(paths[t], xs[t]) for t in TASK_NAMES}
    thr = {t: _threshold(refs[t]) for t in TASK_NAMES}
    res = compile_multitask([paths[t] for t in TASK_NAMES], thresholds=thr)
    assert res.program.metadata["early_exit"]["layout"] == "looped" and res.placement == "sram"
    runner = Runner(res.program)
    for t in TASK_NAMES:
        for x, outs in zip(xs[t], refs[t], strict=True):
            a = runner.run(x, task=t)
            want = _reference_exit(outs, thr[t])
            assert a.exit_layer == want and a.report["race_count"] == 0
            np.testing.assert_allclose(a.outputs["logits"], outs[want - 1], atol=1e-4, rtol=0)
    reads = task_weight_reads(res.program)  # the heads' table read in place at the region through r7
    assert reads and all(m == "matmul" for m, *_ in reads) and any(base == 7 for _, _, base, _ in reads)
    with pytest.raises(CompileError, match="needs the SRAM placement"):
        compile_multitask([paths[t] for t in TASK_NAMES], thresholds=thr, placement="envm")


def test_per_task_dvfs_tables(case):
    """Latency-aware DVFS per task: each task's own lookup table (its calibration entropies) and plan."""
    from edgebert.compiler.dvfs_plan import LayerCycles, all_fastest_s
    from edgebert.compiler.early_exit import EarlyExitOptions

    hw = default_config()
    rng = np.random.default_rng(0)
    L = len(case["refs"]["topic"][0])
    calib = {t: np.abs(rng.normal(0.2 + 0.3 * k, 0.2, (200, L))) for k, t in enumerate(TASK_NAMES)}
    paths = [case["paths"][t] for t in TASK_NAMES]
    # thresholds within the calibration entropies' range, so each task's table predicts several exit layers
    thr = {t: min(v, 0.9) for t, v in case["thr"].items()}

    def build(target):
        opts = {t: EarlyExitOptions(latency_target_s=target, calibration_entropies=calib[t]) for t in TASK_NAMES}
        return compile_multitask(paths, hw, thresholds=thr, dvfs=opts).program

    probe = build(1.0)
    c = [d["dvfs_table"]["cycles"] for d in probe.metadata["multitask"]["tasks"]]
    target = max(1.5 * all_fastest_s(hw, LayerCycles(x["prologue"], x["layer"], x["epilogue"]), 6, L) for x in c)
    prog = build(target)
    tasks_meta = prog.metadata["multitask"]["tasks"]
    assert prog.metadata["latency_target_s"] == pytest.approx(target, rel=1e-12)
    assert all(len(d["dvfs_table"]["point_table"]) == L + 1 for d in tasks_meta)
    assert len({tuple(d["dvfs_table"]["exit_table"]) for d in tasks_meta}) > 1  # per-task lookup tables
    runner = Runner(prog, hw)
    switched = False
    for t in TASK_NAMES:
        for x, outs in zip(case["xs"][t][:4], case["refs"][t][:4], strict=True):
            a = runner.run(x, task=t, resident_task=t)
            want = _reference_exit(outs, thr[t])
            assert a.exit_layer == want and a.report["race_count"] == 0
            np.testing.assert_allclose(a.outputs["logits"], outs[want - 1], atol=1e-4, rtol=0)
            assert a.report["seconds"] <= target * 1.001
            switched |= len(a.report["dvfs"]) > 1
    assert switched


def _bench_files(case, tmp_path, n: int = 2) -> tuple[str, list[str]]:
    """multi.ebin, the single-task binaries and one NPZ of `n` sentences per task; the --single/--inputs argv."""
    from edgebert.isa.ebin import save_ebin

    save_ebin(case["res"].program, tmp_path / "multi.ebin")
    pairs = []
    for t in TASK_NAMES:
        save_ebin(case["singles"][t], tmp_path / f"{t}.ebin")
        xs = case["xs"][t][:n]
        np.savez(tmp_path / f"{t}.npz", **{k: np.concatenate([x[k] for x in xs]) for k in xs[0]})
        pairs += ["--single", f"{t}={tmp_path / f'{t}.ebin'}", "--inputs", f"{t}={tmp_path / f'{t}.npz'}"]
    return str(tmp_path / "multi.ebin"), pairs


def test_bench_cli(case, tmp_path, capsys):
    """edgebert-bench multi.ebin --single ... --inputs ...: three single-task binaries vs the multi-task one."""
    from edgebert.emulator import bench

    multi, pairs = _bench_files(case, tmp_path)
    prog = case["res"].program
    block = prog.metadata["multitask"]["tasks"][0]["block"]["bytes"]
    assert {t["block"]["bytes"] for t in prog.metadata["multitask"]["tasks"]} == {block}  # one layout for all
    out = tmp_path / "b.json"
    assert bench.main([multi, *pairs, "--stream", "both", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| on-chip total (eNVM + SRAM) |" in printed and "| round-robin | 6 | 6 |" in printed
    assert f"round-robin stream: 6 sentences, 6 task switches (the first load included), {6 * block:,} B" in printed
    assert f"blocked stream: 6 sentences, 3 task switches (the first load included), {3 * block:,} B" in printed
    r = json.loads(out.read_text())
    assert r["tasks"] == TASK_NAMES and r["program"] == multi and r["hw"] == default_config().name
    assert r["memory"]["weights_multi"] == case["res"].weight_bytes < r["memory"]["weights_single"]
    assert r["memory"]["multi"]["envm"] < r["memory"]["single_total"]["envm"]
    rr, bl = r["streams"]["round-robin"], r["streams"]["blocked"]
    assert r["stream"] == rr and rr["kind"] == "round-robin" and bl["kind"] == "blocked"
    assert (rr["sentences"], rr["switches"], rr["bytes_loaded"]) == (6, 6, 6 * block)
    assert (bl["sentences"], bl["switches"], bl["bytes_loaded"]) == (6, 3, 3 * block)
    # the same sentences in another order: the single-task binaries cost the same; every extra switch costs
    assert rr["single_energy_j"] == pytest.approx(bl["single_energy_j"], rel=1e-12)
    assert rr["single_cycles"] == bl["single_cycles"]
    assert rr["multi_energy_j"] > bl["multi_energy_j"] and rr["multi_cycles"] > bl["multi_cycles"]
    runner = Runner(prog)
    for t in TASK_NAMES:
        want = [_reference_exit(o, case["thr"][t]) for o in case["refs"][t][:2]]
        assert r["per_task"][t]["exit_layers"] == {"single": want, "multi": want}
        assert [runner.run(x, task=t).exit_layer for x in case["xs"][t][:2]] == want
        # steady state (task resident) reads the task weights from the SRAM region: no more eNVM than one binary
        d = r["per_task"][t]
        assert d["sentences"] == 2 and d["multi"]["envm_read_bytes"] <= d["single"]["envm_read_bytes"]
    # --limit is per task, round robin by default
    assert bench.main([multi, *pairs, "--limit", "1", "--json", str(out), "-q"]) == 0
    assert capsys.readouterr().out == ""
    r = json.loads(out.read_text())
    assert list(r["streams"]) == ["round-robin"] and (r["stream"]["sentences"], r["stream"]["switches"]) == (3, 3)
    assert bench.main([multi, *pairs[:4], "--stream", "blocked", "--json", str(out), "-q"]) == 0
    r = json.loads(out.read_text())
    assert r["tasks"] == ["sentiment"] and (r["stream"]["sentences"], r["stream"]["switches"]) == (2, 1)


def test_bench_cli_one_task(case, tmp_path):
    """edgebert-bench multi.ebin --task NAME --inputs X.npz: the modes on one task, its block resident (no DVFS
    compiled: early exit + DVFS is not run, and the result says why)."""
    from edgebert.emulator import bench

    multi, _ = _bench_files(case, tmp_path, n=4)
    out = tmp_path / "t.json"
    assert bench.main([multi, "--task", "topic", "--inputs", str(tmp_path / "topic.npz"), "--json", str(out),
                       "--latency-target", "1ms", "-q"]) == 0
    r = json.loads(out.read_text())
    assert r["task"] == "topic" and r["sentences"] == 4 and r["latency_target_s"] == 1e-3
    per = r["per_sentence"]
    want = [_reference_exit(o, case["thr"]["topic"]) for o in case["refs"]["topic"][:4]]
    runner = Runner(case["res"].program)
    warm = [runner.run(x, task="topic", resident_task="topic") for x in case["xs"]["topic"][:4]]
    assert list(r["modes"]) == ["no-exit", "early-exit", "oracle"] and "no DVFS instructions" in r["notes"][0]
    assert per["early-exit"]["exit_layer"] == per["oracle"]["exit_layer"] == want == [w.exit_layer for w in warm]
    assert per["no-exit"]["exit_layer"] == [len(case["refs"]["topic"][0])] * 4
    # steady state: the task's block is resident, so no run pays for loading it
    cold = runner.run(case["xs"]["topic"][0], task="topic")
    assert per["early-exit"]["energy_j"] == pytest.approx([w.report["energy_j"] for w in warm], rel=1e-12)
    assert per["early-exit"]["cycles"][0] == warm[0].report["cycles"] < cold.report["cycles"]
    assert r["modes"]["no-exit"]["energy_j"]["mean"] > r["modes"]["early-exit"]["energy_j"]["mean"]


def test_bench_cli_errors(case, tmp_path, capsys):
    from edgebert.emulator import bench

    multi, _ = _bench_files(case, tmp_path)
    f = {t: str(tmp_path / f"{t}.ebin") for t in TASK_NAMES}
    x = {t: str(tmp_path / f"{t}.npz") for t in TASK_NAMES}
    np.savez(tmp_path / "ids_only.npz", input_ids=np.load(x["topic"])["input_ids"])
    ids_only = str(tmp_path / "ids_only.npz")
    save_ebin(compile_onnx(case["paths"]["topic"]).program, tmp_path / "no_exit.ebin")  # edgebertc without --early-exit
    no_exit = str(tmp_path / "no_exit.ebin")
    cases = [
        ([multi, "--single", f"topic={no_exit}", "--inputs", f"topic={x['topic']}"],
         "the single-task binary of task 'topic' has no early exit (the multi-task binary always has): compile it "
         "with edgebertc --early-exit"),
        ([multi, "--inputs", x["topic"]], "is a multi-task program (tasks: sentiment, topic, valence): pass --task"),
        ([f["topic"], "--single", f"topic={f['topic']}", "--inputs", f"topic={x['topic']}"],
         f"--single: {f['topic']} is not a multi-task program"),
        ([f["topic"], "--task", "topic", "--inputs", x["topic"]], f"--task: {f['topic']} is not a multi-task program"),
        ([multi, "--task", "nope", "--inputs", x["topic"]], "--task: unknown task 'nope'"),
        ([multi, "--single", f"nope={f['topic']}", "--inputs", f"nope={x['topic']}"],
         "--single: unknown task 'nope' (" + multi + " has tasks: sentiment, topic, valence)"),
        ([multi, "--single", f"topic={f['topic']}", "--inputs", f"topic={x['topic']}", "--inputs", f"bad={x['topic']}"],
         "--inputs: unknown task 'bad'"),
        ([multi, "--single", f"topic={f['topic']}", "--single", f"valence={f['valence']}", "--inputs",
          f"topic={x['topic']}"], "--inputs: no sentences for task 'valence' (give --inputs valence=NPZ)"),
        ([multi, "--single", f"topic={f['topic']}", "--inputs", f"topic={x['topic']}", "--inputs",
          f"valence={x['valence']}"], "--single: no single-task binary for task 'valence'"),
        ([multi, "--single", f"topic={f['topic']}", "--inputs", f"topic={ids_only}"],
         f"{ids_only}: no array for input 'attention_mask'"),
        ([multi, "--single", f"topic={multi}", "--inputs", f"topic={x['topic']}"],
         f"--single topic={multi}: is a multi-task program"),
        ([multi, "--single", f"topic={f['valence']}", "--inputs", f"topic={x['topic']}"],
         "task topic sentence 0: the multi-task binary disagrees with the single-task one"),
        ([multi, "--single", f["topic"], "--inputs", f"topic={x['topic']}"], "--single expects NAME=PATH"),
        ([multi, "--single", f"topic={tmp_path / 'none.ebin'}", "--inputs", f"topic={x['topic']}"], "none.ebin"),
        ([multi, "--task", "topic", "--inputs", x["topic"], "--stream", "blocked"], "--stream applies to the comparison"),
        ([multi, "--task", "topic", "--inputs", x["topic"], "--inputs", x["valence"]], "--inputs: give one .npz"),
    ]
    for argv, msg in cases:
        assert bench.main(argv) == 2, msg
        err = capsys.readouterr().err
        assert err.startswith("edgebert-bench: error: ") and msg in err and err.count("\n") == 1, (msg, err)
