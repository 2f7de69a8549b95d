"""edgebert-sweep on a local 2-worker Ray session (one per module): rows equal direct `edgebertc` + `edgebert-emu` runs
of the same points, infeasible points are rows with reasons, an interrupted sweep resumes with only the missing points,
the Optuna strategy runs and resumes, and the output files are complete."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sweep_cases import TINY_BUILD, write_spec

from edgebert.compiler.cli import main as edgebertc
from edgebert.emulator.bench.modes import MODES
from edgebert.emulator.cli import main as edgebert_emu
from edgebert.emulator.sweep import load_spec, run_sweep
from edgebert.emulator.sweep.engine import WORKER_ENV
from edgebert.emulator.sweep.point_configs import point_configs
from edgebert.emulator.sweep.space import grid_points
from edgebert.emulator.sweep.workloads import resolve

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # every test of this module in one pytest worker: one Ray session

SPEC = """
[sweep]
name = "ci"
strategy = "grid"
[hardware]
base = "ideal-256mac"  # the sweep machinery under test; the targets are sized for this machine
[hardware.params]
"pu.lanes" = [8, 16]
"energy.leakage_mw" = [5.0, 1.0]
[compiler.params]
latency_target = ["40us"]
[run.params]
mode = ["ee+dvfs", "early-exit"]
"""
WORKLOADS = f"""
[[workloads]]
name = "trace"
{TINY_BUILD}
entropy_trace = "generated"
calibration_entropies = "generated"
threshold = 0.3

[[workloads]]
name = "npz"
{TINY_BUILD}
inputs = "generated"
calibration_entropies = "generated"
threshold = 0.3
limit = 3
"""


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": WORKER_ENV})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def full(ray_session, folder: Path):
    """The CI sweep, start to finish: 2 workloads x 2 lanes x 2 leakages x 2 modes = 16 points, 2 programs."""
    spec = load_spec(write_spec(folder, SPEC, WORKLOADS))
    return spec, run_sweep(spec, folder / "full", workers=2)


_COMPILED: dict[str, Path] = {}  # config TOML -> the .ebin edgebertc made for it


def _direct(spec, row: dict, folder: Path) -> tuple[float, float]:
    """Mean cycles and energy per sentence of the row's point through edgebertc + edgebert-emu (in-process CLIs)."""
    point = grid_points(spec)[row["point"]]
    assert point.id == row["point_id"]
    payload = resolve(spec, folder / "full" / "cache")[point.workload]
    built = Path(payload.model_path)
    text = point_configs(spec, point).run.toml_text()
    trace = built.with_suffix(".trace.txt")
    ebin = _COMPILED.get(text)
    if ebin is None:  # one edgebertc per config: the modes and workloads of a config run the same program
        hw = folder / f"hw_{row['point']}.toml"
        hw.write_text(text)
        ebin = _COMPILED[text] = folder / f"p{row['point']}.ebin"
        assert edgebertc([str(built), "-o", str(ebin), "--hw", str(hw), "--threshold", "0.3", "--latency-target",
                          "40us", "--calibration-entropies", str(trace)]) == 0
    no_exit, no_dvfs = MODES[row["mode"]]
    flags = ["--no-early-exit"] * no_exit + ["--no-dvfs"] * no_dvfs
    cycles, energy = [], []
    for k in range(row["sentences"]):
        report = folder / "r.json"
        source = (["--entropy-trace", str(trace), "--timing-only"] if point.workload == "trace"
                  else ["--inputs", str(built.with_suffix(".npz"))])
        assert edgebert_emu([str(ebin), *source, "--row", str(k), "--json", str(report), "-q", *flags]) == 0
        r = json.loads(report.read_text())
        cycles.append(r["cycles"])
        energy.append(r["energy_j"])
    return float(np.mean(cycles)), float(np.mean(energy))


def test_rows_equal_direct_edgebertc_and_edgebert_emu_runs(full, folder: Path) -> None:
    spec, summary = full
    rows = summary.rows
    assert len(rows) == 16 and summary.counts == {"ok": 16, "infeasible": 0, "error": 0}
    # one program per (lane count, leakage): with a latency target the DVFS planner weighs the energies, so they
    # are compile inputs; the modes and the two workloads (one model) share it
    assert summary.compiled == 4 and len({r["program_sha256"] for r in rows}) == 4
    for row in rows:
        want = _direct(spec, row, folder)
        assert (row["cycles_mean"], row["energy_per_sentence_j"]) == want, f"point {row['point']}"
    trace, npz = [r for r in rows if r["workload"] == "trace"], [r for r in rows if r["workload"] == "npz"]
    assert all(r["timing_only"] and r["sentences"] == 6 for r in trace)
    assert all(not r["timing_only"] and r["sentences"] == 3 for r in npz)


