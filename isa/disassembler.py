"""The disassembler: Program -> assembly text that assembles back to the same `.ebin` bytes."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np

from edgebert.isa.assembler import MAX_ZERO, format_f32
from edgebert.isa.encoding import Inst
from edgebert.isa.errors import EncodingError
from edgebert.isa.names import NAME, name_problem
from edgebert.isa.program import Program, Segment, Symbol
from edgebert.isa.table import BY_MNEMONIC, SPACES, UNITS, Field, Kind

BYTES_PER_LINE = 16
WORDS_PER_LINE = 8
#: All-zero stretches at least this long (bytes) are written as one `.zero` line.
ZERO_RUN = 64


def _format_value(f: Field, value: int, labels: Mapping[int, str] | None) -> str:
    kind = f.kind
    if kind is Kind.REG:
        return f"r{value}"
    if kind is Kind.FREG:
        return f"f{value}"
    if kind in (Kind.ENUM, Kind.SPACE):
        return f.choices[value]
    if kind is Kind.F32:
        return format_f32(value)
    if kind is Kind.UNITS:
        names = [u for i, u in enumerate(UNITS) if value >> i & 1]
        return "|".join(names) if value and value < 1 << len(UNITS) else str(value)
    if kind is Kind.TARGET:
        return labels[value] if labels and value in labels else str(value)
    if kind is Kind.ADDR:
        return hex(value)
    return str(value)


def _format_address(inst: Inst, name: str) -> str:
    spec = inst.spec
    base, space = spec.companions(name)
    offset = inst.values[name]
    reg = inst.values[base.name] if base is not None else 0
    if reg and offset:
        inner = f"r{reg} + {offset:#x}"
    elif reg:
        inner = f"r{reg}"
    else:
        inner = f"{offset:#x}"
    prefix = SPACES[inst.values[space.name]] if space is not None else ""
    return f"{prefix}[{inner}]"


def format_inst(inst: Inst, labels: Mapping[int, str] | None = None) -> str:
    """One instruction in assembly syntax; `labels` maps instruction indices to names for branch targets."""
    spec = inst.spec
    operands = []
    for name in spec.operands:
        f = spec.by_name[name]
        if f.kind is Kind.ADDR and any(spec.companions(name)):
            operands.append(_format_address(inst, name))
        else:
            operands.append(_format_value(f, inst.values[name], labels))
    for f in spec.keyword_fields():
        value = inst.values.get(f.name, f.default)
        if value != f.default:
            operands.append(f"{f.name}={_format_value(f, value, labels)}")
    return f"{spec.mnemonic} {', '.join(operands)}" if operands else spec.mnemonic


def _check_name(sym: Symbol) -> None:
    problem = name_problem(sym.name)
    if problem is not None:
        raise EncodingError(f"cannot disassemble: symbol {sym.name[:60]!r} cannot be written in assembly ({problem})")


def _check_segments(segments: list[Segment]) -> None:
    """What the assembler refuses cannot be disassembled: overlapping segments, data past the 4 GiB range."""
    for i, seg in enumerate(segments):
        if seg.address + len(seg.data) > 1 << 32:
            raise EncodingError(f"cannot disassemble: segment {i} ({seg.space}) runs past the 4 GiB address range")
        for j in range(i):
            other = segments[j]
            if (other.space == seg.space and seg.data and other.data and seg.address < other.address + len(other.data)
                    and other.address < seg.address + len(seg.data)):
                raise EncodingError(f"cannot disassemble: {seg.space} segments {j} and {i} overlap (assembly "
                                    "cannot express one segment overwriting another)")


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _looks_like_floats(words: tuple[int, ...]) -> bool:
    for w in words:
        exponent = (w >> 23) & 0xFF
        if w & 0x7FFFFFFF and not 90 <= exponent <= 165:  # |x| roughly in 1e-11..1e11
            return False
    return True


def format_data(data: bytes) -> list[str]:
    """Data directives reproducing `data` exactly: .zero for all-zero stretches of ZERO_RUN bytes or more (4-aligned),
    .f32, .i32 or .u8 lines for the rest (so a mostly-zero segment stays a few lines long)."""
    if not data:
        return []
    whole = len(data) - len(data) % 4
    zero = np.frombuffer(memoryview(data)[:whole], "<u4") == 0
    lines: list[str] = []
    start = 0
    for lo, hi in _zero_runs(zero, ZERO_RUN // 4):
        lines += _format_piece(data[start : 4 * lo])
        lines += _zero_lines(4 * (hi - lo))
        start = 4 * hi
    return lines + _format_piece(data[start:])


def _zero_runs(zero: np.ndarray, min_words: int) -> list[tuple[int, int]]:
    """[lo, hi) word ranges of the runs of at least `min_words` True values."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], zero.view(np.int8), [0]))))
    return [(int(lo), int(hi)) for lo, hi in zip(edges[::2], edges[1::2], strict=True) if hi - lo >= min_words]


