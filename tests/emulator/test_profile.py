"""The report's breakdown (emulator/profile.py): per op class and per layer it adds up to the run's own totals, layers
follow loop iterations or exit branches, the roofline bound is what the cost model implies, the CSV carries it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from edgebert.emulator import run
from edgebert.emulator.profile import OP_CLASSES, check_table_covered, op_class
from edgebert.emulator.report_view import CSV_COLUMNS, csv_rows
from edgebert.emulator.run_files import write_csv
from edgebert.isa.assembler import assemble, assemble_file
from edgebert.isa.hardware import load_config
from edgebert.isa.table import INSTRUCTIONS, UNITS

ROOT = Path(__file__).resolve().parents[2]
EARLY_EXIT = ROOT / "examples" / "asm" / "early_exit.s"

UNROLLED = """
.hwdefault
.meta exit_layer, {"space": "dram", "address": 256}
.text
    ld [0x100], envm[W], rows=16, cols=16
    barrier
    matmul [0x40], [0x0], [0x100], m=1, k=16, n=16, signal=sfu
    entropy f1, [0x40], n=4, wait=pu
    li r1, 1
    bexit f1, 0.5, ee.exit
    matmul [0x40], [0x0], [0x100], m=1, k=16, n=16, signal=sfu
    entropy f1, [0x40], n=4, wait=pu
    li r1, 2
    bexit f1, 0.5, ee.exit
    matmul [0x40], [0x0], [0x100], m=4, k=16, n=16
    li r1, 3
ee.exit:
    barrier
    sw r1, dram[0x100]
    halt
.data envm, 0x0, "w"
W: .zero 1024
"""


def _check_sums(report: dict) -> None:
    """Op classes + leakage + switching = the run's energy; layers = its energy and time; unit cycles per unit."""
    b = report["breakdown"]
    e = report["energy_breakdown_j"]
    dynamic = sum(r["energy_j"] for r in b["op_classes"].values())
    assert dynamic + e["leakage"] + e["dvfs_switch"] == pytest.approx(report["energy_j"], rel=1e-12)
    for component in e:
        if component not in ("leakage", "dvfs_switch"):
            assert sum(r["energy_breakdown_j"][component] for r in b["op_classes"].values()) == pytest.approx(
                e[component], rel=1e-12, abs=1e-30)
    assert sum(r["energy_j"] for r in b["layers"]) == pytest.approx(report["energy_j"], rel=1e-12)
    assert sum(r["seconds"] for r in b["layers"]) == pytest.approx(report["seconds"], rel=1e-12)
    assert sum(r["cycles"] for r in b["layers"]) == report["cycles"]
    unit_of = {"matmul": "pu", "load": "ld", "store": "st", "control": "ctl"}
    for unit in UNITS:
        took = sum(r["unit_cycles"] for c, r in b["op_classes"].items() if unit_of.get(c, "sfu") == unit)
        assert took == report["units"][unit]["busy_cycles"], unit
    assert sum(r["instructions"] for r in b["op_classes"].values()) == report["instructions"]


def test_every_sfu_instruction_has_an_op_class() -> None:
    assert check_table_covered() == []
    assert {op_class(i.mnemonic) for i in INSTRUCTIONS} == set(OP_CLASSES)


@pytest.mark.parametrize("entropies, exit_layer", [([0.3, 0.9, 0.01, 0.9, 0.9, 0.9], 3), ([0.3] + [0.9] * 5, 6)])
def test_looped_program_layers_are_loop_iterations(entropies: list[float], exit_layer: int) -> None:
    program = assemble_file(EARLY_EXIT)
    plain = run(program, entropy_values=entropies)
    result = run(program, entropy_values=entropies, profile=True)
    assert result.exit_layer == exit_layer
    assert {k: v for k, v in result.report.items() if k != "breakdown"} == plain.report  # profiling changes nothing
    regions = [r["region"] for r in result.report["breakdown"]["layers"]]
    assert regions == ["before layer 1", *(f"layer {k}" for k in range(1, exit_layer + 1)), f"after layer {exit_layer}"]
    _check_sums(result.report)
    assert len(result.report["dvfs"]) == 2  # the lut + dvfsr switch after layer 1 (bin 2: point 4)


@pytest.mark.parametrize("entropies, exit_layer", [([0.1, 0.9], 1), ([0.9, 0.1], 2), ([0.9, 0.9], 3)])
def test_unrolled_program_layers_end_at_exit_branches(entropies: list[float], exit_layer: int) -> None:
    result = run(assemble(UNROLLED), entropy_values=entropies, profile=True)
    assert result.exit_layer == exit_layer
    layers = result.report["breakdown"]["layers"]
    assert [r["region"] for r in layers] == [*(f"layer {k}" for k in range(1, exit_layer + 1)),
                                            f"after layer {exit_layer}"]
    assert layers[0]["instructions"] == 6  # the load and barrier before the first layer count in layer 1
    assert layers[-1]["instructions"] == 3  # barrier, sw, halt
    _check_sums(result.report)


def test_roofline_of_an_ideal_matmul_is_its_compute_bound() -> None:
    ideal = load_config("ideal-256mac")
    text = EARLY_EXIT.read_text().replace(".hwdefault", f".hw {ideal.fingerprint.hex()}")
    result = run(assemble(text, str(EARLY_EXIT), EARLY_EXIT.parent), hw=ideal, entropy_values=[0.9] * 6, profile=True)
    roof = result.report["breakdown"]["roofline"]["op_classes"]
    macs = result.report["breakdown"]["op_classes"]["matmul"]["macs"]
    assert roof["matmul"]["roof_cycles"] == pytest.approx(macs / 256)  # ideal-256mac: 256 MACs per cycle
    assert roof["matmul"]["resource"] == "compute (MACs)"
    # 16x16 matmuls pay 6 fill/drain cycles each against 1 cycle of MACs: overheads bound them
    assert roof["matmul"]["attained"] < 0.5 and roof["matmul"]["bound"] == "latency/overheads"
    assert roof["load"]["resource"] == "eNVM bandwidth"


def test_csv_rows_carry_the_breakdown(tmp_path: Path) -> None:
    report = run(assemble_file(EARLY_EXIT), entropy_values=[0.9] * 6, profile=True).report
    rows = csv_rows(report)
    path = tmp_path / "r.csv"
    write_csv(path, rows, CSV_COLUMNS)
    read = list(csv.DictReader(path.open()))
    assert tuple(read[0]) == CSV_COLUMNS
    kinds = [r["kind"] for r in read]
    assert kinds.count("total") == 1 and kinds.count("layer") == 8 and "op_class" in kinds
    total = next(r for r in read if r["kind"] == "total")
    assert float(total["energy_j"]) == pytest.approx(report["energy_j"])
    layers = [r for r in read if r["kind"] == "layer"]
    assert sum(float(r["energy_j"]) for r in layers) == pytest.approx(report["energy_j"])
    assert sum(float(r["energy_leakage_j"]) for r in layers) == pytest.approx(report["energy_breakdown_j"]["leakage"])