def test_output_files(full, folder: Path) -> None:
    spec, summary = full
    out = folder / "full"
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["point_id"] for r in table] == [r["point_id"] for r in summary.rows]
    for col in ("hw.pu.lanes", "hw.energy.leakage_mw", "compiler.latency_target", "run.mode", "cycles_mean",
                "latency_p50_s", "latency_p90_s", "latency_p99_s", "within_target", "energy_per_sentence_j",
                "energy_j.leakage", "bytes.sram.read", "area_mm2.total", "area_mm2.sram", "exit_layer_mean",
                "program_sha256", "status", "reason", "pareto.latency", "pareto.area"):
        assert col in table[0], col
    assert any(r["pareto.latency"] for r in table)
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 17 and '"point_id"' in csv[0]
    assert (out / "pareto.png").stat().st_size > 10_000
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["status"] == "complete" and doc["spec_text"] == spec.text and doc["versions"]["ray"]
    assert doc["counts"] == {"ok": 16, "infeasible": 0, "error": 0} and "git" in doc


def test_infeasible_points_are_rows_with_reasons(ray_session, folder: Path) -> None:
    body = """
[sweep]
strategy = "grid"
[hardware]
base = "ideal-256mac"  # the sweep machinery under test; the targets are sized for this machine
[hardware.params]
"pu.lanes" = [0, 16]
"memory.sram.size_bytes" = [512, 1048576]
[compiler.params]
latency_target = ["1us", "40us"]
"""
    spec = load_spec(write_spec(folder, body, name="infeasible.toml"))
    rows = run_sweep(spec, folder / "infeasible", workers=2).rows
    by = {(r["hw.pu.lanes"], r["hw.memory.sram.size_bytes"], r["compiler.latency_target"]): r for r in rows}
    assert len(rows) == 8
    for key, r in by.items():
        lanes, sram, target = key
        if lanes == 0:
            assert r["status"] == "infeasible" and "pu.lanes': must be between 1 and 4096, got 0" in r["reason"]
        elif sram == 512:
            assert r["status"] == "infeasible" and r["reason"].startswith("compile: ") and "SRAM" in r["reason"]
        elif target == "1us":
            assert r["status"] == "infeasible" and "latency target 0.001 ms unreachable" in r["reason"]
            assert r["energy_per_sentence_j"] > 0 and r["within_target"] == 0.0  # measured all the same
        else:
            assert r["status"] == "ok" and r["reason"] == ""


def test_resume_after_an_interrupt_runs_only_the_missing_points(full, folder: Path) -> None:
    spec, complete = full
    out = folder / "resumed"
    seen: list[dict] = []

    def interrupt(row: dict) -> None:
        seen.append(row)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=2, on_row=interrupt)
    first = pq.read_table(out / "results.parquet").to_pylist()  # written on the interrupt
    assert len(first) == 5 and json.loads((out / "sweep.json").read_text())["status"] == "partial"
    with pytest.raises(Exception, match="already holds sweep results: pass --resume"):
        run_sweep(spec, out, workers=2)
    summary = run_sweep(spec, out, workers=2, resume=True)
    assert summary.evaluated == 16 - 5 and len(summary.rows) == 16
    kept = {r["point_id"]: r for r in summary.rows}
    for r in first:
        assert kept[r["point_id"]]["run_s"] == r["run_s"]  # not re-run
    want = {r["point_id"]: (r["cycles_mean"], r["energy_per_sentence_j"]) for r in complete.rows}
    assert {k: (r["cycles_mean"], r["energy_per_sentence_j"]) for k, r in kept.items()} == want
    assert summary.compiled <= 4 - len({r["compile_key"] for r in first})  # the cached programs are reused
    # an error row (say a worker killed for memory) is kept by --resume, evaluated again with retry_errors
    journal = out / "results.jsonl"
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    rows[3] |= {"status": "error", "reason": "worker: killed"}
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_sweep(spec, out, workers=2, resume=True).evaluated == 0
    again = run_sweep(spec, out, workers=2, resume=True, retry_errors=True)
    assert again.evaluated == 1 and again.counts == {"ok": 16, "infeasible": 0, "error": 0}


def test_optuna_strategy_runs_and_resumes(ray_session, folder: Path) -> None:
    body = """
[sweep]
strategy = "optuna"
samples = 4
seed = 1
[hardware]
base = "ideal-256mac"  # the sweep machinery under test; the targets are sized for this machine
[hardware.params]
"pu.lanes" = [8, 16, 32]
"energy.leakage_mw" = { low = 0.5, high = 8.0 }
[compiler.params]
latency_target = ["40us"]
"""
    spec = load_spec(write_spec(folder, body, name="optuna.toml"))
    out = folder / "optuna"
    calls: list[int] = []

    def interrupt(row: dict) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=2, on_row=interrupt)
    summary = run_sweep(spec, out, workers=2, resume=True)
    rows = summary.rows
    assert summary.evaluated == 2 and len(rows) == 4
    assert all(r["status"] == "ok" and 0.5 <= r["hw.energy.leakage_mw"] <= 8.0 for r in rows)
    assert json.loads((out / "sweep.json").read_text())["strategy"] == "optuna"
