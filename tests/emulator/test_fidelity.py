"""The emulator's cycles against the authors' SystemC model of EdgeBERT (issue 12's bar: matrix jobs within 5 %,
everything else within 10 %), on its measured table and on shapes the table does not hold."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edgebert.emulator.fidelity import (
    UNITS,
    FidelityError,
    closed_form_jobs,
    compare,
    max_errors,
    read_jobs,
    reference_cycles,
    summary_line,
    within_bounds,
)
from edgebert.isa.hardware import load_config

ROOT = Path(__file__).resolve().parents[2]
CYCLES_CSV = ROOT / ".." / "shared" / "data" / "edgebert-cmod" / "cycles.csv"
needs_csv = pytest.mark.skipif(not CYCLES_CSV.is_file(), reason="../shared/data/edgebert-cmod is not on this machine")
HEADER = "unit,job,n0,m,n1,nv,nt,sparse_density,cycles,testbench,notes\n"


@pytest.fixture(scope="module")
def cmod():
    return load_config("edgebert-cmod")


@needs_csv
def test_measured_table_within_the_bar(cmod) -> None:
    jobs = read_jobs(CYCLES_CSV)
    assert {j.unit for j in jobs} == set(UNITS) and len(jobs) > 300
    outcomes = compare(cmod, jobs)
    worst = max_errors(outcomes)
    assert within_bounds(worst), summary_line(worst)
    assert worst["pu"] < 1.0 and worst["dma"] == worst["dvfs"] == worst["entropy"] == 0.0, summary_line(worst)
    exact = sum(o.emulated == o.job.cycles for o in outcomes)
    assert exact >= 0.85 * len(outcomes)  # the residuals are the documented 1-cycle effects
    # the closed forms the README fitted are exact on the same rows: the generator below reproduces the table
    assert all(reference_cycles(j) == j.cycles for j in jobs)


@needs_csv
def test_the_idealised_machine_is_far_from_the_systemc_model() -> None:
    worst = max_errors(compare(load_config("ideal-256mac"), read_jobs(CYCLES_CSV)))
    assert not within_bounds(worst) and worst["pu"] > 40 and worst["layernorm"] > 90


def test_shapes_outside_the_table_within_the_bar(cmod) -> None:
    jobs = closed_form_jobs(280, seed=11)
    assert {j.unit for j in jobs} == set(UNITS)
    worst = max_errors(compare(cmod, jobs))
    assert within_bounds(worst), summary_line(worst)


def test_summary_line_format() -> None:
    worst = dict.fromkeys(UNITS, 0.0) | {"pu": 0.6804, "elemadd": 2.56, "dvfs": None}
    assert summary_line(worst) == (
        "max error: pu 0.7 %, layernorm 0.0 %, softmax 0.0 %, entropy 0.0 %, elemadd 2.6 %, dma 0.0 %, dvfs n/a %"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("unit,job,cycles\npu,x,3\n", "missing column"),
        (HEADER + "gpu,matmul,16,16,16,,,1.0,67,PUModule_param,\n", ":2: unknown unit 'gpu'"),
        (HEADER + "pu,matmul,16,sixteen,16,,,1.0,67,PUModule_param,\n", ":2: column 'm' is not an integer"),
        (HEADER + "pu,matmul,16,16,16,,,1.0,67,Mystery_tb,\n", ":2: unknown testbench"),
        (HEADER + "pu,matmul,16,16,16,,,1.5,67,PUModule_param,\n", ":2: sparse_density 1.5"),
        (HEADER + "dma,dma_weird_rd_16vec,,,,16,,,45,TopAccel_sweep,\n", ":2: dma job"),
    ],
)
def test_bad_tables_name_the_line(tmp_path, body: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(body)
    with pytest.raises(FidelityError, match=message):
        read_jobs(path)


def test_bench_cli_prints_rows_and_the_summary(tmp_path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("bench_fidelity", ROOT / "benchmarks" / "bench_fidelity.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = tmp_path / "t.csv"
    table.write_text(HEADER + "pu,matmul_64x64x64,64,64,64,,,1.0,2266,PUModule_param,\n"
                     "layernorm,ln,,,,8,8,,1874,SFU_param(LAT=4),\n"
                     "dma,dma_mask_rd_64vec,,,,64,,,77,TopAccel_sweep,\n"
                     "encode,encode_1vec,,,,1,,,2,Encode_param,\n")
    assert bench.main(["--csv", str(table), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 3 + 1  # header, three jobs (encode skipped), summary
    assert lines[1].split()[-3:] == ["2266", "2266", "0.0"]
    assert lines[-1] == "max error: pu 0.0 %, layernorm 0.0 %, softmax n/a %, entropy n/a %, elemadd n/a %, dma 0.0 %, dvfs n/a %"
    table.write_text(HEADER + "pu,matmul_16x16x16,16,16,16,,,1.0,50,PUModule_param,\n")
    assert bench.main(["--csv", str(table), "--check", "-q"]) == 1  # 67 emulated vs 50: beyond 5 %
    assert bench.main(["--csv", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read the job table" in capsys.readouterr().err
