"""The instruction table: the single source of truth for the edgebert ISA.

Every instruction is one 256-bit little-endian word. Bits 0..17 are a common header:
``opcode`` (8 bits), ``wait`` and ``signal`` (5-bit unit masks, the dependency tokens of
the decoupled access/execute design, as in TVM VTA). The remaining fields are packed
upwards from bit 18 in the order listed below; unused high bits are reserved and must be 0.

Encoder, decoder, assembler grammar, disassembler, ISA reference and emulator dispatch are
all derived from :data:`INSTRUCTIONS`. The table is validated at import.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from edgebert.isa.errors import IsaTableError

WORD_BITS = 256
WORD_BYTES = WORD_BITS // 8
HEADER_BITS = 18

#: Functional units. ``ctl`` is the in-order front end (scalar ALU, branches, DVFS).
UNITS = ("ld", "pu", "sfu", "st", "ctl")
#: Memory spaces addressable by instructions (byte addresses in each).
SPACES = ("dram", "envm", "sram")
#: Element types a DMA moves.
DTYPES = ("f32", "af8", "i32", "u8")
#: Matrix operand formats.
FORMATS = ("f32", "af8")
#: Broadcast modes of the element-wise binary operand ``b``.
BROADCASTS = ("none", "row", "col", "scalar")
#: Entropy binning modes of ``lut``.
BIN_MODES = ("floor", "nearest")
#: Comparisons of the early-exit branches: exit when fs < threshold (``lt``, EdgeBERT's software) or
#: fs <= threshold (``le``, EdgeBERT's entropy unit).
EXIT_COMPARES = ("lt", "le")
#: Comparisons of ``vcmp`` (IEEE: every comparison with a NaN is false, except ``ne``).
CMP_MODES = ("eq", "ne", "lt", "le", "gt", "ge")

_F32_ONE = 0x3F800000  # bit pattern of 1.0f

NUM_REGS = 16  # r0..r15, r0 reads as zero
NUM_FREGS = 8  # f0..f7


class Kind(enum.Enum):
    """How a field's bits are interpreted and written in assembly."""

    REG = "reg"  # integer register r0..r15
    FREG = "freg"  # float register f0..f7
    UIMM = "uimm"  # unsigned integer
    SIMM = "simm"  # two's-complement signed integer
    ADDR = "addr"  # byte address (unsigned); may have `<name>_base` and `<name>_space` companions
    SPACE = "space"  # memory space enum (companion of an ADDR field)
    ENUM = "enum"  # named values
    F32 = "f32"  # IEEE-754 binary32 bit pattern
    UNITS = "units"  # bit mask over UNITS
    FLAG = "flag"  # one bit
    TARGET = "target"  # absolute instruction index (a code label)


@dataclass(frozen=True)
class Field:
    """One operand field: ``name`` occupies bits ``lo..hi`` (inclusive) of the word."""

    name: str
    lo: int
    hi: int
    kind: Kind
    choices: tuple[str, ...] = ()  # names of the values of an ENUM/SPACE field, in value order
    doc: str = ""
    default: int = 0  # encoded value assumed when assembly omits the field

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    def value_range(self) -> tuple[int, int]:
        """Smallest and largest integer value the field holds."""
        if self.kind is Kind.SIMM:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        if self.kind in (Kind.ENUM, Kind.SPACE):
            return 0, len(self.choices) - 1
        if self.kind is Kind.REG:
            return 0, NUM_REGS - 1
        if self.kind is Kind.FREG:
            return 0, NUM_FREGS - 1
        return 0, self.mask


@dataclass(frozen=True)
class Instruction:
    """One instruction: its encoding, unit, operand fields and assembly syntax."""

    mnemonic: str
    opcode: int
    unit: str
    fields: tuple[Field, ...]
    #: Names of the fields written positionally, in order; every other field is ``key=value``.
    #: An ADDR field written positionally also consumes its ``_base``/``_space`` companions.
    operands: tuple[str, ...]
    doc: str
    #: Fields by name (derived).
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def header(self) -> tuple[Field, ...]:
        return self.fields[:3]

    @property
    def operand_fields(self) -> tuple[Field, ...]:
        return self.fields[3:]

    def companions(self, addr: str) -> tuple[Field | None, Field | None]:
        """The ``(base register, space)`` companion fields of address field ``addr``."""
        return self.by_name.get(f"{addr}_base"), self.by_name.get(f"{addr}_space")

    def keyword_fields(self) -> tuple[Field, ...]:
        """Fields written as ``key=value`` (not positional, not an address companion)."""
        taken = set(self.operands)
        for name in self.operands:
            taken.update({f"{name}_base", f"{name}_space"})
        return tuple(f for f in self.fields if f.name not in taken and f.name != "opcode")


