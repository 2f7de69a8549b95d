"""edgebert-bench end to end: three modes on the same sentences, JSON, plot, entropy replay and real inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from compiled_ee import compile_planned, export_compressed, reference_exit_layers, sentences

from edgebert.emulator.bench import main
from edgebert.frontend.predictor import predicted_exit_layers
from edgebert.isa.ebin import load_ebin, save_ebin
from edgebert.isa.traces import read_lookup_table

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "edgebert-sst2"
needs_data = pytest.mark.skipif(not (DATA / "sst2_eval_entropy.txt").exists(), reason="shared data absent")
LAYERS, THRESHOLD = 4, 0.2
TRACE = [
    [0.1, 0.5, 0.5, 0.5],
    [0.5, 0.1, 0.5, 0.5],
    [0.3, 0.5, 0.5, 0.5],
    [0.9, 0.5, 0.1, 0.5],
    [0.4, 0.3, 0.25, 0.15],
    [0.6, 0.6, 0.6, 0.6],
]


def _rule(row: list[float], threshold: float) -> int:
    return next((i + 1 for i, h in enumerate(row) if h < threshold), len(row))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_compressed(tmp_path_factory.mktemp("bench") / "tiny.onnx", LAYERS, THRESHOLD)


@pytest.fixture(scope="module")
def tiny_ebin(tiny_onnx: Path) -> Path:
    """edgebertc --threshold 0.2 --latency-target (1.5x all-fastest) on a 4-layer compressed model."""
    exits = np.repeat(np.array([2, 3, 4, 4], dtype=np.int32), 25)
    path = tiny_onnx.with_suffix(".ebin")
    save_ebin(compile_planned(tiny_onnx, THRESHOLD, exits, LAYERS, 1.5), path)
    return path


def test_entropy_replay_json_and_plot(tiny_ebin: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("".join(", ".join(f" {x}" for x in row) + "\n" for row in TRACE))
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    assert main([str(tiny_ebin), "--entropy-trace", str(trace), "--limit", "5", "--json", str(out),
                 "--plot", str(png), "-q"]) == 0
    r = json.loads(out.read_text())
    assert {"modes", "savings", "paper_savings", "sentences", "latency_target_s", "per_sentence", "hw"} <= set(r)
    target = load_ebin(tiny_ebin).metadata["dvfs_table"]["target_s"]
    assert r["sentences"] == 5 and r["timing_only"] is True and r["latency_target_s"] == target
    assert list(r["modes"]) == ["no-exit", "early-exit", "ee+dvfs", "oracle"]
    for mode in r["modes"].values():
        assert {"p50", "p90", "p99", "mean", "max"} <= set(mode["latency_s"])
        assert mode["energy_j"]["mean"] > 0 and 0 <= mode["within_target"] <= 1
    per = r["per_sentence"]
    assert per["no-exit"]["exit_layer"] == [4] * 5
    want = [_rule(row, THRESHOLD) for row in TRACE[:5]]
    assert per["early-exit"]["exit_layer"] == want == per["ee+dvfs"]["exit_layer"] == per["oracle"]["exit_layer"]
    assert r["modes"]["early-exit"]["exit_layer"]["histogram"] == {"1": 1, "2": 1, "3": 1, "4": 2}
    # early exit saves energy; DVFS saves more at the cost of latency (same exits)
    e = {m: r["modes"][m]["energy_j"]["mean"] for m in r["modes"]}
    assert e["no-exit"] > e["early-exit"] > e["ee+dvfs"]
    s = r["savings"]
    assert s["vs_no_exit"]["mean"] == pytest.approx(e["no-exit"] / e["ee+dvfs"])
    assert s["vs_early_exit"]["mean"] == pytest.approx(e["early-exit"] / e["ee+dvfs"])
    ratios = np.array(per["no-exit"]["energy_j"]) / np.array(per["ee+dvfs"]["energy_j"])
    assert s["vs_no_exit"]["up_to"] == pytest.approx(ratios.max()) and s["vs_no_exit"]["up_to_sentence"] == \
        int(ratios.argmax())
    assert s["vs_oracle"]["mean"] == pytest.approx(e["ee+dvfs"] / e["oracle"])
    assert r["modes"]["ee+dvfs"]["within_target"] == r["modes"]["oracle"]["within_target"] == 1.0
    assert png.stat().st_size > 1000


def test_real_inputs_full_runs(tiny_onnx: Path, tiny_ebin: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    xs = sentences(3)
    npz = tmp_path / "in.npz"
    np.savez(npz, **{k: np.concatenate([x[k] for x in xs]) for k in xs[0]})  # [sentences, seq] per input
    out = tmp_path / "r.json"
    assert main([str(tiny_ebin), "--inputs", str(npz), "--limit", "2", "--json", str(out),
                 "--latency-target", "1ms"]) == 0
    r = json.loads(out.read_text())
    assert r["sentences"] == 2 and r["timing_only"] is False and r["latency_target_s"] == 1e-3
    want = reference_exit_layers(tiny_onnx, xs[:2], THRESHOLD)  # the exit rule on onnxruntime's heads
    assert r["per_sentence"]["early-exit"]["exit_layer"] == r["per_sentence"]["ee+dvfs"]["exit_layer"] == want
    assert r["per_sentence"]["no-exit"]["exit_layer"] == [LAYERS] * 2
    assert r["modes"]["ee+dvfs"]["within_target"] == 1.0
    printed = capsys.readouterr().out
    assert "ee+dvfs" in printed and "paper: 7x" in printed


def test_errors(tiny_ebin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_ebin), "--entropy-trace", str(tmp_path / "none.txt"), "-q"]) == 2
    trace = tmp_path / "t.txt"
    trace.write_text("0.5, 0.5\n")  # fewer entropies than exits: the replay runs out
    assert main([str(tiny_ebin), "--entropy-trace", str(trace), "-q"]) == 2
    assert main([str(tiny_ebin), "--entropy-trace", str(trace), "--latency-target", "fast", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("edgebert-bench: error:") == 3 and "Traceback" not in err
    good = tmp_path / "g.txt"
    good.write_text("0.5, 0.5, 0.5, 0.5\n")
    assert main([str(tiny_ebin), "--entropy-trace", str(good), "--threshold", "0.2", "-q"]) == 2
    assert "--threshold is a compile option" in capsys.readouterr().err
    assert main([str(tiny_ebin), "--entropy-trace", str(good), "--latency-target", "1ms,2ms", "-q"]) == 2
    assert "need the ONNX model" in capsys.readouterr().err
    assert main([str(tiny_ebin.with_suffix(".onnx")), "--entropy-trace", str(good), "-q"]) == 2
    assert "a sweep needs --latency-target" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_ebin)])  # an input source is required


@needs_data
def test_sst2_replay_on_a_compiled_12_layer_model(tmp_path: Path) -> None:
    """The real trace (first 25 sentences) and the authors' lookup table through a compiled 12-layer program with
    early exit at 0.23 and DVFS for a target 1.6x the all-fastest latency (ALBERT-base at 50 ms is 1.56x)."""
    onnx = export_compressed(tmp_path / "l12.onnx", 12, 0.23)
    table = read_lookup_table(DATA / "sst2_lookup_table.csv")
    program = compile_planned(onnx, 0.23, predicted_exit_layers(table, 0.23, 12), 12, 1.6)
    assert program.metadata["early_exit"]["layout"] == "looped"
    ebin = tmp_path / "l12.ebin"
    save_ebin(program, ebin)
    out = tmp_path / "r.json"
    assert main([str(ebin), "--entropy-trace", str(DATA / "sst2_eval_entropy.txt"), "--limit", "25",
                 "--json", str(out), "-q"]) == 0
    r = json.loads(out.read_text())
    rows = np.loadtxt(DATA / "sst2_eval_entropy.txt", delimiter=",")[:25]
    assert r["per_sentence"]["ee+dvfs"]["exit_layer"] == [_rule(list(row), 0.23) for row in rows]
    assert r["modes"]["ee+dvfs"]["within_target"] == 1.0
    assert r["savings"]["vs_no_exit"]["mean"] > r["savings"]["early_exit_vs_no_exit"]["mean"] > 1.0
    assert r["races_first_sentence"] == {}


def test_oracle_is_the_cheapest_point_meeting_the_target(tiny_ebin: Path) -> None:
    """Brute force in the emulator: every sentence run at every operating point (reset there, DVFS ignored); the
    oracle's point is the cheapest one within the target, and its energy that run's."""
    import dataclasses

    from edgebert.emulator import Runner
    from edgebert.emulator.bench import bench

    program = load_ebin(tiny_ebin)
    from edgebert.isa.hardware import default_config

    hw = default_config()
    target = program.metadata["dvfs_table"]["target_s"] * 0.8
    rows = [{"entropies": row} for row in TRACE]
    result, runs = bench(program, hw, rows, timing_only=True, target_s=target)
    for i, row in enumerate(TRACE):
        tried = []
        for x in range(len(hw.dvfs.points)):
            at = dataclasses.replace(hw, dvfs=dataclasses.replace(hw.dvfs, initial=x))
            rep = Runner(program, at).run(entropy_values=row, timing_only=True, disable_dvfs=True).report
            tried.append((rep["energy_j"], rep["seconds"], x))
        meeting = [t for t in tried if t[1] <= target] or [min(tried, key=lambda t: t[1])]
        energy, seconds, x = min(meeting)
        assert runs["oracle"][i].points == [x]
        assert runs["oracle"][i].energy_j == pytest.approx(energy, rel=1e-12)
        assert runs["oracle"][i].latency_s == pytest.approx(seconds, rel=1e-12)
    assert result["modes"]["oracle"]["within_target"] == 1.0  # 0.8 x the plan's target: every exit still fits


def test_accuracy_of_the_exits_with_labels(tiny_onnx: Path, tiny_ebin: Path, tmp_path: Path) -> None:
    """An .npz with a `labels` array: each mode's accuracy is its exits' argmax against the labels, as onnxruntime's
    heads + the exit rule give it."""
    import onnxruntime as ort

    from edgebert.frontend.models.synthetic_tasks import make_dataset

    data = make_dataset("sentiment", 6, 16, seed=7)
    npz = tmp_path / "in.npz"
    np.savez(npz, input_ids=data.input_ids.astype(np.int64), attention_mask=data.attention_mask.astype(np.int64),
             labels=data.labels)
    out = tmp_path / "r.json"
    assert main([str(tiny_ebin), "--inputs", str(npz), "--json", str(out), "-q"]) == 0
    r = json.loads(out.read_text())
    xs = sentences(6)
    exits = reference_exit_layers(tiny_onnx, xs, THRESHOLD)
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    heads = [sess.run(None, x) for x in xs]
    right = [int(np.argmax(h[e - 1])) == int(y) for h, e, y in zip(heads, exits, data.labels, strict=True)]
    last = [int(np.argmax(h[-1])) == int(y) for h, y in zip(heads, data.labels, strict=True)]
    assert r["per_sentence"]["early-exit"]["correct"] == right == r["per_sentence"]["ee+dvfs"]["correct"]
    assert r["modes"]["early-exit"]["accuracy"] == pytest.approx(np.mean(right))
    assert r["modes"]["no-exit"]["accuracy"] == pytest.approx(np.mean(last))
    assert r["modes"]["oracle"]["accuracy"] == r["modes"]["ee+dvfs"]["accuracy"]


def test_sweep_of_targets_thresholds_and_policies(tiny_onnx: Path, tmp_path: Path) -> None:
    """`edgebert-bench model.onnx` with two targets and both policies: one compile per (threshold, policy), cached;
    the forced policy exits at min(natural, predicted) (the rule, applied to the trace), within the target; the JSON
    carries savings.{vs_no_exit,vs_early_exit}.{mean,up_to}, savings.vs_oracle.mean and the best."""
    from compiled_ee import predictor_for

    from edgebert.isa.traces import write_entropy_trace, write_lookup_table

    exits = np.repeat(np.array([2, 3, 4, 4], dtype=np.int32), 25)
    csv, trace = tmp_path / "table.csv", tmp_path / "trace.txt"
    write_lookup_table(csv, predictor_for(exits, LAYERS))
    write_entropy_trace(trace, np.array(TRACE))
    out, cache, svg = tmp_path / "s.json", tmp_path / "cache", tmp_path / "s.svg"
    args = [str(tiny_onnx), "--entropy-trace", str(trace), "--latency-target", "1.3x,3x", "--threshold", "0.35",
            "--exit-policy", "recover", "--exit-policy", "forced", "--predictor-table", str(csv),
            "--calibration-entropies", str(trace), "--cache", str(cache), "--json", str(out), "--plot", str(svg),
            "--per-sentence", "-q"]
    assert main(args) == 0
    r = json.loads(out.read_text())
    assert len(r["runs"]) == 4 and len(list(cache.glob("*.ebin"))) == 2
    for run in r["runs"]:
        s = run["savings"]
        assert {"mean", "up_to"} <= set(s["vs_no_exit"]) and {"mean", "up_to"} <= set(s["vs_early_exit"])
        assert s["vs_oracle"]["mean"] >= 0.999
        assert run["modes"]["ee+dvfs"]["within_target"] == 1.0
        natural = [_rule(row, run["threshold"]) for row in TRACE]
        predicted = [int(exits[min(99, int(np.rint(row[0] * 100)))]) for row in TRACE]
        want = natural if run["policy"] == "recover" else \
            [e if e == 1 else min(e, p) for e, p in zip(natural, predicted, strict=True)]
        assert run["per_sentence"]["ee+dvfs"]["exit_layer"] == want
    assert set(r["best"]) == {"recover", "forced"}
    assert r["best"]["forced"]["vs_no_exit"]["mean"] == max(x["savings"]["vs_no_exit"]["mean"] for x in r["runs"]
                                                           if x["policy"] == "forced")
    assert svg.read_text().startswith("<?xml")
    from edgebert.emulator.bench.sweep_plots import main as plot_main

    again = tmp_path / "again.svg"
    assert plot_main([str(out), str(again)]) == 0 and again.read_bytes() == svg.read_bytes()  # from the JSON, same bytes
    assert main(args) == 0  # the second time from the cache


def test_sweep_in_worker_processes_gives_the_same_result(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    """`run_sweep(executor=...)` (`edgebert-bench model.onnx --jobs N`, bench_sst2_compiled.py --jobs N): the
    (threshold, policy) pairs in spawned worker processes give the serial sweep's result, number for number and in
    the same order; --jobs with a compiled program or below 1 is one clear error."""
    from edgebert.compiler.options import EarlyExitOptions
    from edgebert.emulator.bench import SweepConfig, run_sweep
    from edgebert.emulator.bench.policy_sweep import worker_pool
    from edgebert.isa.errors import EdgebertError
    from edgebert.isa.hardware import load_config
    from edgebert.isa.traces import write_entropy_trace

    hw = load_config()
    trace = [{"entropies": row} for row in TRACE]
    cfg = SweepConfig([0.35, 0.2], ["1.3x", "3x"], EarlyExitOptions(calibration_entropies=np.array(TRACE)),
                      ("recover", "forced"), tmp_path / "cache")
    serial = run_sweep(tiny_onnx, hw, trace, cfg, timing_only=True)
    with worker_pool(2) as pool:
        parallel = run_sweep(tiny_onnx, hw, trace, cfg, timing_only=True, executor=pool)
    assert len(serial["runs"]) == 8
    for r in (serial, parallel):
        r.pop("wall_seconds")
    assert json.dumps(parallel, sort_keys=True) == json.dumps(serial, sort_keys=True)
    with pytest.raises(EdgebertError, match="--jobs must be at least 1"), worker_pool(0):
        pass
    trace_file = tmp_path / "trace.txt"
    write_entropy_trace(trace_file, np.array(TRACE))
    assert main([str(tmp_path / "p.ebin"), "--entropy-trace", str(trace_file), "--jobs", "2", "-q"]) == 2
    assert "--jobs runs a sweep in parallel: give the ONNX model" in capsys.readouterr().err


def _too_small() -> None:
    from edgebert.compiler.errors import SramTooSmall

    raise SramTooSmall("op", "a block", 100, 50, 0)


def test_worker_errors_come_back_as_picklable_edgebert_errors() -> None:
    """An error with its own constructor raised in a sweep worker (SramTooSmall) would not unpickle in the parent and
    would break the pool: `in_worker` sends its message as a plain EdgebertError."""
    import pickle

    from edgebert.emulator.bench.policy_sweep import in_worker
    from edgebert.isa.errors import EdgebertError

    with pytest.raises(EdgebertError, match="SRAM too small: op 'op'") as info:
        in_worker(_too_small)
    assert type(pickle.loads(pickle.dumps(info.value))) is EdgebertError


def test_bench_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    """`--json` or `--plot` naming an input file is refused before the run (the input survives)."""
    from edgebert.emulator.bench import main

    trace = tmp_path / "trace.txt"
    trace.write_text("0.1, 0.2\n")
    assert main(["missing.ebin", "--entropy-trace", str(trace), "--json", str(trace)]) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err
    assert trace.read_text() == "0.1, 0.2\n"
