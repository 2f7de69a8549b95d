"""The assembler: edgebert assembly text -> Program, with a lark grammar generated from the instruction table."""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from edgebert.isa.bits import bits_f32, f32_bits
from edgebert.isa.ebin import canonical_json, finite_float, no_constant
from edgebert.isa.encoding import check_field, make
from edgebert.isa.errors import AssemblyError, EdgebertError, EncodingError, FileAccessError, MetadataError
from edgebert.isa.hardware import default_config
from edgebert.isa.names import name_problem, show_int
from edgebert.isa.program import SYMBOL_SPACES, Program, Segment, Symbol
from edgebert.isa.program_metadata import check_metadata
from edgebert.isa.safe_io import read_text_limited
from edgebert.isa.table import BY_MNEMONIC, INSTRUCTIONS, SPACES, UNITS, Field, Instruction, Kind

#: Segments without an explicit address start at the next multiple of this after the space's last segment.
DATA_ALIGN = 64
#: Largest `.zero` block (the eNVM's size in the default config): guards against runaway allocations.
MAX_ZERO = 1 << 26
#: Integer literals and every intermediate value of an expression stay within +-2^64 (no field is wider than 32
#: bits; larger values can only be errors, and Python cannot even print ints beyond 4300 digits).
INT_LIMIT = 1 << 64
#: Largest assembly source read (bytes) and largest `.npy` file included.
MAX_SOURCE_BYTES = 64 << 20
MAX_NPY_BYTES = 1 << 32

# --------------------------------------------------------------------------------------------
# Grammar generation


@dataclass
class _GrammarParts:
    """Generated rule text plus the maps the assembler needs to read the parse tree back."""

    lines: list[str] = field(default_factory=list)
    kw_rule_field: dict[str, str] = field(default_factory=dict)  # kw rule name -> field name
    kw_rule_by_key: dict[tuple[Any, ...], str] = field(default_factory=dict)
    enum_rule_by_choices: dict[tuple[str, ...], str] = field(default_factory=dict)


def _literal(text: str) -> str:
    return json.dumps(text)


def _enum_rule(parts: _GrammarParts, choices: tuple[str, ...]) -> str:
    name = parts.enum_rule_by_choices.get(choices)
    if name is None:
        name = f"enum_{len(parts.enum_rule_by_choices)}"
        parts.enum_rule_by_choices[choices] = name
        parts.lines.append(f"!{name}: " + " | ".join(_literal(c) for c in choices))
    return name


def _value_syntax(parts: _GrammarParts, f: Field) -> str:
    """Grammar of one field's value written on its own (keyword value or non-address positional)."""
    if f.kind is Kind.REG:
        return "REG"
    if f.kind is Kind.FREG:
        return "FREG"
    if f.kind is Kind.SPACE:
        return "SPACE"
    if f.kind is Kind.ENUM:
        return _enum_rule(parts, f.choices)
    if f.kind is Kind.F32:
        return "F32LIT"
    if f.kind is Kind.UNITS:
        return "units"
    return "expr"  # UIMM, SIMM, ADDR, FLAG, TARGET


def _operand_syntax(parts: _GrammarParts, ins: Instruction, name: str) -> str:
    f = ins.by_name[name]
    if f.kind is Kind.ADDR:
        base, space = ins.companions(name)
        if base is not None:
            return "mem_space" if space is not None else "mem"
        return 'SPACE "[" expr "]"' if space is not None else "expr"
    return _value_syntax(parts, f)


def _keyword_rule(parts: _GrammarParts, f: Field) -> str:
    key = (f.name, f.kind, f.choices)
    rule = parts.kw_rule_by_key.get(key)
    if rule is None:
        rule = f"kw_{f.name}"
        if rule in parts.kw_rule_field:
            rule = f"kw_{f.name}_{len(parts.kw_rule_by_key)}"
        parts.kw_rule_by_key[key] = rule
        parts.kw_rule_field[rule] = f.name
        parts.lines.append(f'{rule}: {_literal(f.name)} "=" {_value_syntax(parts, f)}')
    return rule


