"""The `.ebin` container: write a Program to bytes and read it back, validating every field.

Layout (all integers little-endian; offsets are bytes from the start of the file)::

    header (64 bytes)
      0  magic            4s   b"EBIN"
      4  version          u16  1
      6  flags            u16  0 (reserved, must be 0)
      8  hw_fingerprint   32s  SHA-256 of the hardware config the program was built for
     40  section_count    u32
     44  table_offset     u32  64 when written
     48  file_size        u32  total length of the file
     52  reserved         8s   zeros
     60  header_crc       u32  zlib CRC-32 of header bytes 0..59 followed by the whole section table
    section table: section_count entries of 32 bytes
      0  kind             u8   1 code, 2 data, 3 metadata, 4 symbols
      1  space            u8   data: index into SPACES (dram, envm, sram); else 0
      2  name_len         u16  data: length of the UTF-8 segment name that starts the payload; else 0
      4  address          u32  data: byte address of the segment in its space; else 0
      8  offset           u32  start of the payload
     12  size             u32  payload length in bytes
     16  crc              u32  zlib CRC-32 of the payload
     20  reserved         12s  zeros
    payloads, contiguous, in table order, no gaps:
      code      the encoded 32-byte instruction words
      data      segment name (name_len bytes) then the segment's bytes
      metadata  canonical JSON object (UTF-8, sorted keys, separators "," and ":")
      symbols   canonical JSON array of [name, space, value, size] (sorted by space, value, name)

A file holds exactly one code section, at most one metadata and one symbols section, and any number
of data sections (one per Segment, in the Program's order: later segments overwrite earlier ones).
Every byte after the table belongs to exactly one section, so every byte is covered by a checksum.
Whether a segment fits its memory is checked by the emulator (it knows the hardware config).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path
from typing import Any

from edgebert.isa.encoding import decode_program, encode_program
from edgebert.isa.errors import EbinError, EncodingError, FileAccessError, MetadataError
from edgebert.isa.program import SYMBOL_SPACES, Program, Segment, Symbol
from edgebert.isa.program_metadata import check_metadata
from edgebert.isa.safe_io import write_atomic
from edgebert.isa.table import SPACES, WORD_BYTES

MAGIC = b"EBIN"
VERSION = 1
HEADER = struct.Struct("<4sHH32sIII8sI")
ENTRY = struct.Struct("<BBHIIII12s")
KIND_CODE, KIND_DATA, KIND_METADATA, KIND_SYMBOLS = 1, 2, 3, 4
KIND_NAMES = {KIND_CODE: "code", KIND_DATA: "data", KIND_METADATA: "metadata", KIND_SYMBOLS: "symbols"}
_U32 = 0xFFFFFFFF

assert HEADER.size == 64 and ENTRY.size == 32


def canonical_json(value: Any) -> bytes:
    """The one byte encoding of a JSON value the container uses (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def no_constant(name: str) -> Any:
    """`json.loads` hook: NaN, Infinity and -Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def finite_float(text: str) -> float:
    """`json.loads` hook: a number literal that overflows to infinity (1e400) is refused, not read as inf."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of the float64 range")
    return value


def _symbol_key(sym: Symbol) -> tuple[int, int, str, int]:
    return SYMBOL_SPACES.index(sym.space), sym.value, sym.name, sym.size


