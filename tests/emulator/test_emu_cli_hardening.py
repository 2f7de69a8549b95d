"""Issue 14 regressions of edgebert-emu's boundaries: run-input files (class 2) and output paths (class 8)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgebert.emulator.cli import main
from edgebert.isa.assembler import assemble_file
from edgebert.isa.ebin import save_ebin

SEED = Path(__file__).resolve().parents[1] / "fuzz" / "seeds" / "encoder.s"
IDS = np.array([[0, 1, 2, 3, 3, 2, 1, 0]])
MASK = np.zeros((1, 8), np.float32)


@pytest.fixture(scope="module")
def prog(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("emu") / "prog.ebin"
    save_ebin(assemble_file(SEED), path)
    return path


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgebert-emu: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_valid_inputs_write_exactly_the_named_outputs_file(prog: Path, tmp_path: Path) -> None:
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS, mask=MASK)
    assert main([str(prog), "--inputs", str(inputs), "--outputs", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out").is_file() and not (tmp_path / "out.npz").exists()  # numpy.savez would add .npz
    assert set(np.load(tmp_path / "out")) == {"logits", "hidden"}


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), "an empty file"),
    (lambda p: p.write_bytes(_npy_bytes(IDS)), "a single .npy array"),
    (lambda p: p.write_bytes(b"hello, not a zip"), "not an .npz archive"),
    (lambda p: p.write_bytes(_bytes_npz(input_ids=IDS, mask=MASK)[:200]), "damaged inputs archive"),
    (lambda p: _member_zip(p, "notes.txt"), "member 'notes.txt' is not a .npy array"),
    (lambda p: _npz(p, input_ids=np.array([["a", "b"]]), mask=MASK), "<U1 array given"),
    (lambda p: _pickled(p), "holds Python objects"),
    (lambda p: _huge_header(p), "larger than the 4,294,967,296-byte limit|truncated"),
    (lambda p: _npz(p, input_ids=IDS.astype(np.float32), mask=MASK), "float32 array given, the program takes integer"),
    (lambda p: _npz(p, input_ids=IDS, mask=MASK, extra=MASK), "input 'extra' is not an input of the program"),
])
def test_bad_inputs_files_are_one_clean_error(prog: Path, tmp_path: Path, capsys, make, message) -> None:
    path = tmp_path / "in.npz"
    make(path)
    err = _error(capsys, [str(prog), "--inputs", str(path), "-q"])
    assert re.search(message, err), err


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _bytes_npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _member_zip(path: Path, member: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, b"x")


def _pickled(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        zf.writestr("mask.npy", buf.getvalue())


def _huge_header(path: Path) -> None:
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (2**40,)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mask.npy", head.getvalue() + bytes(16))


def test_row_needs_sentences(prog: Path, tmp_path: Path, capsys) -> None:
    zero_d = _npz(tmp_path / "z.npz", input_ids=np.array(3), mask=np.array(0.5, np.float32))
    assert "input 'input_ids' is a 0-d array" in _error(capsys, [str(prog), "--inputs", str(zero_d), "--row", "0"])
    stacked = _npz(tmp_path / "s.npz", input_ids=np.stack([IDS, IDS]), mask=np.stack([MASK, MASK]))
    assert main([str(prog), "--inputs", str(stacked), "--row", "1", "-q"]) == 0
    assert "holds 2 sentences" in _error(capsys, [str(prog), "--inputs", str(stacked), "--row", "2"])
    assert "numbered from 0" in _error(capsys, [str(prog), "--inputs", str(stacked), "--row", "-1"])


def test_non_utf8_entropy_trace(prog: Path, tmp_path: Path, capsys) -> None:
    trace = tmp_path / "t.txt"
    trace.write_bytes(b"\xff\xfe0.5\n")
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS, mask=MASK)
    err = _error(capsys, [str(prog), "--inputs", str(inputs), "--entropy-trace", str(trace), "--row", "0"])
    assert "entropy trace is not UTF-8 text (byte 0)" in err


@pytest.mark.parametrize(("flag", "target", "message"), [
    ("--outputs", "DIR", "is a directory"),
    ("--json", "missing/r.json", "does not exist"),
    ("--plot", "energy.xyz", "unknown image format"),
    ("--trace", "PROG", "refusing to overwrite the input file"),
    ("--json", "INPUTS", "refusing to overwrite the input file"),
])
def test_unusable_output_paths_fail_before_the_run(prog: Path, tmp_path: Path, capsys, flag, target, message) -> None:
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS, mask=MASK)
    path = {"DIR": str(tmp_path), "PROG": str(prog), "INPUTS": str(inputs)}.get(target, str(tmp_path / target))
    before = prog.read_bytes(), inputs.read_bytes()
    assert message in _error(capsys, [str(prog), "--inputs", str(inputs), flag, path, "-q"])
    assert (prog.read_bytes(), inputs.read_bytes()) == before


def test_two_outputs_on_one_path_are_refused(prog: Path, tmp_path: Path, capsys) -> None:
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS, mask=MASK)
    same = str(tmp_path / "r.json")
    assert "refusing to overwrite" in _error(capsys, [str(prog), "--inputs", str(inputs), "--json", same,
                                                      "--trace", same])


def test_unwritable_paths_are_clean_errors(prog: Path, tmp_path: Path, capsys) -> None:
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS, mask=MASK)
    assert "cannot write" in _error(capsys, [str(prog), "--inputs", str(inputs), "--json", "/proc/version", "-q"])


def test_report_is_strict_json_and_written_on_trap(prog: Path, tmp_path: Path, capsys) -> None:
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS * 5, mask=np.full((1, 8), np.nan, np.float32))
    report = tmp_path / "r.json"
    assert "gather index 5 (row 1) out of range" in _error(capsys, [str(prog), "--inputs", str(inputs), "--json",
                                                                   str(report), "-q"])
    data = json.loads(report.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data["trap"].startswith("pc 7 (gather")


def test_nan_inputs_propagate_to_the_outputs(prog: Path, tmp_path: Path) -> None:
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS, mask=np.full((1, 8), np.nan, np.float32))
    assert main([str(prog), "--inputs", str(inputs), "--outputs", str(tmp_path / "o.npz"), "-q"]) == 0
    assert np.isnan(np.load(tmp_path / "o.npz")["logits"]).all()  # never silently zeros


def test_a_device_as_entropy_trace_is_refused_after_a_bounded_read(prog: Path, tmp_path: Path, capsys) -> None:
    # Found by the cli campaign: /dev/zero has size 0 to stat(), so a stat-based limit read it without bound
    # (one C call the hang alarm cannot interrupt) until the machine ran out of memory.
    inputs = _npz(tmp_path / "in.npz", input_ids=IDS, mask=MASK)
    err = _error(capsys, [str(prog), "--inputs", str(inputs), "--entropy-trace", "/dev/zero", "--row", "0"])
    assert "entropy trace is larger than the 268,435,456-byte limit" in err
