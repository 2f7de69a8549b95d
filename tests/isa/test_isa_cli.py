"""edgebert-as / edgebert-dis: bundled examples round trip byte for byte; errors exit 2 without a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgebert.isa import asm_cli, dis_cli
from edgebert.isa.docgen import generate_reference
from edgebert.isa.ebin import write_ebin
from edgebert.isa.encoding import make
from edgebert.isa.program import Program

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "asm").glob("*.s"))


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"tiled_matmul", "softmax_layernorm", "early_exit"}
    for path in (ROOT / "examples" / "asm").rglob("*"):
        assert path.stat().st_size <= 100_000, path


@pytest.mark.parametrize("source", EXAMPLES, ids=lambda p: p.stem)
def test_example_as_dis_as_is_byte_identical(source: Path, tmp_path: Path) -> None:
    x, y, z = tmp_path / "x.ebin", tmp_path / "y.s", tmp_path / "z.ebin"
    assert asm_cli.main([str(source), "-o", str(x)]) == 0
    assert dis_cli.main([str(x), "-o", str(y)]) == 0
    assert asm_cli.main([str(y), "-o", str(z)]) == 0
    assert x.read_bytes() == z.read_bytes()


def test_default_output_is_beside_the_source(tmp_path: Path) -> None:
    (tmp_path / "p.s").write_text("halt\n")
    assert asm_cli.main([str(tmp_path / "p.s")]) == 0
    assert (tmp_path / "p.ebin").read_bytes() == write_ebin(Program([make("halt")], hw_fingerprint=_default_fp()))


def _default_fp() -> bytes:
    from edgebert.isa.hardware import default_config

    return default_config().fingerprint


def test_console_scripts_in_a_subprocess(tmp_path: Path) -> None:
    source = ROOT / "examples" / "asm" / "early_exit.s"
    exe = Path(sys.executable).parent
    as_cmd = shutil.which("edgebert-as", path=str(exe)) or shutil.which("edgebert-as")
    dis_cmd = shutil.which("edgebert-dis", path=str(exe)) or shutil.which("edgebert-dis")
    if as_cmd is None or dis_cmd is None:
        pytest.skip("console scripts are not installed")
    x, z = tmp_path / "x.ebin", tmp_path / "z.ebin"
    subprocess.run([as_cmd, str(source), "-o", str(x)], check=True)
    listing = subprocess.run([dis_cmd, str(x)], check=True, capture_output=True, text=True).stdout
    (tmp_path / "y.s").write_text(listing)
    subprocess.run([as_cmd, str(tmp_path / "y.s"), "-o", str(z)], check=True)
    assert x.read_bytes() == z.read_bytes()
    bad = subprocess.run([dis_cmd, str(source)], capture_output=True, text=True)
    assert bad.returncode == 2 and "wrong magic" in bad.stderr and "Traceback" not in bad.stderr


def _ebin(tmp_path: Path) -> bytes:
    path = tmp_path / "ok.ebin"
    assert asm_cli.main([str(ROOT / "examples" / "asm" / "softmax_layernorm.s"), "-o", str(path)]) == 0
    return path.read_bytes()


ASM_ERRORS = {
    "unknown mnemonic": ("  frobnicate r1, r2\n", "p.s:1:3: unknown mnemonic 'frobnicate'"),
    "field out of range": ("ld [0], dram[0], rows=99999\n", "p.s:1:18: 'ld' field 'rows': value 99999 does not fit"),
    "undefined label": ("nop\njmp nowhere\n", "p.s:2:5: undefined name 'nowhere'"),
}


@pytest.mark.parametrize("case", sorted(ASM_ERRORS))
def test_assembler_errors_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, message = ASM_ERRORS[case]
    (tmp_path / "p.s").write_text(text)
    assert asm_cli.main([str(tmp_path / "p.s"), "-o", str(tmp_path / "p.ebin")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgebert-as: error: ") and message in err and "^" in err and "Traceback" not in err
    assert not (tmp_path / "p.ebin").exists()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1 :]


DIS_ERRORS = {
    "truncated file": (lambda d: d[:-7], "truncated file"),
    "flipped byte": (lambda d: _flip(d, len(d) - 100), "checksum mismatch"),
    "wrong magic": (lambda d: b"ZBIN" + d[4:], "wrong magic"),
}


@pytest.mark.parametrize("case", sorted(DIS_ERRORS))
def test_disassembler_errors_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mutate, message = DIS_ERRORS[case]
    path = tmp_path / "bad.ebin"
    path.write_bytes(mutate(_ebin(tmp_path)))
    capsys.readouterr()
    assert dis_cli.main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"edgebert-dis: error: {path}: offset 0x") and message in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_missing_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert asm_cli.main([str(tmp_path / "none.s")]) == 2
    assert dis_cli.main([str(tmp_path / "none.ebin")]) == 2
    err = capsys.readouterr().err
    assert "edgebert-as: error:" in err and "edgebert-dis: error:" in err and "Traceback" not in err


def test_isa_reference_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "isa.md").read_text() == generate_reference(), (
        "run: python -m edgebert.isa.docgen -o docs/isa.md"
    )
