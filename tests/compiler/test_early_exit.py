"""Early exit + latency-aware DVFS compiled from a trained compressed ALBERT, against onnxruntime + the exit rule."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgebert.compiler.cli import main as edgebertc
from edgebert.compiler.dvfs_plan import LayerCycles, all_fastest_s
from edgebert.compiler.options import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator.bench import main as bench_main
from edgebert.emulator.runner import Runner
from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, albert_config
from edgebert.frontend.models.compressed_export import export_onnx
from edgebert.frontend.models.compressed_training import TrainSettings, train
from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB, make_dataset
from edgebert.frontend.predictor import entropy_bin
from edgebert.isa.ebin import load_ebin
from edgebert.isa.errors import CompileError
from edgebert.isa.exit_rule import natural_exits
from edgebert.isa.hardware import default_config
from edgebert.isa.traces import write_entropy_trace

L, SEQ, N_SENTENCES = 4, 16, 24


def _entropy(x: np.ndarray) -> float:
    """Natural-log entropy of a logits row (float64), the exit rule's measure."""
    z = np.asarray(x, np.float64).ravel()
    z = z - z.max()
    e = np.exp(z)
    return float(np.log(e.sum()) - (z * e).sum() / e.sum())


def _exit_layer(row: np.ndarray, threshold: float) -> int:
    """1-based: the first layer whose entropy < threshold, else the last (torch_model / predict_exit_layer rule)."""
    below = np.flatnonzero(row[:-1] < threshold)
    return int(below[0]) + 1 if below.size else len(row)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny compressed ALBERT (4 layers, exit head per layer, fp32) trained briefly, its ONNX and eval data."""
    torch.set_num_threads(1)
    task = TASKS["sentiment"]
    cfg = albert_config(len(VOCAB), hidden=32, layers=L, heads=2, intermediate=64, max_positions=SEQ, dropout=0.0)
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names),
                             entropy_threshold=0.2, span_enabled=False, max_span=SEQ, span_ramp=4)
    torch.manual_seed(0)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=0)
    train(model, make_dataset("sentiment", 1200, SEQ, seed=0), TrainSettings(epochs=4, batch_size=64, lr=2e-3, seed=0))
    path = tmp_path_factory.mktemp("ee") / "tiny_ee.onnx"
    export_onnx(model, str(path), SEQ, threshold=0.2)
    ev = make_dataset("sentiment", N_SENTENCES, SEQ, seed=7)
    ids = np.asarray(ev.input_ids, np.int64)
    mask = np.asarray(ev.attention_mask, np.int64)
    sess = ort.InferenceSession(str(path))
    outs = [sess.run(None, {"input_ids": ids[i : i + 1], "attention_mask": mask[i : i + 1]}) for i in range(len(ids))]
    ent = np.array([[_entropy(o) for o in out] for out in outs])
    return {"path": path, "ids": ids, "mask": mask, "outs": outs, "ent": ent}


def _threshold(ent: np.ndarray) -> float:
    """A threshold in the widest gap between recorded entropies that gives at least 3 (else 2) distinct exits."""
    vals = np.unique(ent[:, :-1])
    best, best_key = None, None
    for lo, hi in zip(vals[:-1], vals[1:], strict=True):
        t = (lo + hi) / 2
        distinct = len({_exit_layer(r, t) for r in ent})
        key = (min(distinct, 3), hi - lo)
        if distinct >= 2 and (best_key is None or key > best_key):
            best, best_key = t, key
    assert best is not None
    return float(best)


def test_exit_layers_and_logits_match_onnxruntime(trained):
    ent, outs = trained["ent"], trained["outs"]
    thr = _threshold(ent)
    want = [_exit_layer(r, thr) for r in ent]
    assert len(set(want)) >= 2, want
    result = compile_onnx(trained["path"], early_exit=EarlyExitOptions(threshold=thr))
    prog = result.program
    assert [o["name"] for o in prog.metadata["outputs"]] == ["logits"]
    assert prog.metadata["early_exit"]["threshold"] == thr and prog.metadata["thresholds"] == [thr]
    assert prog.metadata["early_exit"]["layout"] == "looped"
    assert sum(i.mnemonic == "bexit" for i in prog.code) == 1  # inside the one layer loop
    assert sum(i.mnemonic == "entropy" for i in prog.code) == 1
    runner = Runner(prog)
    got, errs = [], []
    for i in range(len(want)):
        res = runner.run({"input_ids": trained["ids"][i : i + 1], "attention_mask": trained["mask"][i : i + 1]},
                         check_races=i < 2)
        assert not res.report["race_count"]  # None when not checked
        got.append(res.exit_layer)
        errs.append(np.abs(res.outputs["logits"] - outs[i][want[i] - 1]).max())
    assert got == want
    assert max(errs) <= 1e-4


def test_model_threshold_is_the_default(trained):
    prog = compile_onnx(trained["path"], early_exit=True).program
    assert prog.metadata["early_exit"]["threshold"] == pytest.approx(0.2)
    bexits = [i for i in prog.code if i.mnemonic == "bexit"]
    assert len(bexits) == 1


@pytest.fixture(scope="module")
def dvfs_program(trained, tmp_path_factory):
    """Compiled with calibration entropies (the ORT entropies) and a target 1.5x the all-fastest L-layer time."""
    d = tmp_path_factory.mktemp("dvfs")
    cal = d / "cal.txt"
    rng = np.random.default_rng(0)
    write_entropy_trace(cal, np.abs(rng.normal(0.35, 0.2, (300, L))))
    ebin = d / "tiny_dvfs.ebin"
    # first compile to learn the cycles, then the target (the plan only depends on the measured cycles)
    probe = compile_onnx(trained["path"], early_exit=EarlyExitOptions(0.3, 1.0, calibration_entropies=cal)).program
    hw = default_config()
    c = probe.metadata["dvfs_table"]["cycles"]
    cycles = LayerCycles(c["prologue"], c["layer"], c["epilogue"])
    target = 1.5 * all_fastest_s(hw, cycles, 6, L)
    rc = edgebertc([str(trained["path"]), "--threshold", "0.3", "--latency-target", f"{target!r}s",
                    "--calibration-entropies", str(cal), "-o", str(ebin)])
    assert rc == 0
    return {"program": load_ebin(ebin), "ebin": ebin, "target": target, "cal": cal, "cycles": cycles, "hw": hw}


def test_dvfs_plan_in_metadata(dvfs_program):
    meta = dvfs_program["program"].metadata
    plan = meta["dvfs_table"]
    assert plan["num_layers"] == L and len(plan["exit_table"]) == 100 and len(plan["point_table"]) == L + 1
    assert meta["latency_target_s"] == pytest.approx(dvfs_program["target"], rel=1e-12)
    assert meta["thresholds"] == [0.3] and "exit_layer" in meta
    assert min(plan["exit_table"]) >= 2 and max(plan["exit_table"]) <= L
    assert any(p != plan["fastest"] for p in plan["point_table"][2:])  # the target leaves slack to slow down


def _entropies_for(exit_layer: int, layer1: float) -> list[float]:
    """Injected entropies: layer 1 = layer1 (sets the bin); exit after `exit_layer` (0.0 there, 5.0 before)."""
    ent = [layer1] + [5.0] * (L - 2)
    if exit_layer < L:
        ent[exit_layer - 1] = 0.0
    return ent


def test_latency_target_met_and_switch_after_layer1(dvfs_program):
    prog, hw, target = dvfs_program["program"], dvfs_program["hw"], dvfs_program["target"]
    plan = prog.metadata["dvfs_table"]
    runner = Runner(prog, hw)
    bins_by_p = {int(p): b for b, p in enumerate(plan["exit_table"]) if b >= 31}  # above the threshold 0.3
    checked = 0
    for p, b in sorted(bins_by_p.items()):
        layer1 = b / 100.0 + 0.001
        assert int(entropy_bin(layer1)) == b
        for e in range(2, L + 1):
            res = runner.run(entropy_values=_entropies_for(e, layer1), timing_only=True)
            fast = runner.run(entropy_values=_entropies_for(e, layer1), timing_only=True, disable_dvfs=True)
            rep = res.report
            assert res.exit_layer == e
            assert fast.report["seconds"] <= target  # the all-fastest program meets the target ...
            assert rep["seconds"] <= target * 1.001  # ... so the DVFS program does too
            points = [s["point"] for s in rep["dvfs"]]
            # reset point, the layer-1 point, the prediction's point after layer 1, the recovery point if low
            want = [hw.dvfs.initial]
            for x in (plan["layer1_point"], plan["point_table"][p], *([plan["recovery_table"][p]] if e > p else [])):
                if x != want[-1]:
                    want.append(x)
            assert points == want
            checked += 1
    assert checked >= 3


def test_low_prediction_recovers(dvfs_program):
    """Layer-1 entropy in a bin predicting an early exit, then high entropies: the program runs all L layers,
    switches to the recovery point at the predicted layer and still meets the target."""
    prog, target = dvfs_program["program"], dvfs_program["target"]
    plan = prog.metadata["dvfs_table"]
    lows = [b for b, p in enumerate(plan["exit_table"]) if p < L and b >= 31]
    assert lows, "the calibration table predicts no early layer"
    b = lows[0]
    p = plan["exit_table"][b]
    res = Runner(prog).run(entropy_values=[b / 100 + 0.001] + [5.0] * (L - 2), timing_only=True)
    assert res.exit_layer == L
    points = [s["point"] for s in res.report["dvfs"]]
    assert points[-1] == plan["recovery_table"][p]
    assert len(points) >= 2
    assert res.report["seconds"] <= target * 1.001


def test_bench_runs_the_compiled_program(dvfs_program, tmp_path):
    out = tmp_path / "bench.json"
    rc = bench_main([str(dvfs_program["ebin"]), "--entropy-trace", str(dvfs_program["cal"]), "--limit", "12",
                     "--json", str(out), "-q"])
    assert rc == 0
    r = json.loads(out.read_text())
    assert set(r["modes"]) == {"no-exit", "early-exit", "ee+dvfs", "oracle"}
    assert r["modes"]["no-exit"]["exit_layer"]["mean"] == L
    assert r["modes"]["early-exit"]["exit_layer"]["mean"] == r["modes"]["ee+dvfs"]["exit_layer"]["mean"] < L
    e = {m: s["energy_j"]["mean"] for m, s in r["modes"].items()}
    assert e["ee+dvfs"] < e["early-exit"] < e["no-exit"]
    assert r["modes"]["ee+dvfs"]["within_target"] == 1.0
    assert not r["races_first_sentence"]


def test_cli_errors(trained, tmp_path, capsys):
    plain = tmp_path / "plain.onnx"
    import onnx

    m = onnx.load(str(trained["path"]))
    del m.metadata_props[:]
    onnx.save(m, str(plain))
    assert edgebertc([str(plain), "--latency-target", "50ms", "--calibration-entropies", str(plain),
                      "-o", str(tmp_path / "x.ebin")]) == 2
    err = capsys.readouterr().err
    assert "edgebertc: error:" in err and "exit heads" in err
    assert edgebertc([str(trained["path"]), "--latency-target", "fast", "-o", str(tmp_path / "x.ebin")]) == 2
    assert "bad duration" in capsys.readouterr().err
    assert edgebertc([str(trained["path"]), "--latency-target", "50ms", "-o", str(tmp_path / "x.ebin")]) == 2
    assert "predictor" in capsys.readouterr().err
    with pytest.raises(CompileError, match="need --latency-target"):
        compile_onnx(trained["path"], early_exit=EarlyExitOptions(0.3, None, predictor_table=str(plain)))


def test_predictor_table_csv_gives_the_same_plan(trained, dvfs_program, tmp_path):
    """A lookup-table CSV (EdgeBERT format) built from the same calibration entropies gives the same tables."""
    from edgebert.frontend.predictor import build_lookup_table
    from edgebert.isa.traces import read_entropy_array as read_entropy_trace
    from edgebert.isa.traces import write_lookup_table

    csv = tmp_path / "table.csv"
    write_lookup_table(csv, build_lookup_table(read_entropy_trace(dvfs_program["cal"])))
    opts = EarlyExitOptions(0.3, dvfs_program["target"], predictor_table=csv)
    prog = compile_onnx(trained["path"], early_exit=opts).program
    want = dvfs_program["program"].metadata["dvfs_table"]
    got = prog.metadata["dvfs_table"]
    for key in ("exit_table", "point_table", "recovery_table", "cycles"):
        assert got[key] == want[key]
    bad = tmp_path / "bad.csv"
    write_lookup_table(bad, build_lookup_table(np.ones((5, L + 2))))
    with pytest.raises(Exception, match="columns"):
        compile_onnx(trained["path"], early_exit=EarlyExitOptions(0.3, 1e-3, predictor_table=bad))


def _two_level_table(layers: int, split_bin: int, low: int, high: int) -> np.ndarray:
    """A predictor table (EdgeBERT CSV format) whose bins below `split_bin` predict `low`, the rest `high`."""
    table = np.ones((100, layers - 1))
    table[:, 0] = np.arange(100) * 0.01
    for b in range(100):
        p = low if b < split_bin else high
        if p < layers:
            table[b, p - 1] = 0.0
    return table


@pytest.mark.parametrize("target", [None, "dvfs"], ids=["no-dvfs", "dvfs"])
def test_forced_policy_matches_onnxruntime_and_the_rule(trained, target):
    """EdgeBERT's forced exit: the entropy exit still happens before the predicted layer, the exit is forced at it.
    The emulator's exit layers and logits equal onnxruntime's heads + that rule, with and without DVFS."""
    ent, outs = trained["ent"], trained["outs"]
    thr = _threshold(ent)
    split = 40
    assert not np.any(np.abs(ent[:, 0] * 100 - (split - 0.5)) < 0.05), "an entropy sits on the bin edge"
    table = _two_level_table(L, split, 2, 3)
    predicted = np.where(np.rint(ent[:, 0] * 100) < split, 2, 3)
    natural = [_exit_layer(r, thr) for r in ent]
    want = [n if n == 1 else min(n, int(p)) for n, p in zip(natural, predicted, strict=True)]
    assert want != natural, "the forced exit should cut some sentences"
    latency = None
    if target == "dvfs":
        probe = compile_onnx(trained["path"], early_exit=EarlyExitOptions(thr, 1.0, table, policy="forced")).program
        c = probe.metadata["dvfs_table"]["cycles"]
        latency = 1.5 * all_fastest_s(default_config(), LayerCycles(**c), probe.metadata["dvfs_table"]["fastest"], L)
    prog = compile_onnx(trained["path"], early_exit=EarlyExitOptions(thr, latency, table, policy="forced")).program
    meta = prog.metadata["early_exit"]
    assert meta["policy"] == "forced" and meta["compare"] == "lt" and meta["layout"] == "looped"
    assert [i.mnemonic for i in prog.code].count("bexitp") == 1
    assert "recovery" not in " ".join(prog.metadata.get("dvfs_plan", []))
    runner = Runner(prog)
    for i in range(len(want)):
        res = runner.run({"input_ids": trained["ids"][i : i + 1], "attention_mask": trained["mask"][i : i + 1]},
                         check_races=i < 2)
        assert res.exit_layer == want[i], i
        assert np.abs(res.outputs["logits"] - outs[i][want[i] - 1]).max() <= 1e-4
        if latency is not None:
            assert res.report["seconds"] <= latency


def test_exit_comparison_lt_and_le(trained):
    """`--exit-compare le` (EdgeBERT's entropy unit) exits when the entropy equals the threshold, `lt` (its software)
    does not: a threshold set to a sentence's own fp32 entropy at a layer separates the two."""
    ref = compile_onnx(trained["path"], early_exit=EarlyExitOptions(threshold=1.0)).program
    runner = Runner(ref)
    logs = []
    for i in range(len(trained["ids"])):
        res = runner.run({"input_ids": trained["ids"][i : i + 1], "attention_mask": trained["mask"][i : i + 1]},
                         disable_early_exit=True, check_races=False)
        logs.append(list(res.machine.entropy_log))
    ent = np.array(logs)  # [sentences, L - 1] as the emulator computes them (fp32)
    # a sentence whose layer-2 entropy is below its layer-1 entropy: threshold = its layer-2 value
    i = next(k for k in range(len(ent)) if ent[k, 1] < ent[k, 0])
    thr = float(ent[i, 1])
    for compare, layer in (("le", 2), ("lt", None)):
        prog = compile_onnx(trained["path"], early_exit=EarlyExitOptions(threshold=thr, compare=compare)).program
        assert prog.metadata["early_exit"]["compare"] == compare
        got = Runner(prog).run({"input_ids": trained["ids"][i : i + 1],
                                "attention_mask": trained["mask"][i : i + 1]}, check_races=False).exit_layer
        rule = natural_exits(np.c_[ent, np.zeros(len(ent))], thr, compare)
        assert got == rule[i]
        assert (got == layer) if layer else (got != 2)


def test_policy_and_planner_option_errors(trained, tmp_path, capsys):
    path = str(trained["path"])
    assert edgebertc([path, "--exit-policy", "forced", "-o", str(tmp_path / "x.ebin")]) == 2
    assert "needs a predictor" in capsys.readouterr().err
    assert edgebertc([path, "--early-exit", "--dvfs-planner", "bins", "-o", str(tmp_path / "x.ebin")]) == 2
    assert "--dvfs-planner needs --latency-target" in capsys.readouterr().err
    assert edgebertc([path, path, "--exit-policy", "forced", "-o", str(tmp_path / "m.ebin")]) == 2
    assert "not supported for multi-task programs" in capsys.readouterr().err
    with pytest.raises(CompileError, match="--exit-policy: unknown value 'sometimes'"):
        compile_onnx(path, early_exit=EarlyExitOptions(0.3, policy="sometimes"))
    with pytest.raises(CompileError, match="calibration entropies .* or --dvfs-bins-scale"):
        table = _two_level_table(L, 40, 2, 3)
        compile_onnx(path, early_exit=EarlyExitOptions(0.3, 1.0, table, planner="bins"))


@pytest.mark.parametrize("policy", ["recover", "forced"])
def test_retarget_equals_a_fresh_compile(trained, dvfs_program, policy):
    """Planning a compiled program again for another target (what a sweep does per target) gives the bytes a compile
    for that target gives: the code does not depend on the target."""
    from edgebert.compiler.early_exit import retarget
    from edgebert.isa.ebin import write_ebin

    target, cal = dvfs_program["target"], dvfs_program["cal"]
    first = compile_onnx(trained["path"], early_exit=EarlyExitOptions(0.3, target, calibration_entropies=cal,
                                                                      policy=policy)).program
    for factor in (0.9, 2.0):
        opts = EarlyExitOptions(0.3, target * factor, calibration_entropies=cal, policy=policy)
        fresh = compile_onnx(trained["path"], early_exit=opts).program
        moved, plan = retarget(first, default_config(), target * factor, opts)
        assert write_ebin(moved) == write_ebin(fresh)
        assert plan.target_s == target * factor
    assert first.metadata["latency_target_s"] == target  # the original is left as it was