def _check_u32(what: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EbinError(f"{what}: {type(value).__name__} is not an integer")
    if not 0 <= value <= _U32:
        shown = value if abs(value) < 10**30 else f"a {value.bit_length()}-bit integer"
        raise EbinError(f"{what}: {shown} does not fit in 32 bits")


def _utf8(what: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EbinError(f"{what}: not encodable as UTF-8 (character {exc.start}: {text[exc.start]!r})") from None


def write_ebin(program: Program) -> bytes:
    """Serialize `program`; the same Program always gives the same bytes."""
    if len(program.hw_fingerprint) != 32:
        raise EbinError(f"hardware fingerprint has {len(program.hw_fingerprint)} bytes, expected 32")
    sections: list[tuple[int, int, int, int, bytes]] = []  # kind, space, name_len, address, payload
    sections.append((KIND_CODE, 0, 0, 0, encode_program(list(program.code))))
    for i, seg in enumerate(program.segments):
        if seg.space not in SPACES:
            raise EbinError(f"segment {i} ({seg.name!r}): unknown memory space '{seg.space}'")
        _check_u32(f"segment {i} ({seg.name!r:.60}) address", seg.address)
        name = _utf8(f"segment {i} name", seg.name)
        if len(name) > 0xFFFF:
            raise EbinError(f"segment {i}: name is longer than 65535 bytes")
        sections.append((KIND_DATA, SPACES.index(seg.space), len(name), seg.address, name + bytes(seg.data)))
    if not isinstance(program.metadata, dict):
        raise EbinError("metadata must be a JSON object (dict)")
    try:
        meta = canonical_json(program.metadata)
    except (TypeError, ValueError, RecursionError) as exc:
        raise EbinError(f"metadata is not JSON-serializable: {exc}") from None
    check_metadata(program.metadata)
    sections.append((KIND_METADATA, 0, 0, 0, meta))
    for sym in program.symbols:
        if not isinstance(sym.name, str) or not sym.name:
            raise EbinError(f"symbol {sym.name!r:.60}: a name is a non-empty string")
        _utf8(f"symbol {sym.name!r:.60}", sym.name)
        if sym.space not in SYMBOL_SPACES:
            raise EbinError(f"symbol {sym.name!r:.60}: unknown space {sym.space!r:.20}")
        _check_u32(f"symbol {sym.name!r:.60} value", sym.value)
        _check_u32(f"symbol {sym.name!r:.60} size", sym.size)
    table = [[s.name, s.space, s.value, s.size] for s in sorted(program.symbols, key=_symbol_key)]
    sections.append((KIND_SYMBOLS, 0, 0, 0, canonical_json(table)))

    table_offset = HEADER.size
    offset = table_offset + ENTRY.size * len(sections)
    entries = []
    for kind, space, name_len, address, payload in sections:
        entries.append(ENTRY.pack(kind, space, name_len, address, offset, len(payload), zlib.crc32(payload), bytes(12)))
        offset += len(payload)
    _check_u32("file size", offset)
    head = HEADER.pack(MAGIC, VERSION, 0, program.hw_fingerprint, len(sections), table_offset, offset, bytes(8), 0)
    table_bytes = b"".join(entries)
    crc = zlib.crc32(head[:60] + table_bytes)
    return head[:60] + struct.pack("<I", crc) + table_bytes + b"".join(s[4] for s in sections)


def save_ebin(program: Program, path: str | Path) -> None:
    """Write `program` to the file `path` (atomically: a temporary file moved into place)."""
    data = write_ebin(program)
    try:
        write_atomic(path, data)
    except FileAccessError as exc:
        raise EbinError(str(exc)) from None


def load_ebin(path: str | Path) -> Program:
    """Read and validate the `.ebin` file at `path`; reads no more than the header's `file_size` (+1) bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER.size)
            data = head
            if len(head) == HEADER.size and head[:4] == MAGIC:
                # The header states the length: never read more than that (a device or huge file fails fast).
                data += f.read(max(HEADER.unpack_from(head)[6], HEADER.size) + 1 - HEADER.size)
    except OSError as exc:
        raise EbinError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return read_ebin(data, str(path))


def read_ebin(data: bytes, source: str = "<bytes>") -> Program:
    """Parse `data`, validating every field before use; EbinError says what is wrong and where."""
    return _Reader(bytes(data), source).read()


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def fail(self, offset: int, message: str) -> EbinError:
        return EbinError(f"{self.source}: offset {offset:#x}: {message}")

    def read(self) -> Program:
        data = self.data
        if len(data) < HEADER.size:
            raise self.fail(len(data), f"truncated header: file has {len(data)} bytes, the header needs {HEADER.size}")
        magic, version, flags, fingerprint, count, table_offset, file_size, reserved, crc = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise self.fail(0, f"wrong magic {magic!r}, expected {MAGIC!r} (not an .ebin file)")
        if version != VERSION:
            raise self.fail(4, f"unsupported format version {version} (this reader knows version {VERSION})")
        if file_size != len(data):
            what = "truncated file" if file_size > len(data) else "trailing bytes"
            raise self.fail(min(file_size, len(data)), f"{what}: header says {file_size} bytes, file has {len(data)}")
        if not HEADER.size <= table_offset <= len(data):
            raise self.fail(44, f"section table offset {table_offset:#x} lies outside 0x40..{len(data):#x}")
        table_end = table_offset + ENTRY.size * count
        if table_end > len(data):
            raise self.fail(table_offset, f"truncated section table: {count} entries need {table_end:#x} bytes")
        table_bytes = data[table_offset:table_end]
        if zlib.crc32(data[:60] + table_bytes) != crc:
            raise self.fail(60, "header checksum mismatch (header or section table corrupted)")
        if flags != 0:
            raise self.fail(6, f"unsupported flags {flags:#06x}")
        if any(reserved):
            raise self.fail(52, "reserved header bytes are not zero")
        if table_offset != HEADER.size:
            raise self.fail(44, f"bytes 0x40..{table_offset:#x} between header and section table belong to no section")

        code: bytes | None = None
        metadata: dict[str, Any] | None = None
        symbols: list[Symbol] | None = None
        segments: list[Segment] = []
        expected_offset = table_end
        for index in range(count):
            at = table_offset + ENTRY.size * index
            kind, space, name_len, address, offset, size, sec_crc, res = ENTRY.unpack_from(data, at)
            label = f"section {index} ({KIND_NAMES.get(kind, 'unknown')})"
            if kind not in KIND_NAMES:
                raise self.fail(at, f"section {index}: unknown section kind {kind}")
            if any(res):
                raise self.fail(at + 20, f"{label}: reserved entry bytes are not zero")
            if offset < table_end:
                raise self.fail(at + 8, f"{label}: offset {offset:#x} overlaps the header or section table")
            if offset + size > len(data):
                raise self.fail(at + 12, f"{label}: bytes {offset:#x}..{offset + size:#x} run past the end of the file")
            if offset < expected_offset:
                raise self.fail(at + 8, f"{label}: offset {offset:#x} overlaps the previous section")
            if offset > expected_offset:
                raise self.fail(expected_offset, f"bytes {expected_offset:#x}..{offset:#x} belong to no section")
            expected_offset = offset + size
            payload = data[offset : offset + size]
            if zlib.crc32(payload) != sec_crc:
                raise self.fail(offset, f"{label}: checksum mismatch (section corrupted)")
            if kind != KIND_DATA and (space or name_len or address):
                raise self.fail(at + 1, f"{label}: space/name/address must be 0 outside data sections")
            if kind == KIND_CODE:
                if code is not None:
                    raise self.fail(at, f"{label}: second code section")
                if size % WORD_BYTES:
                    raise self.fail(offset, f"{label}: size {size} is not a multiple of {WORD_BYTES}")
                code = payload
                code_offset = offset
            elif kind == KIND_DATA:
                segments.append(self.segment(label, at, offset, payload, space, name_len, address))
            elif kind == KIND_METADATA:
                if metadata is not None:
                    raise self.fail(at, f"{label}: second metadata section")
                metadata = self.metadata(label, offset, payload)
            else:
                if symbols is not None:
                    raise self.fail(at, f"{label}: second symbols section")
                symbols = self.symbols(label, offset, payload)
        if expected_offset != len(data):
            raise self.fail(expected_offset, f"bytes {expected_offset:#x}..{len(data):#x} belong to no section")
        if code is None:
            raise self.fail(table_offset, "no code section")
        try:
            insts = decode_program(code, code_offset)
        except EncodingError as exc:
            raise EbinError(f"{self.source}: code section: undecodable instruction at file {exc}") from None
        try:
            check_metadata(metadata or {})
        except MetadataError as exc:
            raise MetadataError(f"{self.source}: {exc}") from None
        return Program(insts, segments, symbols or [], metadata or {}, fingerprint)

    def segment(
        self, label: str, at: int, offset: int, payload: bytes, space: int, name_len: int, address: int
    ) -> Segment:
        if space >= len(SPACES):
            raise self.fail(at + 1, f"{label}: unknown memory space index {space}")
        if name_len > len(payload):
            raise self.fail(at + 2, f"{label}: name length {name_len} exceeds the section size {len(payload)}")
        name = self.utf8(label, offset, payload[:name_len])
        return Segment(SPACES[space], address, payload[name_len:], name)

    def utf8(self, label: str, offset: int, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(offset + exc.start, f"{label}: invalid UTF-8") from None

    def json(self, label: str, offset: int, payload: bytes) -> Any:
        text = self.utf8(label, offset, payload)

        try:
            value = json.loads(text, parse_constant=no_constant, parse_float=finite_float)
        except json.JSONDecodeError as exc:
            where = offset + len(text[: exc.pos].encode())
            raise self.fail(where, f"{label}: bad JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise self.fail(offset, f"{label}: bad JSON: {exc}") from None
        try:
            canonical_json(value)  # what is read must be writable: a "\ud800" escape decodes to no UTF-8 text
        except (ValueError, RecursionError) as exc:
            raise self.fail(offset, f"{label}: JSON that cannot be stored as UTF-8 ({exc})") from None
        return value

    def metadata(self, label: str, offset: int, payload: bytes) -> dict[str, Any]:
        value = self.json(label, offset, payload)
        if not isinstance(value, dict):
            raise self.fail(offset, f"{label}: metadata must be a JSON object, not {type(value).__name__}")
        return value

    def symbols(self, label: str, offset: int, payload: bytes) -> list[Symbol]:
        value = self.json(label, offset, payload)
        if not isinstance(value, list):
            raise self.fail(offset, f"{label}: symbols must be a JSON array")
        out = []
        for i, item in enumerate(value):
            ok = (
                isinstance(item, list)
                and len(item) == 4
                and isinstance(item[0], str)
                and item[0] != ""
                and item[1] in SYMBOL_SPACES
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U32 for v in item[2:])
            )
            if not ok:
                raise self.fail(offset, f"{label}: entry {i} is not [name, space, value, size]: {item!r:.80}")
            out.append(Symbol(item[0], item[1], item[2], item[3]))
        return out