# --------------------------------------------------------------------------------------------
# Table construction helpers: fields are declared (name, width, kind) and packed from bit 18.


@dataclass(frozen=True)
class _Spec:
    name: str
    width: int
    kind: Kind
    choices: tuple[str, ...] = ()
    doc: str = ""
    default: int = 0


def _f(
    name: str, width: int, kind: Kind, choices: tuple[str, ...] = (), doc: str = "", default: int = 0
) -> _Spec:
    return _Spec(name, width, kind, choices, doc, default)


def _sram(name: str, doc: str) -> list[_Spec]:
    """An SRAM byte address with a base register: ``[rB + off]``."""
    return [_f(f"{name}_base", 4, Kind.REG, doc=f"base register of {name}"), _f(name, 24, Kind.ADDR, doc=doc)]


def _mem(name: str, doc: str) -> list[_Spec]:
    """An address in any memory space: ``space[rB + off]``."""
    return [
        _f(f"{name}_space", 2, Kind.SPACE, SPACES, doc=f"memory space of {name}"),
        _f(f"{name}_base", 4, Kind.REG, doc=f"base register of {name}"),
        _f(name, 32, Kind.ADDR, doc=doc),
    ]


def _stride(name: str) -> _Spec:
    return _f(f"{name}_stride", 16, Kind.UIMM, doc=f"row stride of {name} in elements (0: packed rows)")


_ROWS = _f("rows", 16, Kind.UIMM, doc="rows of the tile")
_CMP = _f("cmp", 1, Kind.ENUM, EXIT_COMPARES, doc="lt: exit when fs < threshold; le: when fs <= threshold")
_COLS = _f("cols", 16, Kind.UIMM, doc="columns of the tile (elements per row)")

_HEADER = [
    _Spec("opcode", 8, Kind.UIMM, doc="operation code"),
    _Spec("wait", 5, Kind.UNITS, doc="pop one token from each listed unit before starting"),
    _Spec("signal", 5, Kind.UNITS, doc="push one token to each listed unit when done"),
]


def _instr(mnemonic: str, opcode: int, unit: str, specs: list[_Spec], operands: str, doc: str) -> Instruction:
    fields: list[Field] = []
    lo = 0
    for spec in [*_HEADER, *specs]:
        fields.append(Field(spec.name, lo, lo + spec.width - 1, spec.kind, spec.choices, spec.doc, spec.default))
        lo += spec.width
    names = tuple(n.strip() for n in operands.split(",") if n.strip())
    return Instruction(mnemonic, opcode, unit, tuple(fields), names, doc)


# --------------------------------------------------------------------------------------------
# Shared layouts.


def _binary_layout() -> list[_Spec]:
    return [
        *_sram("dst", "result tile"),
        *_sram("a", "first operand tile"),
        *_sram("b", "second operand (broadcast by `bcast`)"),
        _stride("dst"),
        _stride("a"),
        _stride("b"),
        _ROWS,
        _COLS,
        _f("bcast", 2, Kind.ENUM, BROADCASTS, doc="b is a full tile, a row vector, a column vector or a scalar"),
    ]


def _unary_layout() -> list[_Spec]:
    return [*_sram("dst", "result tile"), *_sram("src", "input tile"), _stride("dst"), _stride("src"), _ROWS, _COLS]


def _immediate_layout() -> list[_Spec]:
    return [*_unary_layout(), _f("imm", 32, Kind.F32, doc="scalar operand")]


def _branch_layout() -> list[_Spec]:
    return [
        _f("rs1", 4, Kind.REG, doc="first register compared"),
        _f("rs2", 4, Kind.REG, doc="second register compared"),
        _f("target", 24, Kind.TARGET, doc="instruction index jumped to when taken"),
    ]


def _alu_layout() -> list[_Spec]:
    return [
        _f("rd", 4, Kind.REG, doc="destination register"),
        _f("rs1", 4, Kind.REG, doc="first source register"),
        _f("rs2", 4, Kind.REG, doc="second source register"),
    ]


