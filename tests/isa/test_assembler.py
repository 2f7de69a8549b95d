"""The assembler and disassembler: syntax, directives, clear errors, and exact round trips."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa_strategies import instructions, programs

from edgebert.isa.assembler import assemble, assemble_file, format_f32, generate_grammar_parts, grammar_text, parse_f32
from edgebert.isa.disassembler import disassemble, format_inst
from edgebert.isa.ebin import read_ebin, write_ebin
from edgebert.isa.encoding import make
from edgebert.isa.errors import AssemblyError, EdgebertError
from edgebert.isa.hardware import default_config
from edgebert.isa.program import Program, Segment, Symbol
from edgebert.isa.table import BY_MNEMONIC, INSTRUCTIONS


def test_grammar_has_one_rule_per_instruction() -> None:
    text = grammar_text()
    for ins in INSTRUCTIONS:
        assert f'i_{ins.mnemonic}: "{ins.mnemonic}"' in text
    kw_fields = {f for ins in INSTRUCTIONS for f in (x.name for x in ins.keyword_fields())}
    assert kw_fields == set(generate_grammar_parts().kw_rule_field.values())


def test_operands_directives_and_labels(tmp_path) -> None:  # noqa: ANN001
    np.save(tmp_path / "w.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    source = """
    # comment
    .equ N, 4 * (2 + 2)      ; another comment
    .meta outputs, [{"name": "y", "space": "dram", "address": 64, "shape": [4]}]
    .meta "odd key", null
    start:
        li r1, -5
        ld [r2 + 0x40], envm[r1 + W + 4], rows=N, cols=16, dtype=af8, wait=ld|pu, signal=st
    loop: matmul [0], [r3], [r4 + 8], m=16, k=16, n=16, acc=1
        softmax [0], [64], scale=0.125
        bexit f1, 0.5, done
        fli f2, -inf
        vaddi [0], [0], f32(0x7fc00001)
        bne r1, r0, loop
    .Lskip:
        jmp .Lskip
    done: halt
    .data envm, 0x100, "weights"
    W:  .f32 1.0, 2.5, -0.0
        .i32 -1, W, done
        .u8 1, 0xff
        .align 16
        .zero 4
    .data envm
    M:  .npy "w.npy"
    .sym OUT, dram, 0x1000, 64
    .size W, 12
    """
    (tmp_path / "p.s").write_text(source)
    p = assemble_file(tmp_path / "p.s")
    assert p.code[0] == make("li", rd=1, imm=-5)
    assert p.code[1] == make("ld", dst_base=2, dst=0x40, src_space=1, src_base=1, src=0x104, rows=16, cols=16, dtype=1,
                             wait=0b00011, signal=0b01000)  # fmt: skip
    assert p.code[2] == make("matmul", a_base=3, b_base=4, b=8, m=16, k=16, n=16, acc=1)
    assert p.code[3]["scale"] == struct.unpack("<I", struct.pack("<f", 0.125))[0]
    assert p.code[4]["target"] == 9 and p.code[6]["imm"] == 0x7FC00001 and p.code[7]["target"] == 2
    assert p.code[8]["target"] == 8
    w = p.segments[0]
    assert (w.space, w.address, w.name) == ("envm", 0x100, "weights")
    assert w.data[:12] == struct.pack("<3f", 1.0, 2.5, -0.0)
    assert w.data[12:24] == struct.pack("<iII", -1, 0x100, 9) and w.data[24:26] == b"\x01\xff"
    assert len(w.data) == 32 + 4
    m = p.segments[1]
    assert m.address == 0x140 and m.data == np.arange(6, dtype="<f4").tobytes()  # next 64-byte boundary
    syms = {s.name: s for s in p.symbols}
    assert ".Lskip" not in syms
    assert syms["W"] == Symbol("W", "envm", 0x100, 12) and syms["M"].size == 24 and syms["done"].value == 9
    assert syms["OUT"] == Symbol("OUT", "dram", 0x1000, 64)
    assert p.metadata == {"outputs": [{"name": "y", "space": "dram", "address": 64, "shape": [4]}], "odd key": None}
    assert p.hw_fingerprint == default_config().fingerprint
    assert write_ebin(assemble(disassemble(p))) == write_ebin(p)


def _error(source: str) -> str:
    with pytest.raises(AssemblyError) as info:
        assemble(source, "t.s")
    return str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("  foo r1, r2", "t.s:1:3: unknown mnemonic 'foo'"),
        ("nop\nx: frob", "t.s:2:4: unknown mnemonic 'frob'"),
        (".bogus 1", "t.s:1:1: unknown directive '.bogus'"),
        (
            "ld [r0], dram[r0], rows=70000",
            "t.s:1:20: 'ld' field 'rows': value 70000 does not fit (16 bits, range 0..65535)",
        ),
        ("li r1, 0x100000000", "t.s:1:8: 'li' field 'imm': value 4294967296 does not fit"),
        ("li r16, 1", "t.s:1:4: no register r16 (r0..r15)"),
        ("entropy f9, [0]", "t.s:1:9: no register f9 (f0..f7)"),
        ("jmp nowhere", "t.s:1:5: undefined name 'nowhere'"),
        ("a: nop\na: nop", "t.s:2:1: 'a' is already defined (line 1)"),
        ("ld [r0], dram[r0], dst=3", "t.s:1:20: 'ld' has no keyword field 'dst'"),
        ("ld [r0], dram[r0], rows=1, rows=2", "t.s:1:28: 'ld': field 'rows' is given twice"),
        ("ld [r0], [r0]", "t.s:1:10: unexpected '[', expected a memory space"),
        ("li r1", "t.s:1:6: unexpected end of line, expected ','"),
        ("add: nop", "t.s:1:1: 'add' is a reserved word"),
        (".data dram\nli r1, 2", "t.s:2:1: instruction inside a .data section"),
        (".f32 1.0", "t.s:1:1: data directive .f32 outside a .data section"),
        ('.data dram\n.npy "missing.npy"', "t.s:2:6: .npy: file not found"),
        (".meta a, {bad}", "t.s:1:11: .meta: bad JSON"),
        (".meta a, 1\n.meta a, 2", "t.s:2:7: .meta: key 'a' is set twice"),
        ("fli f1, 1e39", "t.s:1:9: 'fli' field 'imm': 1e39 is out of float32 range"),
        ("matmul [0], [0], [0], acc=2", "t.s:1:23: 'matmul' field 'acc': value 2 does not fit"),
        ("x: nop\nld [x], dram[0]", "t.s:2:5: a code label cannot be used as a memory address"),
        (".data dram\nd: .zero 4\n.text\njmp d", "t.s:4:5: 'jmp' field 'target': a dram label is not a code label"),
        (".data dram, 0\n.zero 8\n.data dram, 4\n.zero 8", "t.s:3:1: dram segment at 0x4 overlaps"),
        (".size nothing, 4", "t.s:1:7: .size: 'nothing' is undefined, not a symbol"),
        (".hwdefault\n.hwdefault", "t.s:2:1: the hardware fingerprint is set twice"),
        (".data dram\n.align 3", "t.s:2:8: .align: 3 is not a power of two"),
    ],
)
def test_error_messages(source: str, message: str) -> None:
    text = _error(source)
    assert text.startswith(message), text
    line = int(message.split(":")[1])
    column = int(message.split(":")[2])
    snippet = text.split("\n")[1:3]
    assert snippet[0] == "    " + source.split("\n")[line - 1]
    assert snippet[1] == "    " + " " * (column - 1) + "^"


def test_npy_bad_file(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(AssemblyError, match=r"\.npy: cannot read"):
        assemble('.data dram\n.npy "bad.npy"', base_dir=tmp_path)


@pytest.mark.parametrize(
    "bits", [0, 0x80000000, 1, 0x7F7FFFFF, 0x3DCCCCCD, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFFFFFFF]
)
def test_f32_literals_round_trip(bits: int) -> None:
    assert parse_f32(format_f32(bits)) == bits


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_f32_literal_property(bits: int) -> None:
    assert parse_f32(format_f32(bits)) == bits


def test_format_inst() -> None:
    inst = make("ld", dst=0x40, src_space=2, src_base=3, rows=2, cols=4, signal=0b00010)
    assert format_inst(inst) == "ld [0x40], sram[r3], signal=pu, rows=2, cols=4"
    assert format_inst(make("jmp", target=3), {3: "loop"}) == "jmp loop"
    assert format_inst(make("jmp", target=3)) == "jmp 3"
    assert format_inst(make("halt")) == "halt"
    assert format_inst(make("softmax")) == "softmax [0x0], [0x0]"  # scale's default (1.0) is omitted


@settings(max_examples=200, deadline=None)
@given(instructions(target_max=0))
def test_every_instruction_reassembles(inst) -> None:  # noqa: ANN001
    text = format_inst(inst)
    assert assemble(text).code == [inst], text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_disassemble_assemble_roundtrip(program: Program) -> None:
    data = write_ebin(program)
    text = disassemble(read_ebin(data))
    assert write_ebin(assemble(text)) == data, text


def test_disassembler_refuses_unwritable_symbols() -> None:
    with pytest.raises(EdgebertError, match="cannot be written"):
        disassemble(Program([], symbols=[Symbol("r3", "code", 0)]))
    with pytest.raises(EdgebertError, match="duplicate symbol"):
        disassemble(Program([], symbols=[Symbol("a", "code", 0), Symbol("a", "dram", 0)]))


def test_disassembly_is_readable() -> None:
    program = Program(
        [make("li", rd=1, imm=3), make("bne", rs1=1, target=0), make("halt")],
        [Segment("envm", 0x40, struct.pack("<4f", 1.0, 2.0, 0.5, -3.0) + bytes(1), "w")],
        [Symbol("w", "envm", 0x40, 16)],
    )
    text = disassemble(program)
    assert ".L0:\n    li r1, 3\n    bne r1, r0, .L0\n    halt" in text
    assert '.data envm, 0x40, "w"\nw:\n.size w, 16\n    .f32 1.0, 2.0, 0.5, -3.0\n    .u8 0x00' in text


TOKENS = [*BY_MNEMONIC, "r1", "r99", "f2", "[", "]", ",", "+", "-", "*", "(", ")", ":", "=", "|", "0x10", "7", "1.5",
          "dram", "envm", "sram", "rows", "acc", "wait", "ld", ".data", ".text", ".f32", ".i32", ".equ", ".meta", ".sym",
          ".zero", ".npy", '"x"', "{", "}", "x", "loop", ".L1", "\n", "#c", ";", "f32(0x1)", "inf", "nan"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join)))
def test_fuzz_random_text_only_raises_assembly_error(text: str) -> None:
    try:
        assemble(text)
    except EdgebertError as exc:
        assert isinstance(exc, AssemblyError)


def test_exit_branches_cmp_and_bexitp_round_trip() -> None:
    """The exit comparison is an enum keyword (default lt, omitted when default); bexitp takes two registers."""
    p = assemble("top:\n bexit f1, 0.25, top, cmp=le\n bexitr f1, f7, top\n bexitp r3, r4, top\n halt\n")
    assert p.code[0] == make("bexit", fs=1, threshold=0x3E800000, target=0, cmp=1)
    assert p.code[1]["cmp"] == 0 and p.code[2] == make("bexitp", rs1=3, rs2=4, target=0)
    text = disassemble(p)
    assert "cmp=le" in text and text.count("cmp=") == 1 and "bexitp r3, r4" in text
    assert assemble(text).code == p.code
