"""Encode and decode instruction words, derived from the instruction table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgebert.isa.errors import EncodingError
from edgebert.isa.names import show_int
from edgebert.isa.table import BY_MNEMONIC, BY_OPCODE, WORD_BITS, WORD_BYTES, Field, Instruction, Kind


@dataclass(frozen=True)
class Inst:
    """One concrete instruction: a mnemonic and every field's integer value.

    Values are as encoded except that SIMM fields hold Python signed ints; F32 fields hold
    their IEEE bit pattern; ENUM/SPACE fields hold the choice index.
    """

    mnemonic: str
    values: Mapping[str, int]

    @property
    def spec(self) -> Instruction:
        return BY_MNEMONIC[self.mnemonic]

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def __hash__(self) -> int:
        return hash((self.mnemonic, tuple(sorted(self.values.items()))))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Inst) and self.mnemonic == other.mnemonic and dict(self.values) == dict(other.values)


def make(mnemonic: str, **values: int) -> Inst:
    """Build an instruction, filling omitted fields with their defaults; range-checks every field."""
    spec = BY_MNEMONIC.get(mnemonic)
    if spec is None:
        raise EncodingError(f"unknown mnemonic '{mnemonic}'")
    unknown = set(values) - set(spec.by_name) | ({"opcode"} & set(values))
    if unknown:
        raise EncodingError(f"'{mnemonic}' has no field {', '.join(sorted(unknown))}")
    full = {f.name: values.get(f.name, f.default) for f in spec.fields if f.name != "opcode"}
    full["opcode"] = spec.opcode
    inst = Inst(mnemonic, full)
    for f in spec.fields:
        check_field(spec, f, full[f.name])
    return inst


#: id(field) -> its value range (fields are module constants of the table; compiling ALBERT-base checks ~10^5)
_RANGES: dict[int, tuple[int, int]] = {}


def check_field(spec: Instruction, f: Field, value: int) -> None:
    """Raise EncodingError naming the field if `value` does not fit it."""
    if not isinstance(value, int) or isinstance(value, bool) and f.kind is not Kind.FLAG:
        raise EncodingError(f"'{spec.mnemonic}' field '{f.name}': value {value!r:.60} is not an integer")
    rng = _RANGES.get(id(f))
    if rng is None:
        rng = _RANGES[id(f)] = f.value_range()
    lo, hi = rng
    if not lo <= value <= hi:
        raise EncodingError(
            f"'{spec.mnemonic}' field '{f.name}': value {show_int(value)} does not fit ({f.width} bits, range {lo}..{hi})"
        )


def encode(inst: Inst) -> bytes:
    """Encode one instruction into its 32-byte little-endian word."""
    spec = BY_MNEMONIC.get(inst.mnemonic)
    if spec is None:
        raise EncodingError(f"unknown mnemonic '{inst.mnemonic}'")
    word = 0
    for f in spec.fields:
        value = spec.opcode if f.name == "opcode" else inst.values.get(f.name, f.default)
        check_field(spec, f, value)
        word |= (value & f.mask) << f.lo
    return word.to_bytes(WORD_BYTES, "little")


def _used_mask(spec: Instruction) -> int:
    mask = 0
    for f in spec.fields:
        mask |= f.mask << f.lo
    return mask


_USED = {op: _used_mask(spec) for op, spec in BY_OPCODE.items()}


def decode(word: bytes, offset: int = 0) -> Inst:
    """Decode one 32-byte word; `offset` (bytes into the code) is named in any error."""
    if len(word) != WORD_BYTES:
        raise EncodingError(f"offset {offset:#x}: instruction word has {len(word)} bytes, expected {WORD_BYTES}")
    value = int.from_bytes(word, "little")
    opcode = value & 0xFF
    spec = BY_OPCODE.get(opcode)
    if spec is None:
        raise EncodingError(f"offset {offset:#x}: unknown opcode {opcode:#04x}")
    reserved = value & ~_USED[opcode] & ((1 << WORD_BITS) - 1)
    if reserved:
        raise EncodingError(
            f"offset {offset:#x}: '{spec.mnemonic}' has reserved bits set (bit {reserved.bit_length() - 1})"
        )
    values: dict[str, int] = {}
    for f in spec.fields:
        raw = (value >> f.lo) & f.mask
        if f.kind is Kind.SIMM and raw >> (f.width - 1):
            raw -= 1 << f.width
        lo, hi = f.value_range()
        if not lo <= raw <= hi:
            raise EncodingError(f"offset {offset:#x}: '{spec.mnemonic}' field '{f.name}' has reserved value {raw}")
        values[f.name] = raw
    return Inst(spec.mnemonic, values)


def encode_program(insts: list[Inst]) -> bytes:
    """Encode a list of instructions into a code section."""
    return b"".join(encode(i) for i in insts)


def decode_program(code: bytes, base_offset: int = 0) -> list[Inst]:
    """Decode a whole code section; errors name the byte offset of the bad word."""
    if len(code) % WORD_BYTES:
        raise EncodingError(
            f"offset {base_offset + len(code) - len(code) % WORD_BYTES:#x}: code is not a whole number of "
            f"{WORD_BYTES}-byte words ({len(code)} bytes)"
        )
    return [decode(code[i : i + WORD_BYTES], base_offset + i) for i in range(0, len(code), WORD_BYTES)]