def _dma_layout(src: list[_Spec], dst: list[_Spec]) -> list[_Spec]:
    return [
        *dst,
        *src,
        _stride("dst"),
        _stride("src"),
        _ROWS,
        _COLS,
        _f("dtype", 2, Kind.ENUM, DTYPES, doc="element type (sets element size: 4, 1, 4, 1 bytes)"),
    ]


def _build_table() -> tuple[Instruction, ...]:
    i = _instr
    table = [
        # ---- load unit: DRAM/eNVM -> SRAM -------------------------------------------------
        i("ld", 0x10, "ld", _dma_layout(_mem("src", "source tile"), _sram("dst", "SRAM destination")),
          "dst, src", "Load a rows x cols tile of `dtype` from any memory into SRAM."),
        i("gather", 0x11, "ld", [
            *_sram("dst", "SRAM destination, `rows` rows of `cols` elements"),
            *_mem("table", "embedding table"),
            *_sram("idx", "int32 row indices in SRAM"),
            _stride("table"),
            _ROWS,
            _COLS,
            _f("dtype", 2, Kind.ENUM, DTYPES, doc="element type of the table"),
        ], "dst, table, idx", "Row gather (embedding lookup): dst[r] = table[idx[r]]; an index out of range traps."),
        # ---- store unit: SRAM -> DRAM/eNVM ------------------------------------------------
        i("st", 0x18, "st", _dma_layout(_sram("src", "SRAM source"), _mem("dst", "destination tile")),
          "dst, src", "Store a rows x cols SRAM tile of `dtype` to any memory."),
        # ---- processing unit ---------------------------------------------------------------
        i("matmul", 0x20, "pu", [
            *_sram("dst", "fp32 result tile m x n"),
            *_sram("a", "left operand m x k"),
            *_sram("b", "right operand k x n (n x k if trans_b); bitmask-sparse if `sparse`"),
            *_sram("bias", "fp32 bias row of n elements, added when has_bias"),
            _stride("dst"),
            _stride("a"),
            _stride("b"),
            _f("m", 16, Kind.UIMM, doc="rows of a and dst"),
            _f("k", 16, Kind.UIMM, doc="reduction length"),
            _f("n", 16, Kind.UIMM, doc="columns of b and dst"),
            _f("acc", 1, Kind.FLAG, doc="accumulate into dst instead of overwriting it"),
            _f("has_bias", 1, Kind.FLAG, doc="add the bias row"),
            _f("trans_b", 1, Kind.FLAG, doc="b is stored transposed (n x k)"),
            _f("sparse", 1, Kind.FLAG, doc="b is stored as a bitmask followed by packed non-zeros"),
            _f("a_fmt", 1, Kind.ENUM, FORMATS, doc="format of a"),
            _f("b_fmt", 1, Kind.ENUM, FORMATS, doc="format of b"),
            _f("a_exp", 3, Kind.UIMM, doc="AdaptivFloat exponent bias of a"),
            _f("b_exp", 3, Kind.UIMM, doc="AdaptivFloat exponent bias of b"),
        ], "dst, a, b", "dst (+)= a @ b (+ bias): a whole tile on the MAC array, fp32 accumulation."),
        # ---- special function unit ---------------------------------------------------------
        i("vadd", 0x30, "sfu", _binary_layout(), "dst, a, b", "Element-wise dst = a + b."),
        i("vsub", 0x31, "sfu", _binary_layout(), "dst, a, b", "Element-wise dst = a - b."),
        i("vmul", 0x32, "sfu", _binary_layout(), "dst, a, b", "Element-wise dst = a * b."),
        i("vmax", 0x33, "sfu", _binary_layout(), "dst, a, b", "Element-wise dst = max(a, b)."),
        i("vaddi", 0x34, "sfu", _immediate_layout(), "dst, src, imm", "Element-wise dst = src + imm."),
        i("vmuli", 0x35, "sfu", _immediate_layout(), "dst, src, imm", "Element-wise dst = src * imm."),
        i("vdiv", 0x37, "sfu", _binary_layout(), "dst, a, b", "Element-wise dst = a / b (IEEE division)."),
        i("vmin", 0x3E, "sfu", _binary_layout(), "dst, a, b", "Element-wise dst = min(a, b)."),
        i("vcmp", 0x3F, "sfu", [*_binary_layout(), _f("mode", 3, Kind.ENUM, CMP_MODES, doc="the comparison")],
          "dst, a, b", "Element-wise comparison: dst = 1.0 where (a `mode` b) holds, else 0.0 (masks, run-time ids)."),
        i("itof", 0x3D, "sfu", _unary_layout(), "dst, src", "Convert int32 elements to float32."),
        i("ftoi", 0x43, "sfu", _unary_layout(), "dst, src",
          "Convert float32 elements to int32, rounding toward zero (a NaN or a value outside int32 traps)."),
        i("vscan", 0x42, "sfu", [*_unary_layout(), _f("exclusive", 1, Kind.FLAG, doc="sum the elements before, "
                                                      "not up to and including, each one")],
          "dst, src", "Prefix sum along each row: dst[r, c] = src[r, 0] + ... + src[r, c] (fp32, in order)."),
        i("vmov", 0x36, "sfu", _unary_layout(), "dst, src", "Copy a tile inside SRAM (strides may differ)."),
        i("gelu", 0x38, "sfu", _unary_layout(), "dst, src",
          "GELU, tanh form: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))) (ALBERT's gelu_new)."),
        i("gelu_erf", 0x39, "sfu", _unary_layout(), "dst, src", "GELU, exact form: 0.5x(1 + erf(x/sqrt(2)))."),
        i("tanh", 0x3A, "sfu", _unary_layout(), "dst, src", "Element-wise tanh."),
        i("relu", 0x3B, "sfu", _unary_layout(), "dst, src", "Element-wise max(x, 0)."),
        i("exp", 0x3C, "sfu", _unary_layout(), "dst, src", "Element-wise exp."),
        i("log", 0x44, "sfu", _unary_layout(), "dst, src", "Element-wise natural log (log 0 = -inf, log x<0 = NaN)."),
        i("sqrt", 0x45, "sfu", _unary_layout(), "dst, src", "Element-wise square root (IEEE, correctly rounded)."),
        i("erf", 0x46, "sfu", _unary_layout(), "dst, src", "Element-wise error function erf(x)."),
        i("layernorm", 0x40, "sfu", [
            *_unary_layout(),
            *_sram("gamma", "scale row (cols elements)"),
            *_sram("beta", "shift row (cols elements)"),
            _f("eps", 32, Kind.F32, doc="variance epsilon"),
        ], "dst, src, gamma, beta", "Layer norm of every row: (x - mean) / sqrt(var + eps) * gamma + beta."),
        i("softmax", 0x41, "sfu", [
            *_unary_layout(),
            *_sram("mask", "additive fp32 row of cols elements, broadcast over rows (if has_mask)"),
            _f("has_mask", 1, Kind.FLAG, doc="add the mask row before the softmax"),
            _f("scale", 32, Kind.F32, doc="scores are multiplied by scale first", default=_F32_ONE),
            _f("span", 12, Kind.UIMM, doc="adaptive attention span z in positions (0: no span)"),
            _f("ramp", 12, Kind.UIMM, doc="span ramp length R (soft mask clamp((R+z-|i-j|)/R, 0, 1))"),
            _f("row0", 12, Kind.UIMM, doc="query position of the tile's first row"),
            _f("col0", 12, Kind.UIMM, doc="key position of the tile's first column"),
        ], "dst, src", "Row softmax with optional additive mask and adaptive-span soft mask."),
        i("entropy", 0x48, "sfu", [
            _f("fd", 3, Kind.FREG, doc="float register receiving the entropy"),
            *_sram("src", "fp32 logits vector"),
            _f("n", 16, Kind.UIMM, doc="number of logits"),
        ], "fd, src", "fd = entropy (natural log) of softmax(src[0:n])."),
        i("quant", 0x49, "sfu", [*_unary_layout(), _f("exp_bias", 3, Kind.UIMM, doc="AdaptivFloat exponent bias")],
          "dst, src", "Quantize fp32 src to AdaptivFloat-8 codes (one byte each) with exponent bias exp_bias."),
        i("dequant", 0x4A, "sfu", [*_unary_layout(), _f("exp_bias", 3, Kind.UIMM, doc="AdaptivFloat exponent bias")],
          "dst, src", "Decode AdaptivFloat-8 codes to fp32."),
        # ---- control: in-order front end ----------------------------------------------------
        i("li", 0x50, "ctl", [_f("rd", 4, Kind.REG, doc="destination"), _f("imm", 32, Kind.SIMM, doc="value")],
          "rd, imm", "rd = imm."),
        i("addi", 0x51, "ctl", [
            _f("rd", 4, Kind.REG, doc="destination"),
            _f("rs1", 4, Kind.REG, doc="source"),
            _f("imm", 32, Kind.SIMM, doc="addend"),
        ], "rd, rs1, imm", "rd = rs1 + imm (32-bit wrap-around)."),
        i("add", 0x52, "ctl", _alu_layout(), "rd, rs1, rs2", "rd = rs1 + rs2."),
        i("sub", 0x53, "ctl", _alu_layout(), "rd, rs1, rs2", "rd = rs1 - rs2."),
        i("mul", 0x54, "ctl", _alu_layout(), "rd, rs1, rs2", "rd = rs1 * rs2 (low 32 bits)."),
        i("lw", 0x58, "ctl", [_f("rd", 4, Kind.REG, doc="destination"), *_mem("src", "int32 word")],
          "rd, src", "rd = int32 at src."),
        i("sw", 0x59, "ctl", [_f("rs", 4, Kind.REG, doc="source"), *_mem("dst", "int32 word")],
          "rs, dst", "int32 at dst = rs."),
        i("flw", 0x5A, "ctl", [_f("fd", 3, Kind.FREG, doc="destination"), *_mem("src", "fp32 word")],
          "fd, src", "fd = fp32 at src."),
        i("fli", 0x5B, "ctl", [_f("fd", 3, Kind.FREG, doc="destination"), _f("imm", 32, Kind.F32, doc="value")],
          "fd, imm", "fd = imm."),
        i("beq", 0x60, "ctl", _branch_layout(), "rs1, rs2, target", "Branch if rs1 == rs2."),
        i("bne", 0x61, "ctl", _branch_layout(), "rs1, rs2, target", "Branch if rs1 != rs2."),
        i("blt", 0x62, "ctl", _branch_layout(), "rs1, rs2, target", "Branch if rs1 < rs2 (signed)."),
        i("bge", 0x63, "ctl", _branch_layout(), "rs1, rs2, target", "Branch if rs1 >= rs2 (signed)."),
        i("jmp", 0x64, "ctl", [_f("target", 24, Kind.TARGET, doc="instruction index")], "target", "Jump."),
        i("bexit", 0x68, "ctl", [
            _f("fs", 3, Kind.FREG, doc="entropy register"),
            _f("threshold", 32, Kind.F32, doc="exit threshold"),
            _f("target", 24, Kind.TARGET, doc="exit path"),
            _CMP,
        ], "fs, threshold, target",
          "Early-exit branch: taken when fs < threshold (cmp=lt) or fs <= threshold (cmp=le); waits for fs to be "
          "ready; never taken when early exit is disabled."),
        i("bexitr", 0x69, "ctl", [
            _f("fs", 3, Kind.FREG, doc="entropy register"),
            _f("ft", 3, Kind.FREG, doc="threshold register"),
            _f("target", 24, Kind.TARGET, doc="exit path"),
            _CMP,
        ], "fs, ft, target",
          "Early-exit branch with the threshold in a register: taken when fs < ft (cmp=lt) or fs <= ft (cmp=le)."),
        i("lut", 0x6A, "ctl", [
            _f("rd", 4, Kind.REG, doc="destination"),
            _f("fs", 3, Kind.FREG, doc="value binned (an entropy)"),
            *_mem("table", "int32 table of nbins entries"),
            _f("nbins", 16, Kind.UIMM, doc="entries in the table"),
            _f("scale", 32, Kind.F32, doc="bin = clamp(mode(fs * scale), 0, nbins - 1)"),
            _f("mode", 1, Kind.ENUM, BIN_MODES, doc="floor or round-to-nearest binning"),
        ], "rd, fs, table", "rd = table[bin(fs)]: the entropy -> predicted exit -> operating point lookup."),
        i("bexitp", 0x6B, "ctl", _branch_layout(), "rs1, rs2, target",
          "Forced early exit at the predicted layer (EdgeBERT's countdown): taken when rs1 >= rs2 (signed; rs1 the "
          "layers done, rs2 the predicted exit layer); like bexit, never taken when early exit is disabled."),
        i("dvfs", 0x70, "ctl", [_f("point", 8, Kind.UIMM, doc="operating point index")], "point",
          "Drain all units, then switch to DVFS operating point `point` (charges switching time and energy)."),
        i("dvfsr", 0x71, "ctl", [_f("rs", 4, Kind.REG, doc="register holding the operating point index")], "rs",
          "Like dvfs, with the operating point index taken from a register."),
        i("barrier", 0x78, "ctl", [], "", "Stall the front end until every unit is idle."),
        i("nop", 0x7E, "ctl", [], "", "No operation."),
        i("halt", 0x7F, "ctl", [], "", "Drain all units and stop."),
    ]
    return tuple(table)