def generate_grammar_parts() -> _GrammarParts:
    """Rules for every instruction of the table (one `i_<mnemonic>` rule each) and the name terminals."""
    parts = _GrammarParts()
    alternatives = []
    for ins in INSTRUCTIONS:
        rule = f"i_{ins.mnemonic}"
        alternatives.append(rule)
        operands = ' "," '.join(_operand_syntax(parts, ins, name) for name in ins.operands)
        kws = [_keyword_rule(parts, f) for f in ins.keyword_fields()]
        kw_alt = f"_kw_{ins.mnemonic}"
        parts.lines.append(f"{kw_alt}: " + " | ".join(kws))
        if operands:
            parts.lines.append(f'{rule}: {_literal(ins.mnemonic)} {operands} ("," {kw_alt})*')
        else:
            parts.lines.append(f'{rule}: {_literal(ins.mnemonic)} ({kw_alt} ("," {kw_alt})*)?')
    parts.lines.append("?instruction: " + "\n    | ".join(alternatives))
    parts.lines.append("SPACE: " + " | ".join(_literal(s) for s in SPACES))
    parts.lines.append("SYMSPACE: " + " | ".join(_literal(s) for s in SYMBOL_SPACES))
    parts.lines.append("UNITNAME: " + " | ".join(_literal(u) for u in UNITS))
    return parts


@cache
def grammar_text() -> str:
    """The complete grammar: the hand-written skeleton plus the rules generated from the table."""
    skeleton = resources.files("edgebert.isa").joinpath("asm.lark").read_text()
    generated = "\n".join(generate_grammar_parts().lines)
    return f"{skeleton}\n// ---- generated from edgebert.isa.table ----\n{generated}\n"


@cache
def _parser() -> tuple[Lark, _GrammarParts]:
    parts = generate_grammar_parts()
    lark = Lark(grammar_text(), parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False)
    return lark, parts


# --------------------------------------------------------------------------------------------
# Error reporting

_FRIENDLY = {
    "REG": "a register r0..r15",
    "FREG": "a float register f0..f7",
    "NAME": "a name",
    "LOCAL": "a local label",
    "INT": "an integer",
    "F32LIT": "a float",
    "STRING": "a string",
    "JSON": "a JSON value",
    "HEX": "64 hex digits",
    "SPACE": "a memory space (" + "|".join(SPACES) + ")",
    "SYMSPACE": "a symbol space (" + "|".join(SYMBOL_SPACES) + ")",
    "UNITNAME": "a unit (" + "|".join(UNITS) + ")",
    "_NL": "end of line",
    "$END": "end of file",
}
_WORD = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_LABEL_PREFIX = re.compile(r"\s*((\.L)?[A-Za-z_][A-Za-z0-9_.]*\s*:\s*)*")
_DIRECTIVES = {
    ".text", ".data", ".equ", ".sym", ".size", ".f32", ".i32", ".u8", ".zero", ".align", ".npy", ".meta", ".hw",
    ".hwdefault",
}  # fmt: skip


