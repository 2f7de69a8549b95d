"""The table validator, and the encoder/decoder's range and reserved-bit errors."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from isa_strategies import instructions

from edgebert.isa.encoding import Inst, decode, decode_program, encode, make
from edgebert.isa.errors import EncodingError, IsaTableError
from edgebert.isa.table import BY_MNEMONIC, INSTRUCTIONS, WORD_BITS, Kind, validate_table


def _replace_instruction(mnemonic: str, **changes: object) -> tuple:
    return tuple(dataclasses.replace(i, **changes) if i.mnemonic == mnemonic else i for i in INSTRUCTIONS)


def _replace_field(mnemonic: str, field: str, **changes: object) -> tuple:
    ins = BY_MNEMONIC[mnemonic]
    fields = tuple(dataclasses.replace(f, **changes) if f.name == field else f for f in ins.fields)
    return _replace_instruction(mnemonic, fields=fields)


def test_shipped_table_is_valid() -> None:
    validate_table(INSTRUCTIONS)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_replace_instruction("vsub", opcode=0x30), r"instruction 'vsub': opcode 0x30 already used by 'vadd'"),
        (_replace_field("ld", "rows", lo=40, hi=55), r"instruction 'ld': field 'rows' bits 40..55 overlap"),
        (
            _replace_field("halt", "signal", lo=250, hi=260),
            r"instruction 'halt': field 'signal' bits 250..260 lie outside",
        ),
        (_replace_instruction("li", operands=("rd", "value")), r"instruction 'li': syntax names unknown field 'value'"),
        (_replace_instruction("nop", unit="gpu"), r"instruction 'nop': unknown unit 'gpu'"),
        (_replace_field("dvfsr", "rs", hi=22), r"instruction 'dvfsr': register field 'rs' has the wrong width 5"),
        (_replace_field("softmax", "scale", default=-1), r"instruction 'softmax': default of field 'scale'"),
    ],
)
def test_validate_table_names_the_instruction(table: tuple, message: str) -> None:
    with pytest.raises(IsaTableError, match=message):
        validate_table(table)


def test_make_range_error_names_field_and_value() -> None:
    with pytest.raises(EncodingError, match=r"'ld' field 'rows': value 65536 does not fit \(16 bits"):
        make("ld", rows=65536)
    with pytest.raises(EncodingError, match=r"'li' field 'imm': value -2147483649"):
        make("li", imm=-(2**31) - 1)
    with pytest.raises(EncodingError, match=r"'li' field 'rd': value 16"):
        encode(Inst("li", {**make("li").values, "rd": 16}))


def test_decode_unknown_opcode_names_offset() -> None:
    code = encode(make("nop")) + bytes([0xEE]) + bytes(31)
    with pytest.raises(EncodingError, match=r"offset 0x20: unknown opcode 0xee"):
        decode_program(code)


def test_decode_reserved_bits_names_offset() -> None:
    word = bytearray(encode(make("halt")))
    word[31] = 0x80
    with pytest.raises(EncodingError, match=r"offset 0x40: 'halt' has reserved bits set \(bit 255\)"):
        decode(bytes(word), 0x40)


def test_decode_reserved_enum_value() -> None:
    spec = BY_MNEMONIC["ld"]
    space = spec.by_name["src_space"]
    assert len(space.choices) < 1 << space.width  # the 4th value of the 2-bit space field is reserved
    word = int.from_bytes(encode(make("ld")), "little") | (3 << space.lo)
    with pytest.raises(EncodingError, match=r"offset 0x0: 'ld' field 'src_space' has reserved value 3"):
        decode(word.to_bytes(32, "little"))


def test_every_instruction_fits_the_word() -> None:
    for ins in INSTRUCTIONS:
        assert ins.fields[-1].hi < WORD_BITS if ins.fields else True
        assert all(f.kind is not Kind.TARGET or f.width == 24 for f in ins.fields)


@settings(max_examples=300, deadline=None)
@given(instructions())
def test_decode_encode_roundtrip(inst) -> None:  # noqa: ANN001
    word = encode(inst)
    assert len(word) == 32
    assert decode(word) == inst