def validate_table(table: tuple[Instruction, ...]) -> None:
    """Check the table's consistency; raise IsaTableError naming the instruction at fault."""
    seen_ops: dict[int, str] = {}
    seen_names: set[str] = set()
    for ins in table:
        where = f"instruction '{ins.mnemonic}'"
        if ins.mnemonic in seen_names:
            raise IsaTableError(f"{where}: duplicate mnemonic")
        seen_names.add(ins.mnemonic)
        if not 0 <= ins.opcode < 256:
            raise IsaTableError(f"{where}: opcode {ins.opcode:#x} does not fit in 8 bits")
        if ins.opcode in seen_ops:
            raise IsaTableError(f"{where}: opcode {ins.opcode:#04x} already used by '{seen_ops[ins.opcode]}'")
        seen_ops[ins.opcode] = ins.mnemonic
        if ins.unit not in UNITS:
            raise IsaTableError(f"{where}: unknown unit '{ins.unit}'")
        if [f.name for f in ins.header] != ["opcode", "wait", "signal"] or ins.header[0].lo != 0:
            raise IsaTableError(f"{where}: must start with the opcode/wait/signal header at bit 0")
        used = 0
        names: set[str] = set()
        for f in ins.fields:
            if f.name in names:
                raise IsaTableError(f"{where}: duplicate field '{f.name}'")
            names.add(f.name)
            if f.lo < 0 or f.hi < f.lo or f.hi >= WORD_BITS:
                raise IsaTableError(f"{where}: field '{f.name}' bits {f.lo}..{f.hi} lie outside the {WORD_BITS}-bit word")
            bits = f.mask << f.lo
            if used & bits:
                raise IsaTableError(f"{where}: field '{f.name}' bits {f.lo}..{f.hi} overlap another field")
            used |= bits
            if f.kind in (Kind.ENUM, Kind.SPACE) and not 0 < len(f.choices) <= (1 << f.width):
                raise IsaTableError(f"{where}: field '{f.name}' has {len(f.choices)} choices for {f.width} bits")
            if f.kind is Kind.REG and f.width != 4 or f.kind is Kind.FREG and f.width != 3:
                raise IsaTableError(f"{where}: register field '{f.name}' has the wrong width {f.width}")
            if f.kind is Kind.F32 and f.width != 32 or f.kind is Kind.FLAG and f.width != 1:
                raise IsaTableError(f"{where}: field '{f.name}' of kind {f.kind.value} has width {f.width}")
            lo_val, hi_val = f.value_range()
            if not lo_val <= f.default <= hi_val:
                raise IsaTableError(f"{where}: default of field '{f.name}' is out of range")
            if f.kind is Kind.UNITS and f.width != len(UNITS):
                raise IsaTableError(f"{where}: unit mask '{f.name}' must have {len(UNITS)} bits")
        for name in ins.operands:
            if name not in names:
                raise IsaTableError(f"{where}: syntax names unknown field '{name}'")
            if name in ("opcode", "wait", "signal"):
                raise IsaTableError(f"{where}: header field '{name}' cannot be positional")
        for f in ins.fields:
            for suffix in ("_base", "_space"):
                if f.name.endswith(suffix) and f.name[: -len(suffix)] not in names:
                    raise IsaTableError(f"{where}: companion '{f.name}' has no address field")
            if f.name.endswith("_base") and f.kind is not Kind.REG:
                raise IsaTableError(f"{where}: companion '{f.name}' must be a register")
            if f.name.endswith("_space") and f.kind is not Kind.SPACE:
                raise IsaTableError(f"{where}: companion '{f.name}' must be a memory space")


INSTRUCTIONS: tuple[Instruction, ...] = _build_table()
validate_table(INSTRUCTIONS)

BY_MNEMONIC: dict[str, Instruction] = {ins.mnemonic: ins for ins in INSTRUCTIONS}
BY_OPCODE: dict[int, Instruction] = {ins.opcode: ins for ins in INSTRUCTIONS}
