"""The `.ebin` container: deterministic writing, exact reading, and a clear EbinError for every malformed file."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa_strategies import canonical, forge, programs, refresh_crcs

from edgebert.isa.ebin import (
    KIND_CODE,
    KIND_DATA,
    KIND_METADATA,
    KIND_SYMBOLS,
    load_ebin,
    read_ebin,
    save_ebin,
    write_ebin,
)
from edgebert.isa.encoding import encode, make
from edgebert.isa.errors import EbinError, EdgebertError
from edgebert.isa.program import Program, Segment, Symbol

SAMPLE = Program(
    code=[make("li", rd=1, imm=-7), make("ld", rows=4, cols=8, src_space=1, src=0x40), make("halt")],
    segments=[Segment("envm", 0x40, bytes(range(32)), "w"), Segment("dram", 0, b"\x01\x02\x03", "")],
    symbols=[Symbol("main", "code", 0), Symbol("w", "envm", 0x40, 32)],
    metadata={"outputs": [{"name": "y", "space": "dram", "address": 0, "shape": [3], "dtype": "uint8"}], "b": 1.5},
    hw_fingerprint=bytes(range(32)),
)
CODE = encode(make("halt"))


def test_write_is_deterministic_and_reads_back() -> None:
    first, second = write_ebin(SAMPLE), write_ebin(SAMPLE)
    assert first == second
    back = read_ebin(first)
    assert back.code == SAMPLE.code and back.segments == SAMPLE.segments
    assert back.metadata == SAMPLE.metadata and back.hw_fingerprint == SAMPLE.hw_fingerprint
    assert sorted(back.symbols, key=str) == sorted(SAMPLE.symbols, key=str)
    assert write_ebin(back) == first


def test_symbol_order_does_not_change_the_bytes() -> None:
    shuffled = Program(SAMPLE.code, SAMPLE.segments, SAMPLE.symbols[::-1], dict(reversed(SAMPLE.metadata.items())),
                       SAMPLE.hw_fingerprint)  # fmt: skip
    assert write_ebin(shuffled) == write_ebin(SAMPLE)


def test_save_and_load(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "p.ebin"
    save_ebin(SAMPLE, path)
    assert write_ebin(load_ebin(path)) == write_ebin(SAMPLE)
    with pytest.raises(EbinError, match="cannot read"):
        load_ebin(tmp_path / "missing.ebin")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_write_read_roundtrip(program: Program) -> None:
    data = write_ebin(program)
    assert write_ebin(read_ebin(data)) == data


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


GOOD = write_ebin(SAMPLE)
META = canonical({})
SYMS = b"[]"


def _sections(*extra: tuple[int, int, int, int, bytes]) -> list[tuple[int, int, int, int, bytes]]:
    return [(KIND_CODE, 0, 0, 0, CODE), *extra, (KIND_METADATA, 0, 0, 0, META), (KIND_SYMBOLS, 0, 0, 0, SYMS)]


MALFORMED = {
    "empty": (b"", r"offset 0x0: truncated header"),
    "short header": (GOOD[:40], r"offset 0x28: truncated header"),
    "wrong magic": (b"ELF\x7f" + GOOD[4:], r"offset 0x0: wrong magic"),
    "version 2": (GOOD[:4] + b"\x02\x00" + GOOD[6:], r"offset 0x4: unsupported format version 2"),
    "truncated file": (GOOD[:-5], r"truncated file: header says \d+ bytes"),
    "trailing bytes": (GOOD + b"\0", r"trailing bytes"),
    "flipped header byte": (_flip(GOOD, 9), r"offset 0x3c: header checksum mismatch"),
    "flipped table byte": (_flip(GOOD, 64 + 8), r"header checksum mismatch"),
    "flipped code byte": (_flip(GOOD, 64 + 32 * 5 + 3), r"section 0 \(code\): checksum mismatch"),
    "flipped metadata byte": (_flip(GOOD, len(GOOD) - 60), r"section 3 \(metadata\): checksum mismatch"),
    "flags": (forge(_sections(), flags=1), r"offset 0x6: unsupported flags"),
    "table past end": (refresh_crcs(GOOD[:40] + struct.pack("<I", 99) + GOOD[44:]), r"truncated section table"),
    "table offset": (forge(_sections(), table_offset=128), r"bytes 0x40..0x80 between header and section table"),
    "unknown kind": (forge([(9, 0, 0, 0, CODE)]), r"section 0: unknown section kind 9"),
    "no code": (forge([(KIND_METADATA, 0, 0, 0, META)]), r"no code section"),
    "two code": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_CODE, 0, 0, 0, CODE)]), r"section 1 \(code\): second code"),
    "code size": (forge([(KIND_CODE, 0, 0, 0, CODE[:31])]), r"size 31 is not a multiple of 32"),
    "bad opcode": (forge([(KIND_CODE, 0, 0, 0, b"\xee" + bytes(31))]), r"at file offset 0x60: unknown opcode 0xee"),
    "reserved bits": (forge([(KIND_CODE, 0, 0, 0, CODE[:31] + b"\x01")]), r"offset 0x60: 'halt' has reserved bits"),
    "overlap header": (forge(_sections(), layout=[(16, 32), (128 + 32, 2), (128 + 34, 2)]), r"overlaps the header"),
    "overlap sections": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_METADATA, 0, 0, 0, META)], layout=[(128, 32), (150, 2)]),
                         r"section 1 \(metadata\): offset 0x96 overlaps the previous section"),
    "gap": (forge([(KIND_CODE, 0, 0, 0, CODE)], layout=[(100, 32)], extra=bytes(4)), r"bytes 0x60..0x64 belong to no section"),
    "out of bounds": (forge([(KIND_CODE, 0, 0, 0, CODE)], layout=[(96, 64)]), r"run past the end of the file"),
    "unknown space": (forge(_sections((KIND_DATA, 3, 0, 0, b"ab"))), r"section 1 \(data\): unknown memory space index 3"),
    "name too long": (forge(_sections((KIND_DATA, 0, 9, 0, b"ab"))), r"name length 9 exceeds the section size 2"),
    "bad utf8 name": (forge(_sections((KIND_DATA, 0, 2, 0, b"\xff\xfeab"))), r"section 1 \(data\): invalid UTF-8"),
    "space outside data": (forge([(KIND_CODE, 1, 0, 0, CODE)]), r"space/name/address must be 0 outside data"),
    "bad json": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_METADATA, 0, 0, 0, b'{"a":}')]), r"offset 0xa5: section 1 \(metadata\): bad JSON"),
    "nan json": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_METADATA, 0, 0, 0, b'{"a":NaN}')]), r"bad JSON: NaN"),
    "metadata not object": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_METADATA, 0, 0, 0, b"[1]")]), r"must be a JSON object"),
    "bad utf8 metadata": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_METADATA, 0, 0, 0, b'{"\xff":1}')]), r"offset 0xa2: .*invalid UTF-8"),
    "deep json": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_METADATA, 0, 0, 0, b"[" * 100000)]), r"bad JSON"),
    "bad symbol": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_SYMBOLS, 0, 0, 0, b'[["a","heap",1,0]]')]), r"entry 0 is not \[name"),
    "symbol bool": (forge([(KIND_CODE, 0, 0, 0, CODE), (KIND_SYMBOLS, 0, 0, 0, b'[["a","code",true,0]]')]), r"entry 0"),
    "two metadata": (forge(_sections((KIND_METADATA, 0, 0, 0, META))), r"second metadata section"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_raises_ebin_error(case: str) -> None:
    data, message = MALFORMED[case]
    with pytest.raises(EbinError, match=message):
        read_ebin(data, "bad.ebin")


def test_error_names_the_source() -> None:
    with pytest.raises(EbinError, match=r"^x\.ebin: offset 0x0: wrong magic"):
        read_ebin(b"XXXX" + GOOD[4:], "x.ebin")


def test_forge_builds_valid_files() -> None:
    assert read_ebin(forge(_sections((KIND_DATA, 1, 1, 16, b"nab")))).segments == [Segment("envm", 16, b"ab", "n")]


def test_fuzz_mutated_files_only_raise_ebin_error() -> None:
    rng = random.Random(7)
    seeds = [GOOD, write_ebin(Program([make("nop")] * 3)), forge(_sections((KIND_DATA, 2, 0, 8, b"1234")))]
    for i in range(4000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            at = rng.randrange(len(data) + 1)
            if op < 0.5 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif op < 0.7:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op < 0.85:
                del data[at : at + rng.randint(1, 40)]
            else:
                data = data[:at]
        blob = refresh_crcs(bytes(data)) if i % 2 else bytes(data)
        with contextlib.suppress(EbinError):
            read_ebin(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    for blob in (data, b"EBIN\x01\x00" + data, refresh_crcs(GOOD[:64] + data)):
        try:
            read_ebin(blob)
        except EdgebertError as exc:
            assert isinstance(exc, EbinError)
