"""Hypothesis strategies derived from the instruction table, and helpers to forge `.ebin` files."""

from __future__ import annotations

import json
import struct
import zlib

from hypothesis import strategies as st

from edgebert.isa.ebin import ENTRY, HEADER
from edgebert.isa.encoding import Inst, make
from edgebert.isa.program import SYMBOL_SPACES, Program, Segment, Symbol
from edgebert.isa.table import BY_MNEMONIC, INSTRUCTIONS, SPACES, Instruction, Kind


def field_values(spec: Instruction, target_max: int | None = None) -> st.SearchStrategy[dict[str, int]]:
    """Every field of `spec` (but the opcode) drawn from its full range; targets below `target_max` if given."""
    draws = {}
    for f in spec.fields:
        if f.name == "opcode":
            continue
        lo, hi = f.value_range()
        if f.kind is Kind.TARGET and target_max is not None:
            draws[f.name] = st.one_of(st.integers(0, target_max), st.integers(lo, hi))
        elif f.kind is Kind.F32:
            floats = st.floats(width=32, allow_nan=False).map(lambda x: struct.unpack("<I", struct.pack("<f", x))[0])
            draws[f.name] = st.one_of(st.integers(lo, hi), floats, st.sampled_from([f.default, 0x7FC00001, 0x80000000]))
        else:
            draws[f.name] = st.one_of(st.just(f.default), st.integers(lo, hi))
    return st.fixed_dictionaries(draws)


def instructions(target_max: int | None = None) -> st.SearchStrategy[Inst]:
    """A random valid instruction of any mnemonic."""
    return st.sampled_from(INSTRUCTIONS).flatmap(
        lambda spec: field_values(spec, target_max).map(lambda values: make(spec.mnemonic, **values))
    )


_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME_REST = _NAME_START + "0123456789."
names = st.one_of(
    st.builds(lambda a, b: a + b, st.sampled_from(_NAME_START), st.text(_NAME_REST, max_size=8)),
    st.sampled_from([*BY_MNEMONIC, "rows", "dram", "code", "none", "inf", "nan", "pu", "L3", "x.y"]),
).filter(lambda n: not (n[0] in "rf" and n[1:].isdigit()))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@st.composite
def segment_data(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "floats", "zeros", "ints"]))
    if kind == "bytes":
        return draw(st.binary(max_size=70))
    if kind == "zeros":
        return bytes(draw(st.integers(0, 300)))
    if kind == "ints":
        return struct.pack("<8i", *draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=8, max_size=8)))
    values = draw(st.lists(st.floats(width=32, allow_nan=False, min_value=-1e6, max_value=1e6), max_size=20))
    return struct.pack(f"<{len(values)}f", *values) + draw(st.binary(max_size=3))


@st.composite
def programs(draw: st.DrawFn) -> Program:
    """A random Program: instructions with targets mostly inside it, non-overlapping segments, symbols, metadata."""
    n = draw(st.integers(0, 12))
    code = draw(st.lists(instructions(target_max=n), min_size=n, max_size=n))
    segments = []
    ends = dict.fromkeys(SPACES, 0)
    for _ in range(draw(st.integers(0, 4))):
        space = draw(st.sampled_from(SPACES))
        address = ends[space] + draw(st.integers(0, 100))
        data = draw(segment_data())
        segments.append(Segment(space, address, data, draw(st.one_of(st.just(""), st.text(max_size=10)))))
        ends[space] = address + len(data)
    symbol_names = draw(st.lists(names, unique=True, max_size=8))
    symbols = []
    for name in symbol_names:
        space = draw(st.sampled_from(SYMBOL_SPACES))
        choices = [s.address + o for s in segments if s.space == space for o in range(len(s.data))][:50]
        value = draw(
            st.one_of(st.sampled_from(choices), st.integers(0, 2**32 - 1)) if choices else st.integers(0, 2**32 - 1)
        )
        if space == "code":
            value = draw(st.one_of(st.integers(0, n), st.integers(0, 2**32 - 1)))
        symbols.append(Symbol(name, space, value, draw(st.one_of(st.just(0), st.integers(0, 2**32 - 1)))))
    metadata = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    fingerprint = draw(st.binary(min_size=32, max_size=32))
    return Program(code, segments, symbols, metadata, fingerprint)


def forge(entries: list[tuple[int, int, int, int, bytes]], fingerprint: bytes = bytes(32), version: int = 1,
          table_offset: int = 64, flags: int = 0, layout: list[tuple[int, int]] | None = None,
          extra: bytes = b"") -> bytes:  # fmt: skip
    """Build a `.ebin` with consistent checksums from (kind, space, name_len, address, payload) entries.

    `layout` overrides each entry's (offset, size) while the payloads stay where they are written.
    """
    table_end = table_offset + ENTRY.size * len(entries)
    offset = table_end
    table = b""
    for i, (kind, space, name_len, address, payload) in enumerate(entries):
        off, size = layout[i] if layout else (offset, len(payload))
        table += ENTRY.pack(kind, space, name_len, address, off, size, zlib.crc32(payload), bytes(12))
        offset += len(payload)
    body = b"".join(e[4] for e in entries) + extra
    total = table_end + len(body)
    gap = bytes(table_offset - HEADER.size)
    head = HEADER.pack(b"EBIN", version, flags, fingerprint, len(entries), table_offset, total, bytes(8), 0)[:60]
    crc = zlib.crc32(head + table)
    return head + struct.pack("<I", crc) + gap + table + body


def refresh_crcs(data: bytes) -> bytes:
    """Recompute every checksum of a (possibly mutated) `.ebin` so that deeper checks are reached."""
    if len(data) < HEADER.size:
        return data
    out = bytearray(data)
    count, table_offset = struct.unpack_from("<II", out, 40)
    for i in range(min(count, 1000)):
        at = table_offset + ENTRY.size * i
        if at + ENTRY.size > len(out):
            break
        offset, size = struct.unpack_from("<II", out, at + 8)
        struct.pack_into("<I", out, at + 16, zlib.crc32(bytes(out[offset : offset + size])))
    table = bytes(out[table_offset : table_offset + ENTRY.size * count])
    struct.pack_into("<I", out, 60, zlib.crc32(bytes(out[:60]) + table))
    return bytes(out)


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
