"""Issue 14 regressions in the ISA tools: assembler limits and names (class 6), files and strict JSON (class 8)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgebert.isa import asm_cli, dis_cli
from edgebert.isa.assembler import assemble, assemble_file
from edgebert.isa.disassembler import disassemble
from edgebert.isa.ebin import load_ebin, read_ebin, save_ebin, write_ebin
from edgebert.isa.encoding import make
from edgebert.isa.errors import AssemblyError, EbinError, EdgebertError, EncodingError, FileAccessError
from edgebert.isa.names import name_problem
from edgebert.isa.program import Program, Segment, Symbol
from edgebert.isa.safe_io import dumps_strict, read_limited, refuse_overwrite, write_atomic, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from fuzz_ebin import join, split  # noqa: E402 - rebuilds the checksums of an edited file

HUGE_DEC = "9" * 5000
HUGE_HEX = "0x" + "f" * 3000


# ---- class 6: the assembler ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "message"), [
    (f"li r1, {HUGE_DEC}", "too large"),
    (f"li r1, {HUGE_HEX}", "too large"),
    (f"li r1, {HUGE_HEX[:18]} * {HUGE_HEX[:18]}", "integer expression too large"),
    ("li r1, 0x100000000", "value 4294967296 does not fit"),
    (f".data dram\n.i32 {HUGE_HEX}", "too large"),
    (f".equ X, {HUGE_HEX[:17]}\n.equ Y, X * X * X\nli r1, Y", "too large"),
    (f"li r{HUGE_DEC}, 1", "no register r"),
    (f"vaddi [0], [0], f32(0x{'f' * 4000})", "does not fit in 32 bits"),
    (f"nop wait={HUGE_DEC}", "too large"),
    (f".data dram, {HUGE_HEX}", "too large"),
])
def test_huge_integers_are_one_clean_error(source: str, message: str) -> None:
    with pytest.raises(AssemblyError, match=message) as info:
        assemble(source, "t.s")
    assert len(str(info.value)) < 20_000


def test_huge_integers_in_the_library_api_do_not_crash_messages() -> None:
    with pytest.raises(EncodingError, match=r"value a \d+-bit integer does not fit"):
        make("li", rd=1, imm=10**6000)
    with pytest.raises(EbinError, match="does not fit in 32 bits"):
        write_ebin(Program([make("halt")], [Segment("dram", 10**6000, b"x")]))


@pytest.mark.parametrize("source", [
    '.data dram, 0, "a\\ud800b"\n.u8 1',
    '.meta "\\udfff", 1',
    '.meta k, ["\\ud800"]',
])
def test_lone_surrogates_are_refused_by_the_assembler(source: str) -> None:
    with pytest.raises(AssemblyError, match="surrogate|cannot be stored"):
        assemble(source, "t.s")


def test_lone_surrogates_are_refused_by_the_writer() -> None:
    with pytest.raises(EbinError, match="segment 0 name: not encodable as UTF-8"):
        write_ebin(Program([make("halt")], [Segment("dram", 0, b"x", "\ud800")]))
    with pytest.raises(EbinError, match="not encodable as UTF-8"):
        write_ebin(Program([make("halt")], symbols=[Symbol("a\udc00", "dram", 0)]))


@pytest.mark.parametrize("name", ["r1", "f3", "r16", "f8", "r007"])
def test_register_names_are_never_names(name: str) -> None:
    assert name_problem(name) is not None
    for source in (f"{name}: halt", f".equ {name}, 3", f".sym {name}, dram, 0"):
        with pytest.raises(AssemblyError, match="cannot be a name: r<n> and f<n> are register names"):
            assemble(source, "t.s")
    with pytest.raises(EncodingError, match="cannot be written in assembly"):
        disassemble(Program([make("halt")], symbols=[Symbol(name, "code", 0)]))


@pytest.mark.parametrize("name", ["halt", "dram", "rows", "r1x", "f32x", "inf", "x.y", "_"])
def test_names_the_rule_allows_round_trip(name: str) -> None:
    assert name_problem(name) is None
    p = Program([make("jmp", target=1), make("halt")], [Segment("dram", 0, b"\1\2\3\4", "d")],
                [Symbol(name, "code", 1)])
    assert write_ebin(assemble(disassemble(p))) == write_ebin(p)


def test_overlapping_segments_load_but_disassembly_refuses() -> None:
    p = Program([make("halt")], [Segment("dram", 0, b"\1" * 8), Segment("dram", 4, b"\2" * 8)])
    loaded = read_ebin(write_ebin(p))
    with pytest.raises(EncodingError, match="segments 0 and 1 overlap"):
        disassemble(loaded)


def test_overflowing_json_numbers_are_refused() -> None:
    with pytest.raises(AssemblyError, match="out of the float64 range"):
        assemble(".meta x, 1e400", "t.s")
    head, sections = split(write_ebin(Program([make("halt")], metadata={"x": 1.0})))
    sections[1][4] = bytearray(b'{"x":1e999}')
    with pytest.raises(EbinError, match="out of the float64 range"):
        read_ebin(join(head, sections))


@pytest.mark.parametrize(("section", "payload"), [(1, b'{"x":"\\ud800"}'), (2, b'[["a\\udfff","dram",0,0]]')])
def test_json_escapes_of_lone_surrogates_are_refused_when_read(section: int, payload: bytes) -> None:
    # Found by the .ebin campaign: such a file loaded, but could neither be written again nor round-trip.
    head, sections = split(write_ebin(Program([make("halt")], symbols=[Symbol("a", "dram", 0)], metadata={"x": 1})))
    sections[section][4] = bytearray(payload)
    with pytest.raises(EbinError, match="cannot be stored as UTF-8"):
        read_ebin(join(head, sections))


def test_sources_and_binaries_are_read_with_a_bound(tmp_path: Path) -> None:
    with pytest.raises(AssemblyError, match="larger than the 67,108,864-byte limit"):
        assemble_file("/dev/zero")
    with pytest.raises(EbinError, match="wrong magic"):
        load_ebin("/dev/zero")
    with pytest.raises(AssemblyError, match="not a regular file"):
        assemble('.data dram\n.npy "/dev/zero"', "t.s")
    # a file whose header claims more than it has: read stops at the claimed size + 1
    data = write_ebin(Program([make("halt")]))
    (tmp_path / "long.ebin").write_bytes(data + bytes(10_000))
    with pytest.raises(EbinError, match=f"trailing bytes: header says {len(data)} bytes, file has {len(data) + 1}"):
        load_ebin(tmp_path / "long.ebin")


# ---- class 8: files -------------------------------------------------------------------------------------------

def test_tools_refuse_to_overwrite_their_input(tmp_path: Path, capsys) -> None:
    src = tmp_path / "p.s"
    src.write_text("halt\n")
    assert asm_cli.main([str(src), "-o", str(src)]) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err and src.read_text() == "halt\n"
    binary = tmp_path / "p.ebin"
    assert asm_cli.main([str(src)]) == 0
    before = binary.read_bytes()
    os.link(binary, tmp_path / "hard.ebin")
    (tmp_path / "sym.ebin").symlink_to(binary)
    for out in (binary, tmp_path / "hard.ebin", tmp_path / "sym.ebin"):
        assert dis_cli.main([str(binary), "-o", str(out)]) == 2
    assert asm_cli.main([str(binary)]) == 2  # the default output of x.ebin would be x.ebin itself
    assert binary.read_bytes() == before


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents" and (target.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with pytest.raises(FileAccessError, match="is a directory"):
        write_atomic(tmp_path, b"x")
    with pytest.raises(FileAccessError, match="cannot write"):
        write_atomic(tmp_path / "no" / "such" / "dir.bin", b"x")
    write_atomic("/dev/null", b"devices are written in place, never replaced")
    assert Path("/dev/null").is_char_device()


def test_save_ebin_is_atomic(tmp_path: Path) -> None:
    save_ebin(Program([make("halt")]), tmp_path / "p.ebin")
    assert [p.name for p in tmp_path.iterdir()] == ["p.ebin"]
    with pytest.raises(EbinError, match="cannot write"):
        save_ebin(Program([make("halt")]), tmp_path)


def test_refuse_overwrite_and_read_limited(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"12345")
    refuse_overwrite([a, None], tmp_path / "b")
    with pytest.raises(FileAccessError, match="refusing to overwrite"):
        refuse_overwrite([a], tmp_path / "." / "a")
    assert read_limited(a, 5) == b"12345"
    with pytest.raises(FileAccessError, match="larger than the 4-byte limit"):
        read_limited(a, 4)
    with pytest.raises(FileAccessError, match="cannot read"):
        read_limited(tmp_path / "missing", 4)


def test_json_is_strict(tmp_path: Path) -> None:
    value = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float32("nan"), "d": np.arange(2), "e": None}
    text = dumps_strict(value)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [None, None, 1.5], "c": None, "d": [0, 1], "e": None}
    write_json(tmp_path / "r.json", value)
    assert json.loads((tmp_path / "r.json").read_text())["a"] is None
    assert issubclass(FileAccessError, EdgebertError)


def test_mostly_zero_segments_disassemble_compactly_and_round_trip_fast() -> None:
    # Found by the asm campaign: `.zero 67108864` then `.u8 1` disassembled to 2 million `.i32` lines, and
    # re-assembling them ran past the 30 s hang limit.
    # Then: two adjacent `.zero 67108864` disassembled to one `.zero 134217728`, beyond the assembler's limit.
    source = '.data dram, 0, "big"\nA: .f32 1.5, 2.5\n.zero 67108864\n.zero 67108864\n.zero 4\n.u8 1\n.align 4\n.i32 -7\n'
    program = assemble(source, "t.s")
    start = time.monotonic()
    text = disassemble(program)
    assert len(text.splitlines()) < 20 and text.count(".zero 67108864") == 2 and ".zero 4" in text
    assert write_ebin(assemble(text)) == write_ebin(program)
    assert time.monotonic() - start < 20
