"""edgebert-emu end to end: npz in/out, report JSON, trace JSON, plot, traps, fingerprint, entropy trace."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from edgebert.emulator.cli import main
from edgebert.isa.ebin import save_ebin
from edgebert.isa.encoding import make
from edgebert.isa.hardware import DEFAULT_CONFIG, bundled_config_text, default_config, load_config, parse_config_text
from edgebert.isa.program import Program
from edgebert.isa.table import SPACES, UNITS

LD, PU, SFU, ST, CTL = (1 << UNITS.index(u) for u in UNITS)
DRAM = SPACES.index("dram")
REPORT_KEYS = {
    "cycles", "seconds", "energy_j", "energy_breakdown_j", "traffic_bytes", "instructions", "instruction_mix",
    "macs", "exit_layer", "dvfs", "units", "hw", "trap", "races",
}  # fmt: skip


def _matmul_program(fingerprint: bytes | None = None) -> Program:
    code = [
        make("ld", dst=0x000, src=0x000, src_space=DRAM, rows=4, cols=8),
        make("ld", dst=0x100, src=0x400, src_space=DRAM, rows=8, cols=4, signal=PU),
        make("matmul", dst=0x200, a=0x000, b=0x100, m=4, k=8, n=4, wait=LD, signal=ST),
        make("st", dst=0x800, dst_space=DRAM, src=0x200, rows=4, cols=4, wait=PU),
        make("li", rd=1, imm=1),
        make("sw", rs=1, dst=0x900, dst_space=DRAM),
        make("halt"),
    ]
    meta = {
        "inputs": [
            {"name": "a", "space": "dram", "address": 0x000, "shape": [4, 8], "dtype": "float32"},
            {"name": "b", "space": "dram", "address": 0x400, "shape": [8, 4], "dtype": "float32"},
        ],
        "outputs": [{"name": "c", "space": "dram", "address": 0x800, "shape": [4, 4], "dtype": "float32"}],
        "exit_layer": {"space": "dram", "address": 0x900},
    }
    return Program(code, metadata=meta, hw_fingerprint=fingerprint or default_config().fingerprint)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    a, b = np.arange(32, dtype=np.float32).reshape(4, 8), np.ones((8, 4), np.float32)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    save_ebin(_matmul_program(), tmp_path / "p.ebin")
    return {name: tmp_path / name for name in ("p.ebin", "in.npz", "out.npz", "r.json", "t.json", "e.png")}


def test_cli_end_to_end(files: dict[str, Path], capsys) -> None:
    f = files
    rc = main([str(f["p.ebin"]), "--inputs", str(f["in.npz"]), "--outputs", str(f["out.npz"]), "--json",
               str(f["r.json"]), "--trace", str(f["t.json"]), "--plot", str(f["e.png"])])
    assert rc == 0
    out = capsys.readouterr().out
    assert "cycles" in out and "energy" in out
    a = np.arange(32, dtype=np.float32).reshape(4, 8)
    np.testing.assert_array_equal(np.load(f["out.npz"])["c"], a @ np.ones((8, 4), np.float32))
    report = json.loads(f["r.json"].read_text())
    assert set(report) >= REPORT_KEYS
    assert report["exit_layer"] == 1 and report["trap"] is None and report["macs"] == 128
    trace = json.loads(f["t.json"].read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {e["tid"] for e in events} == {UNITS.index(u) for u in ("ld", "pu", "st", "ctl")}
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in events)
    assert f["e.png"].stat().st_size > 1000


def test_cli_trap_writes_partial_report_and_exits_2(tmp_path: Path, capsys) -> None:
    prog = Program([make("li", rd=1, imm=1), make("jmp", target=0)], hw_fingerprint=default_config().fingerprint)
    save_ebin(prog, tmp_path / "loop.ebin")
    rc = main([str(tmp_path / "loop.ebin"), "--max-cycles", "500", "--json", str(tmp_path / "r.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("edgebert-emu: error: pc ") and "cycle budget of 500" in err and "Traceback" not in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["trap"] and report["cycles"] == 501


def test_cli_fingerprint_mismatch(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    save_ebin(_matmul_program(b"\x01" * 32), files["p.ebin"])
    assert main([str(files["p.ebin"]), "--inputs", str(files["in.npz"]), "-q"]) == 2
    err = capsys.readouterr().err
    assert "fingerprint 0101010101010101..." in err and "not bundled" in err and "--hw NAME|FILE" in err
    hw_toml = tmp_path / "hw.toml"
    hw_toml.write_text(bundled_config_text(DEFAULT_CONFIG))
    tomllib.loads(hw_toml.read_text())
    assert main([str(files["p.ebin"]), "--inputs", str(files["in.npz"]), "--hw", str(hw_toml), "-q"]) == 0
    assert "warning" in capsys.readouterr().err


def test_cli_missing_input_is_one_clear_error(files: dict[str, Path], capsys) -> None:
    np.savez(files["in.npz"], a=np.zeros((4, 8), np.float32))
    assert main([str(files["p.ebin"]), "--inputs", str(files["in.npz"]), "-q"]) == 2
    assert "input 'b' is missing" in capsys.readouterr().err


def test_cli_entropy_trace(tmp_path: Path) -> None:
    trace = tmp_path / "entropy.txt"
    trace.write_text(" 0.9,  0.8,  0.1\n 0.05,  0.5,  0.5\n")
    code = [
        make("li", rd=1, imm=0),
        make("li", rd=2, imm=1),
        make("entropy", fd=1, src=0, n=2),  # 2: loop over 3 layers
        make("addi", rd=1, rs1=1, imm=1),
        make("bexit", fs=1, threshold=int(np.array(0.2, np.float32).view(np.uint32)), target=7),
        make("li", rd=3, imm=3),
        make("blt", rs1=1, rs2=3, target=2),
        make("sw", rs=1, dst=0x10, dst_space=DRAM),  # 7: exit layer
        make("halt"),
    ]
    prog = Program(code, metadata={"exit_layer": {"space": "dram", "address": 0x10}},
                   hw_fingerprint=default_config().fingerprint)
    save_ebin(prog, tmp_path / "exit.ebin")
    for row, layer in ((0, 3), (1, 1)):
        rc = main([str(tmp_path / "exit.ebin"), "--entropy-trace", str(trace), "--row", str(row), "-q",
                   "--json", str(tmp_path / "r.json")])
        assert rc == 0
        assert json.loads((tmp_path / "r.json").read_text())["exit_layer"] == layer
    assert main([str(tmp_path / "exit.ebin"), "--entropy-trace", str(trace), "--row", "5", "-q"]) == 2


def test_cli_race_is_a_warning_or_with_race_trap_an_error(tmp_path: Path, capsys) -> None:
    code = [
        make("ld", dst=0x100, src=0x0, src_space=DRAM, rows=8, cols=8),
        make("matmul", dst=0x400, a=0x100, b=0x100, m=8, k=8, n=8),  # no wait: reads what ld writes
        make("halt"),
    ]
    save_ebin(Program(code, hw_fingerprint=default_config().fingerprint), tmp_path / "race.ebin")
    assert main([str(tmp_path / "race.ebin"), "-q"]) == 0
    assert "warning: 1 unguarded race(s); first: pc 1 (matmul" in capsys.readouterr().err
    assert main([str(tmp_path / "race.ebin"), "-q", "--race-trap"]) == 2
    assert "error: 1 unguarded race(s)" in capsys.readouterr().err


def test_cli_runs_a_program_on_the_config_it_embeds(tmp_path: Path, capsys) -> None:
    text = bundled_config_text("edgebert-cmod").replace('name = "edgebert-cmod"', 'name = "my-cmod"')
    hw = parse_config_text(text)
    code = [make("ld", dst=0, src=0, src_space=DRAM, rows=16, cols=16, dtype=3), make("halt")]
    save_ebin(Program(code, metadata={"hw_config": text}, hw_fingerprint=hw.fingerprint), tmp_path / "p.ebin")
    report = tmp_path / "r.json"
    assert main([str(tmp_path / "p.ebin"), "-q", "--json", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["hw"] == "my-cmod" and r["cycles"] == 2 * 16 + 5 + 8 + 1  # AXI: 2 cycles per 16-byte vector
    assert capsys.readouterr().err == ""
    assert main([str(tmp_path / "p.ebin"), "-q", "--hw", "ideal-256mac", "--json", str(report)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("edgebert-emu: warning: ") and hw.fingerprint.hex()[:16] in err
    assert load_config("ideal-256mac").fingerprint.hex()[:16] in err and json.loads(report.read_text())["hw"] == (
        "ideal-256mac")
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x07\x12\x07pytorch\xff")
    assert main([str(tmp_path / "p.ebin"), "-q", "--hw", str(onnx_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgebert-emu: error: ") and "model.onnx: not UTF-8 text" in err and "\n" not in err