def _snippet(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    src = src.replace("\t", " ")
    column = max(column, 1)
    if len(src) > 160:  # show a window around the column, not a megabyte of line
        start = max(0, column - 80)
        src, column = ("..." if start else "") + src[start : start + 160] + "...", column - start + (3 if start else 0)
    return f"    {src}\n    {' ' * (column - 1)}^"


def operand_syntax(ins: Instruction, address: Callable[[str, bool], str]) -> list[str]:
    """Each positional operand of `ins` as written; `address(name, has_space)` spells a memory operand that is
    addressed through a base register (`[rB + name]`, with a space prefix when the operand has one)."""
    out = []
    for name in ins.operands:
        base, space = ins.companions(name)
        if ins.by_name[name].kind is Kind.ADDR and base is not None:
            out.append(address(name, space is not None))
        else:
            out.append(name)
    return out


def syntax_help(ins: Instruction) -> str:
    """One line showing how `ins` is written."""
    ops = operand_syntax(ins, lambda name, spaced: f"{'space' if spaced else ''}[rB + {name}]")
    kws = ", ".join(f.name for f in ins.keyword_fields())
    return f"{ins.mnemonic} {', '.join(ops)}".rstrip() + (f"  (keywords: {kws})" if kws else "")


class _Located(Exception):
    """An assembly error at a source position, turned into an AssemblyError with a snippet."""

    def __init__(self, pos: tuple[int, int], message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def _pos(node: Tree | Token) -> tuple[int, int]:
    if isinstance(node, Token):
        return node.line or 1, node.column or 1
    meta = node.meta
    return (meta.line, meta.column) if not meta.empty else (1, 1)


def _describe_expected(lark: Lark, expected: set[str]) -> str:
    names = []
    for name in sorted(expected):
        if name in _FRIENDLY:
            names.append(_FRIENDLY[name])
            continue
        try:
            pattern = lark.get_terminal(name).pattern
        except KeyError:
            names.append(name)
            continue
        names.append(f"'{pattern.value}'" if pattern.type == "str" else name)
    names = sorted(set(names))
    if len(names) > 12:
        names = names[:12] + ["..."]
    return ", ".join(names)


def _syntax_message(lark: Lark, text: str, exc: UnexpectedInput, lineno: int, col: int) -> tuple[int | None, str]:
    """A friendly message for a parse error, and the column to point at when it is not the error's own."""
    lines = text.split("\n")
    line = lines[lineno - 1] if lineno <= len(lines) else ""
    body = re.split(r"[#;]", line, maxsplit=1)[0]
    start = _LABEL_PREFIX.match(body).end()
    word = _WORD.match(body, start)
    first = word.group(0) if word else ""
    words = body[: col - 1].split()
    if isinstance(exc, UnexpectedToken) and str(exc.token).startswith(":") and words:
        column = body.rfind(words[-1], 0, col - 1) + 1
        return column, f"'{words[-1]}' is a reserved word (mnemonic or register) and cannot be a label"
    if (
        first
        and not first.startswith(".")
        and first not in BY_MNEMONIC
        and not body[word.end() :].lstrip().startswith(":")
    ):
        return start + 1, f"unknown mnemonic '{first}'"
    if first.startswith(".") and not first.startswith(".L") and first not in _DIRECTIVES:
        return start + 1, f"unknown directive '{first}'"
    ins = BY_MNEMONIC.get(first)
    if isinstance(exc, UnexpectedToken) and ins is not None and exc.token.type not in ("$END", "_NL"):
        after = line[col - 1 + len(exc.token.value) :].lstrip()
        names = {f.name for f in ins.keyword_fields()}
        token = exc.token.value
        if after.startswith("=") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", token) and token not in names:
            return None, f"'{ins.mnemonic}' has no keyword field '{exc.token.value}'; syntax: {syntax_help(ins)}"
    if isinstance(exc, UnexpectedCharacters):
        msg = f"unexpected character {line[col - 1 : col]!r}"
    elif isinstance(exc, UnexpectedEOF):
        msg = "unexpected end of file"
    else:
        tok = exc.token
        shown = str(tok)
        if tok.type == "JSON":  # the catch-all terminal of .meta: show only the start
            shown = re.match(r"[A-Za-z0-9_.]+|.", shown).group(0)
        shown = "end of line" if tok.type == "_NL" else "end of file" if tok.type == "$END" else repr(shown)
        msg = f"unexpected {shown}"
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None)
    if expected:
        msg += f", expected {_describe_expected(lark, set(expected))}"
    if ins is not None:
        msg += f"; syntax: {syntax_help(ins)}"
    return None, msg


# --------------------------------------------------------------------------------------------
# Values


def parse_int(text: str) -> int:
    """An integer literal: decimal, 0x hex or 0b binary; ValueError beyond +-2^64 (checked before converting)."""
    low = text.lower()
    base, digits = (16, text[2:]) if low.startswith("0x") else (2, text[2:]) if low.startswith("0b") else (10, text)
    digits = digits.lstrip("0") or "0"
    if len(digits) > {16: 17, 2: 65, 10: 21}[base]:
        raise ValueError(f"integer literal {text[:24]}... is too large (beyond 2^64)")
    value = int(digits, base)
    if value > INT_LIMIT:
        raise ValueError(f"integer literal {text} is too large (beyond 2^64)")
    return value


def parse_f32(text: str) -> int:
    """Bit pattern of a float literal: a decimal, inf, nan, or f32(0xBITS) for an exact pattern."""
    text = text.strip()
    if text.startswith("f32"):
        digits = text[3:].strip("() \t").lower().removeprefix("0x").lstrip("0") or "0"
        if len(digits) > 8:
            raise ValueError(f"bit pattern {text[:40]} does not fit in 32 bits")
        return int(digits, 16)
    sign = 1 << 31 if text.startswith("-") else 0
    body = text.lstrip("+-")
    if body == "nan":
        return sign | 0x7FC00000
    if body == "inf":
        return sign | 0x7F800000
    try:
        value = float(text)
        if math.isinf(value):
            raise OverflowError
        return f32_bits(value)
    except OverflowError:
        raise ValueError(f"{text[:40]} is out of float32 range (use inf or f32(0x...))") from None


def format_f32(bits: int) -> str:
    """Shortest float literal that assembles back to exactly `bits`."""
    value = bits_f32(bits)
    if math.isnan(value):
        return f"f32({bits:#010x})"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = str(np.float32(value))
    if parse_f32(text) != bits:  # pragma: no cover - float32 shortest repr is exact; keep a safe fallback
        text = repr(value)
    return text


# --------------------------------------------------------------------------------------------
# The assembler proper: pass 1 lays out code and data and defines names, pass 2 resolves operands.


@dataclass
class _Name:
    kind: str  # "equ", "label", "local", "sym"
    space: str | None  # None for .equ constants
    value: int
    pos: tuple[int, int]


@dataclass
class _SegmentBuilder:
    space: str
    address: int
    name: str
    pos: tuple[int, int]
    data: bytearray = field(default_factory=bytearray)
    fixups: list[tuple[int, str, Tree]] = field(default_factory=list)  # offset, ".i32"/".u8", expression


class _Assembler:
    def __init__(self, text: str, filename: str, base_dir: Path) -> None:
        self.text = text
        self.filename = filename
        self.base_dir = base_dir
        self.names: dict[str, _Name] = {}
        self.symbols: list[list[Any]] = []  # [name, space, value, size] in definition order
        self.symbol_index: dict[str, int] = {}
        self.segments: list[_SegmentBuilder] = []
        self.current: _SegmentBuilder | None = None  # None while in .text
        self.pending_labels: list[str] = []  # data labels at the current position, not followed by data yet
        self.code: list[Tree] = []
        self.metadata: dict[str, Any] = {}
        self.fingerprint: bytes | None = None
        self.sizes: list[tuple[str, Tree, tuple[int, int]]] = []

    # ---- errors
    def error(self, pos: tuple[int, int], message: str) -> AssemblyError:
        line, col = pos
        return AssemblyError(f"{self.filename}:{line}:{col}: {message}\n{_snippet(self.text, line, col)}")

    # ---- driver
    def run(self) -> Program:
        lark, parts = _parser()
        self.parts = parts
        try:
            tree = lark.parse(self.text + "\n")
        except UnexpectedInput as exc:
            line = exc.line if isinstance(exc.line, int) and exc.line > 0 else 1
            col = exc.column if isinstance(exc.column, int) and exc.column > 0 else 1
            if isinstance(exc, UnexpectedToken) and exc.token.type in ("_NL", "$END"):
                line, col = exc.token.line or line, exc.token.column or col
            column, message = _syntax_message(lark, self.text, exc, line, col)
            raise self.error((line, column or col), message) from None
        except RecursionError:
            raise AssemblyError(f"{self.filename}: input nested too deeply") from None
        try:
            for stmt in tree.children:
                self.statement(stmt)
            self.check_overlaps()
            code = [self.instruction(node) for node in self.code]
            segments = [self.finish_segment(seg) for seg in self.segments]
            for name, expr, pos in self.sizes:
                self.set_size(name, expr, pos)
        except _Located as exc:
            raise self.error(exc.pos, exc.message) from None
        except RecursionError:
            raise AssemblyError(f"{self.filename}: expression nested too deeply") from None
        symbols = [Symbol(n, s, v, z) for n, s, v, z in self.symbols]
        fingerprint = self.fingerprint if self.fingerprint is not None else default_config().fingerprint
        return Program(code, segments, symbols, self.metadata, fingerprint)

    def statement(self, node: Tree) -> None:
        kind = node.data
        if kind == "label":
            self.define_label(node.children[0])
        elif kind.startswith("i_"):
            if self.current is not None:
                raise _Located(_pos(node), "instruction inside a .data section (write .text first)")
            self.code.append(node)
        else:
            getattr(self, kind)(node)

    # ---- names
    def define(self, token: Token, entry: _Name) -> None:
        name = str(token)
        problem = name_problem(name) if entry.kind != "local" else None
        if problem is not None:
            raise _Located(_pos(token), f"'{name[:60]}' cannot be a name: {problem}")
        if name in self.names:
            prev = self.names[name].pos
            raise _Located(_pos(token), f"'{name}' is already defined (line {prev[0]})")
        self.names[name] = entry
        if entry.kind in ("label", "sym"):
            assert entry.space is not None
            self.symbol_index[name] = len(self.symbols)
            self.symbols.append([name, entry.space, entry.value, 0])

    def define_label(self, token: Token) -> None:
        local = token.type == "LOCAL"
        if self.current is None:
            space, value = "code", len(self.code)
        else:
            space, value = self.current.space, self.current.address + len(self.current.data)
            if not local:
                self.pending_labels.append(str(token))
        self.define(token, _Name("local" if local else "label", space, value, _pos(token)))

    def evaluate(self, node: Tree, names: list[_Name] | None = None) -> int:
        """Value of an integer expression; `names` collects the names it uses."""
        kind = node.data
        if kind == "int":
            try:
                return parse_int(str(node.children[0]))
            except ValueError as exc:
                raise _Located(_pos(node), str(exc)) from None
        if kind == "name":
            token = node.children[0]
            entry = self.names.get(str(token))
            if entry is None:
                raise _Located(_pos(token), f"undefined name '{token}'")
            if names is not None:
                names.append(entry)
            return entry.value
        if kind == "neg":
            return -self.evaluate(node.children[-1], names)
        left, right = self.evaluate(node.children[0], names), self.evaluate(node.children[-1], names)
        value = left * right if kind == "mul" else left + right if kind == "add" else left - right
        if abs(value) > INT_LIMIT:
            raise _Located(_pos(node), "integer expression too large (beyond 2^64)")
        return value

    def evaluate_range(self, node: Tree, lo: int, hi: int, what: str) -> int:
        value = self.evaluate(node)
        if not lo <= value <= hi:
            raise _Located(_pos(node), f"{what}: value {show_int(value)} out of range {lo}..{hi}")
        return value

    # ---- directives
    def d_text(self, node: Tree) -> None:
        self.current = None
        self.pending_labels = []

    def d_data(self, node: Tree) -> None:
        space = str(node.children[0])
        address = None
        name = ""
        for child in node.children[1:]:
            if isinstance(child, Token):
                name = self.string(child)
            else:
                address = self.evaluate_range(child, 0, 0xFFFFFFFF, f".data {space} address")
        if address is None:
            ends = [s.address + len(s.data) for s in self.segments if s.space == space]
            end = max(ends, default=0)
            address = -(-end // DATA_ALIGN) * DATA_ALIGN
        self.current = _SegmentBuilder(space, address, name, _pos(node))
        self.segments.append(self.current)
        self.pending_labels = []

    def d_equ(self, node: Tree) -> None:
        token, expr = node.children
        self.define(token, _Name("equ", None, self.evaluate(expr), _pos(token)))

    def d_sym(self, node: Tree) -> None:
        token, space, value = node.children[:3]
        entry = _Name("sym", str(space), self.evaluate_range(value, 0, 0xFFFFFFFF, ".sym value"), _pos(token))
        self.define(token, entry)
        if len(node.children) > 3:
            self.symbols[-1][3] = self.evaluate_range(node.children[3], 0, 0xFFFFFFFF, ".sym size")

    def d_size(self, node: Tree) -> None:
        token, expr = node.children
        self.sizes.append((str(token), expr, _pos(token)))

    def set_size(self, name: str, expr: Tree, pos: tuple[int, int]) -> None:
        if name not in self.symbol_index:
            what = "a .equ constant or local label" if name in self.names else "undefined"
            raise _Located(pos, f".size: '{name}' is {what}, not a symbol")
        self.symbols[self.symbol_index[name]][3] = self.evaluate_range(expr, 0, 0xFFFFFFFF, ".size")

    def data_segment(self, node: Tree) -> _SegmentBuilder:
        if self.current is None:
            raise _Located(_pos(node), f"data directive {node.data.replace('d_', '.')} outside a .data section")
        return self.current

    def emit(self, node: Tree, data: bytes) -> None:
        seg = self.data_segment(node)
        seg.data += data
        if len(seg.data) + seg.address > 1 << 32:
            raise _Located(_pos(node), "data runs past the 4 GiB address range")
        self.pending_labels = []

    def d_f32(self, node: Tree) -> None:
        out = bytearray()
        for token in node.children:
            try:
                out += struct.pack("<I", parse_f32(str(token)))
            except ValueError as exc:
                raise _Located(_pos(token), str(exc)) from None
        self.emit(node, bytes(out))

    def _fixup_words(self, node: Tree, kind: str, size: int) -> None:
        seg = self.data_segment(node)
        for expr in node.children:
            seg.fixups.append((len(seg.data), kind, expr))
            seg.data += bytes(size)
        self.emit(node, b"")

    def d_i32(self, node: Tree) -> None:
        self._fixup_words(node, ".i32", 4)

    def d_u8(self, node: Tree) -> None:
        self._fixup_words(node, ".u8", 1)

    def d_zero(self, node: Tree) -> None:
        self.data_segment(node)
        self.emit(node, bytes(self.evaluate_range(node.children[0], 0, MAX_ZERO, ".zero")))

    def d_align(self, node: Tree) -> None:
        seg = self.data_segment(node)
        n = self.evaluate_range(node.children[0], 1, 1 << 20, ".align")
        if n & (n - 1):
            raise _Located(_pos(node.children[0]), f".align: {n} is not a power of two")
        end = seg.address + len(seg.data)
        self.emit(node, bytes(-end % n))

    def d_npy(self, node: Tree) -> None:
        self.data_segment(node)
        token = node.children[0]
        path = self.base_dir / self.string(token)
        try:
            if not path.exists():
                raise FileNotFoundError(path)
            if not path.is_file():  # a device or FIFO could block or never end
                raise _Located(_pos(token), f".npy: {path} is not a regular file")
            if path.stat().st_size > MAX_NPY_BYTES:
                raise _Located(_pos(token), f".npy: {path} is larger than {MAX_NPY_BYTES:,} bytes")
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise _Located(_pos(token), f".npy: file not found: {path}") from None
        except (OSError, ValueError, EOFError, MemoryError) as exc:
            raise _Located(_pos(token), f".npy: cannot read {path}: {type(exc).__name__}: {exc}") from None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise _Located(_pos(token), f".npy: {path} does not hold a numeric array")
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        for name in self.pending_labels:
            self.symbols[self.symbol_index[name]][3] = len(data)
        self.emit(node, data)

    def d_meta(self, node: Tree) -> None:
        key_token, json_token = node.children
        key = self.string(key_token) if key_token.type == "STRING" else str(key_token)
        if key in self.metadata:
            raise _Located(_pos(key_token), f".meta: key '{key}' is set twice")

        try:
            self.metadata[key] = json.loads(str(json_token), parse_constant=no_constant, parse_float=finite_float)
        except json.JSONDecodeError as exc:
            line, col = _pos(json_token)
            raise _Located((line, col + exc.pos), f".meta: bad JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise _Located(_pos(json_token), f".meta: bad JSON: {exc}") from None
        try:
            canonical_json(self.metadata[key])  # lone surrogates in strings cannot be stored as UTF-8
            check_metadata({key: self.metadata[key]})
        except MetadataError as exc:
            raise _Located(_pos(json_token), f".meta: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise _Located(_pos(json_token), f".meta: cannot be stored: {exc}") from None

    def d_hw(self, node: Tree) -> None:
        self.set_fingerprint(node, bytes.fromhex(str(node.children[0])))

    def d_hwdefault(self, node: Tree) -> None:
        self.set_fingerprint(node, default_config().fingerprint)

    def set_fingerprint(self, node: Tree, fingerprint: bytes) -> None:
        if self.fingerprint is not None:
            raise _Located(_pos(node), "the hardware fingerprint is set twice")
        self.fingerprint = fingerprint

    def string(self, token: Token) -> str:
        try:
            text = json.loads(str(token))
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _Located(_pos(token), f"bad string literal: lone surrogate at character {exc.start}") from None
        except ValueError as exc:
            raise _Located(_pos(token), f"bad string literal: {exc}") from None
        return text

    # ---- pass 2
    def check_overlaps(self) -> None:
        placed: list[_SegmentBuilder] = []
        for seg in self.segments:
            for other in placed:
                if (
                    other.space == seg.space
                    and seg.data
                    and other.data
                    and seg.address < other.address + len(other.data)
                    and other.address < seg.address + len(seg.data)
                ):
                    raise _Located(
                        seg.pos, f"{seg.space} segment at {seg.address:#x} overlaps the one at line {other.pos[0]}"
                    )
            placed.append(seg)

    def finish_segment(self, seg: _SegmentBuilder) -> Segment:
        for offset, kind, expr in seg.fixups:
            if kind == ".i32":
                value = self.evaluate_range(expr, -(1 << 31), (1 << 32) - 1, ".i32")
                seg.data[offset : offset + 4] = struct.pack("<I", value & 0xFFFFFFFF)
            else:
                seg.data[offset] = self.evaluate_range(expr, 0, 255, ".u8")
        return Segment(seg.space, seg.address, bytes(seg.data), seg.name)

    def instruction(self, node: Tree) -> Any:
        ins = BY_MNEMONIC[node.data[2:]]
        values: dict[str, int] = {}
        where: dict[str, tuple[int, int]] = {}

        def put(name: str, value: int, pos: tuple[int, int]) -> None:
            if name in values:
                raise _Located(pos, f"'{ins.mnemonic}': field '{name}' is given twice")
            f = ins.by_name[name]
            try:
                check_field(ins, f, value)
            except EncodingError as exc:
                raise _Located(pos, str(exc)) from None
            values[name] = value
            where[name] = pos

        children = list(node.children)
        for name, child in zip(ins.operands, children, strict=False):
            self.operand(ins, name, child, put)
        for child in children[len(ins.operands) :]:
            field_name = self.parts.kw_rule_field[child.data]
            f = ins.by_name[field_name]
            put(field_name, self.value(ins, f, child.children[-1]), _pos(child))
        try:
            return make(ins.mnemonic, **values)
        except EdgebertError as exc:  # pragma: no cover - every field was checked above
            raise _Located(_pos(node), str(exc)) from None

    def operand(self, ins: Instruction, name: str, node: Tree | Token, put: Any) -> None:
        f = ins.by_name[name]
        base, space = ins.companions(name)
        if f.kind is not Kind.ADDR or (base is None and space is None):
            put(name, self.value(ins, f, node), _pos(node))
            return
        if isinstance(node, Token):  # SPACE "[" expr "]" collapsed by lark: cannot happen with the grammar above
            raise _Located(_pos(node), "bad address operand")  # pragma: no cover
        parts = list(node.children)
        if node.data == "mem_space" or (space is not None and base is None):
            put(f"{name}_space", SPACES.index(str(parts.pop(0))), _pos(node))
        if parts and isinstance(parts[0], Token) and parts[0].type == "REG":
            reg = parts.pop(0)
            put(f"{name}_base", self.register(reg, 15), _pos(reg))
        elif base is not None:
            put(f"{name}_base", 0, _pos(node))
        offset = parts[0] if parts else None
        put(name, self.address(offset) if offset is not None else 0, _pos(offset if offset is not None else node))

    def register(self, token: Token, top: int) -> int:
        digits = str(token)[1:].lstrip("0") or "0"
        number = int(digits) if len(digits) < 6 else top + 1
        if number > top:
            prefix = str(token)[0]
            raise _Located(_pos(token), f"no register {token} ({prefix}0..{prefix}{top})")
        return number

    def address(self, expr: Tree) -> int:
        used: list[_Name] = []
        value = self.evaluate(expr, used)
        for entry in used:
            if entry.space == "code":
                raise _Located(_pos(expr), "a code label cannot be used as a memory address")
        return value

    def value(self, ins: Instruction, f: Field, node: Tree | Token) -> int:
        kind = f.kind
        if kind is Kind.REG:
            return self.register(node, 15)
        if kind is Kind.FREG:
            return self.register(node, 7)
        if kind is Kind.SPACE:
            return SPACES.index(str(node))
        if kind is Kind.ENUM:
            return f.choices.index(str(node.children[0]))
        if kind is Kind.F32:
            try:
                return parse_f32(str(node))
            except ValueError as exc:
                raise _Located(_pos(node), f"'{ins.mnemonic}' field '{f.name}': {exc}") from None
        if kind is Kind.UNITS:
            tokens = [t for t in node.children if t.type != "VBAR"]
            if len(tokens) == 1 and tokens[0].type == "INT":
                try:
                    return parse_int(str(tokens[0]))
                except ValueError as exc:
                    raise _Located(_pos(tokens[0]), str(exc)) from None
            mask = 0
            for t in tokens:
                mask |= 1 << UNITS.index(str(t))
            return mask
        if kind is Kind.TARGET:
            used: list[_Name] = []
            value = self.evaluate(node, used)
            for entry in used:
                if entry.space is not None and entry.space != "code":
                    raise _Located(
                        _pos(node), f"'{ins.mnemonic}' field '{f.name}': a {entry.space} label is not a code label"
                    )
            return value
        if kind is Kind.ADDR:
            return self.address(node)
        return self.evaluate(node)


def assemble(text: str, filename: str = "<string>", base_dir: str | Path | None = None) -> Program:
    """Assemble `text`; `.npy` paths are relative to `base_dir` (default: the current directory)."""
    return _Assembler(text, filename, Path(base_dir) if base_dir is not None else Path.cwd()).run()


def assemble_file(path: str | Path) -> Program:
    """Assemble the file at `path` (`.npy` paths relative to its folder)."""
    path = Path(path)
    try:
        text = read_text_limited(path, MAX_SOURCE_BYTES, "assembly source")
    except FileAccessError as exc:
        raise AssemblyError(str(exc)) from None
    return assemble(text, str(path), path.parent)