def _zero_lines(n: int) -> list[str]:
    """`.zero` lines for n zero bytes, each within the assembler's MAX_ZERO."""
    return [f".zero {min(MAX_ZERO, n - k)}" for k in range(0, n, MAX_ZERO)]


def _format_piece(data: bytes) -> list[str]:
    if not data:
        return []
    if not data.strip(b"\0"):
        return _zero_lines(len(data))
    lines = []
    whole = len(data) - len(data) % 4
    words = struct.unpack(f"<{whole // 4}I", data[:whole])
    if words and _looks_like_floats(words):
        for i in range(0, len(words), WORDS_PER_LINE):
            lines.append(".f32 " + ", ".join(format_f32(w) for w in words[i : i + WORDS_PER_LINE]))
    elif words:
        signed = struct.unpack(f"<{len(words)}i", data[:whole])
        for i in range(0, len(signed), WORDS_PER_LINE):
            lines.append(".i32 " + ", ".join(str(v) for v in signed[i : i + WORDS_PER_LINE]))
    for i in range(whole, len(data), BYTES_PER_LINE):
        lines.append(".u8 " + ", ".join(f"{b:#04x}" for b in data[i : i + BYTES_PER_LINE]))
    return lines


def _segment_lines(seg: Segment, labels: dict[int, list[Symbol]]) -> list[str]:
    head = f".data {seg.space}, {seg.address:#x}" + (f", {_string(seg.name)}" if seg.name else "")
    lines = [head]
    cuts = sorted({0, len(seg.data), *labels})
    for start, end in zip(cuts, cuts[1:] + [len(seg.data)], strict=False):
        for sym in labels.get(start, []):
            lines.append(f"{sym.name}:")
            if sym.size:
                lines.append(f".size {sym.name}, {sym.size}")
        lines.extend("    " + text for text in format_data(seg.data[start:end]))
    return lines


def disassemble(program: Program) -> str:
    """Assembly text for `program`; assembling it gives a Program that writes the same `.ebin` bytes."""
    names = [s.name for s in program.symbols]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise EncodingError(f"cannot disassemble: duplicate symbol names {', '.join(dup)}")
    symbols = sorted(program.symbols, key=lambda s: (s.value, s.name))
    for sym in symbols:
        _check_name(sym)
    _check_segments(program.segments)

    code_syms: dict[int, list[Symbol]] = {}
    data_syms: dict[int, dict[int, list[Symbol]]] = {}  # segment index -> offset -> symbols
    loose: list[Symbol] = []
    for sym in symbols:
        if sym.space == "code" and sym.value <= len(program.code) and sym.name not in BY_MNEMONIC:
            code_syms.setdefault(sym.value, []).append(sym)
            continue
        home = next(
            (
                i
                for i, seg in enumerate(program.segments)
                if seg.space == sym.space and seg.address <= sym.value < seg.address + len(seg.data)
            ),
            None,
        )
        if home is None or sym.name in BY_MNEMONIC:
            loose.append(sym)
        else:
            data_syms.setdefault(home, {}).setdefault(sym.value - program.segments[home].address, []).append(sym)

    labels = {value: syms[0].name for value, syms in code_syms.items()}
    for name in (s for s in symbols if s.space == "code"):
        labels.setdefault(name.value, name.name)
    for inst in program.code:
        for f in inst.spec.fields:
            if f.kind is Kind.TARGET and inst.values[f.name] <= len(program.code):
                labels.setdefault(inst.values[f.name], f".L{inst.values[f.name]}")

    out = ["# edgebert assembly (disassembled)", f".hw {program.hw_fingerprint.hex()}"]
    for key in sorted(program.metadata):
        shown = key if NAME.fullmatch(key) else _string(key)
        try:
            value = json.dumps(program.metadata[key], sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise EncodingError(f"cannot disassemble: metadata {key[:60]!r} is not JSON: {exc}") from None
        out.append(f".meta {shown}, {value}")
    for sym in loose:
        out.append(f".sym {sym.name}, {sym.space}, {sym.value:#x}" + (f", {sym.size}" if sym.size else ""))
    out.append("")
    out.append(".text")
    for index in range(len(program.code) + 1):
        placed = code_syms.get(index, [])
        for sym in placed:
            out.append(f"{sym.name}:")
            if sym.size:
                out.append(f".size {sym.name}, {sym.size}")
        if not placed and labels.get(index, "").startswith(".L"):
            out.append(f"{labels[index]}:")
        if index < len(program.code):
            out.append("    " + format_inst(program.code[index], labels))
    for i, seg in enumerate(program.segments):
        out.append("")
        out.extend(_segment_lines(seg, data_syms.get(i, {})))
    return "\n".join(out) + "\n"
