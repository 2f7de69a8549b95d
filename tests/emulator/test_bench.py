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
    assert list(r["modes"]) == ["no-exit", "early-exit", "ee+dvfs"]
    for mode in r["modes"].values():
        assert {"p50", "p90", "p99", "mean", "max"} <= set(mode["latency_s"])
        assert mode["energy_j"]["mean"] > 0 and 0 <= mode["within_target"] <= 1
    per = r["per_sentence"]
    assert per["no-exit"]["exit_layer"] == [4] * 5
    want = [_rule(row, THRESHOLD) for row in TRACE[:5]]
    assert per["early-exit"]["exit_layer"] == want == per["ee+dvfs"]["exit_layer"]
    assert r["modes"]["early-exit"]["exit_layer"]["histogram"] == {"1": 1, "2": 1, "3": 1, "4": 2}
    # early exit saves energy; DVFS saves more at the cost of latency (same exits)
    e = {m: r["modes"][m]["energy_j"]["mean"] for m in r["modes"]}
    assert e["no-exit"] > e["early-exit"] > e["ee+dvfs"]
    assert r["savings"]["vs_no_exit"] == pytest.approx(e["no-exit"] / e["ee+dvfs"])
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
    assert r["savings"]["vs_no_exit"] > r["savings"]["early_exit_vs_no_exit"] > 1.0
    assert r["races_first_sentence"] == {}


def test_bench_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    """`--json` or `--plot` naming an input file is refused before the run (the input survives)."""
    from edgebert.emulator.bench import main

    trace = tmp_path / "trace.txt"
    trace.write_text("0.1, 0.2\n")
    assert main(["missing.ebin", "--entropy-trace", str(trace), "--json", str(trace)]) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err
    assert trace.read_text() == "0.1, 0.2\n"
