"""Special-function-unit semantics: element-wise ops and comparisons, GELU, log/sqrt/erf, prefix sums, int<->float
conversion, layer norm, softmax, entropy, AF8 (de)quantization."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgebert.emulator.memory import SRAM, Fault, tile
from edgebert.isa import adaptivfloat
from edgebert.isa.bits import bits_f32
from edgebert.isa.encoding import Inst
from edgebert.isa.table import BROADCASTS, CMP_MODES

if TYPE_CHECKING:
    from edgebert.emulator.machine import Machine

Run = Callable[[], int]
BCAST_NONE, BCAST_ROW, BCAST_COL, BCAST_SCALAR = (BROADCASTS.index(b) for b in ("none", "row", "col", "scalar"))


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf in float64 (Numerical Recipes `erfcc`, Chebyshev fit, fractional error < 1.2e-7)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def _gelu_tanh(x: np.ndarray, out: np.ndarray) -> None:
    # HF gelu_new operation order, in float32.
    c = np.float32(math.sqrt(2.0 / math.pi))
    inner = c * (x + np.float32(0.044715) * (x * x * x))
    np.multiply(np.float32(0.5) * x, np.float32(1.0) + np.tanh(inner), out=out)


def _gelu_erf(x: np.ndarray, out: np.ndarray) -> None:
    x64 = x.astype(np.float64)
    out[...] = 0.5 * x64 * (1.0 + erf(x64 / math.sqrt(2.0)))


def _relu(x: np.ndarray, out: np.ndarray) -> None:
    np.maximum(x, np.float32(0.0), out=out)


def _itof(x: np.ndarray, out: np.ndarray) -> None:
    out[...] = x


_INT32 = (-(2.0**31), 2.0**31)


def _ftoi(x: np.ndarray, out: np.ndarray) -> None:
    """float32 -> int32 rounding toward zero (ONNX Cast, C); NaN and values outside int32 trap."""
    t = np.trunc(x.astype(np.float64))
    bad = ~((t >= _INT32[0]) & (t < _INT32[1]))
    if bad.any():
        raise Fault(f"ftoi of {float(x[bad].reshape(-1)[0])!r}: not an int32 value")
    out[...] = t.astype(np.int32)


def _erf(x: np.ndarray, out: np.ndarray) -> None:
    out[...] = erf(x.astype(np.float64))


def _log(x: np.ndarray, out: np.ndarray) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):  # IEEE: log 0 = -inf, log of a negative = NaN
        np.log(x, out=out)


def _sqrt(x: np.ndarray, out: np.ndarray) -> None:
    with np.errstate(invalid="ignore"):
        np.sqrt(x, out=out)




def _costs(m: Machine, mnemonic: str, rows: int, cols: int) -> tuple[int, int]:
    """(element-passes, cycles) of an SFU instruction over a rows x cols tile (the config's cost model)."""
    return m.costs.sfu_passes(mnemonic) * rows * cols, m.costs.sfu(mnemonic, rows, cols)


def _charge(m: Machine, passes: int, read: int, written: int, cycles: int) -> int:
    """Count an SFU instruction's element-passes and SRAM traffic; return its cycles."""
    seg = m.seg
    seg.sfu_passes += passes
    seg.read[SRAM] += read
    seg.written[SRAM] += written
    return cycles


def _operand(m: Machine, buf: np.ndarray | None, v: dict[str, int], name: str, rows: int, cols: int, stride: int,
             item: int = 4, write: bool = False) -> np.ndarray:
    """The SRAM tile of operand `name` (address: register `{name}_base` + field `{name}`), checked and recorded for
    race detection; None when `buf` is None (timing-only)."""
    address = m.regs[v[f"{name}_base"]] + v[name]
    return tile(buf, m.mem.sizes[SRAM], SRAM, address, rows, cols, stride, item, m.acc, write, name)


def _binary(ufunc: np.ufunc) -> Callable[[Inst, Machine], Run]:
    def factory(inst: Inst, m: Machine) -> Run:
        v = inst.values
        rows, cols, bcast = v["rows"], v["cols"], v["bcast"]
        b_shape = {BCAST_NONE: (rows, cols), BCAST_ROW: (1, cols), BCAST_COL: (rows, 1), BCAST_SCALAR: (1, 1)}[bcast]
        b_stride = v["b_stride"] if bcast == BCAST_NONE else 0
        passes, cycles = _costs(m, inst.mnemonic, rows, cols)
        read, written = (rows * cols + b_shape[0] * b_shape[1]) * 4, rows * cols * 4
        f32 = m.mem.f32[SRAM]

        def run() -> int:
            buf = None if m.timing_only else f32
            a = _operand(m, buf, v, "a", rows, cols, v["a_stride"])
            b = _operand(m, buf, v, "b", b_shape[0], b_shape[1], b_stride)
            d = _operand(m, buf, v, "dst", rows, cols, v["dst_stride"], write=True)
            if buf is not None:
                ufunc(a, b, out=d)
            return _charge(m, passes, read, written, cycles)

        return run

    return factory


def _unary(
    fn: Callable[[np.ndarray, np.ndarray], None], src_item: int = 4, dst_item: int = 4, src_kind: str = "f32",
    dst_kind: str | None = None,
) -> Callable[[Inst, Machine], Run]:
    def factory(inst: Inst, m: Machine) -> Run:
        v = inst.values
        rows, cols = v["rows"], v["cols"]
        passes, cycles = _costs(m, inst.mnemonic, rows, cols)
        read, written = rows * cols * src_item, rows * cols * dst_item
        mem = m.mem
        views = {"f32": mem.f32[SRAM], "i32": mem.i32[SRAM], "u8": mem.u8[SRAM]}
        src_buf = views[src_kind]
        dst_buf = views[dst_kind or ("f32" if dst_item == 4 else "u8")]
        op = fn(inst) if getattr(fn, "needs_inst", False) else fn

        def run() -> int:
            t = m.timing_only
            s = _operand(m, None if t else src_buf, v, "src", rows, cols, v["src_stride"], src_item)
            d = _operand(m, None if t else dst_buf, v, "dst", rows, cols, v["dst_stride"], dst_item, write=True)
            if not t:
                op(s, d)
            return _charge(m, passes, read, written, cycles)

        return run

    return factory


def _with_inst(builder: Callable[[Inst], Callable[[np.ndarray, np.ndarray], None]]) -> Callable:
    builder.needs_inst = True  # type: ignore[attr-defined]
    return builder


@_with_inst
def _addi(inst: Inst) -> Callable[[np.ndarray, np.ndarray], None]:
    imm = np.float32(bits_f32(inst["imm"]))
    return lambda s, d: np.add(s, imm, out=d)


@_with_inst
def _muli(inst: Inst) -> Callable[[np.ndarray, np.ndarray], None]:
    imm = np.float32(bits_f32(inst["imm"]))
    return lambda s, d: np.multiply(s, imm, out=d)


@_with_inst
def _quant(inst: Inst) -> Callable[[np.ndarray, np.ndarray], None]:
    bias = inst["exp_bias"]

    def op(s: np.ndarray, d: np.ndarray) -> None:
        if np.isnan(s).any():
            raise Fault("quant of NaN")
        d[...] = adaptivfloat.encode(s, bias)

    return op


@_with_inst
def _dequant(inst: Inst) -> Callable[[np.ndarray, np.ndarray], None]:
    table = adaptivfloat.DECODE_TABLE[inst["exp_bias"]]

    def op(s: np.ndarray, d: np.ndarray) -> None:
        d[...] = table[s]

    return op


@_with_inst
def _scan(inst: Inst) -> Callable[[np.ndarray, np.ndarray], None]:
    exclusive = bool(inst["exclusive"])

    def op(s: np.ndarray, d: np.ndarray) -> None:
        total = np.cumsum(s, axis=1, dtype=np.float32)  # sequential fp32 adds along each row
        if exclusive:
            d[:, 1:] = total[:, :-1]
            d[:, :1] = 0.0
        else:
            d[...] = total

    return op


_CMP_UFUNCS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
               "ge": np.greater_equal}


def _vcmp(inst: Inst, m: Machine) -> Run:
    """dst = 1.0 where (a mode b) holds, else 0.0 (`_binary`'s operands and broadcasting)."""
    ufunc = _CMP_UFUNCS[CMP_MODES[inst["mode"]]]

    def compare(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        out[...] = ufunc(a, b)

    return _binary(compare)(inst, m)


def compile_layernorm(inst: Inst, m: Machine) -> Run:
    """(x - mean) / sqrt(var + eps) * gamma + beta per row; statistics in float64, result rounded to fp32."""
    v = inst.values
    rows, cols = v["rows"], v["cols"]
    eps = bits_f32(v["eps"])
    passes, cycles = _costs(m, "layernorm", rows, cols)
    read, written = (rows * cols + 2 * cols) * 4, rows * cols * 4
    f32 = m.mem.f32[SRAM]

    def run() -> int:
        buf = None if m.timing_only else f32
        s = _operand(m, buf, v, "src", rows, cols, v["src_stride"])
        g = _operand(m, buf, v, "gamma", 1, cols, 0)
        b = _operand(m, buf, v, "beta", 1, cols, 0)
        d = _operand(m, buf, v, "dst", rows, cols, v["dst_stride"], write=True)
        if buf is not None and cols:  # empty rows: nothing to normalise
            x = s.astype(np.float64)
            centred = x - x.mean(axis=1, keepdims=True)
            var = np.mean(centred * centred, axis=1, keepdims=True)
            d[...] = centred / np.sqrt(var + eps) * g + b
        return _charge(m, passes, read, written, cycles)

    return run


def span_mask(rows: int, cols: int, row0: int, col0: int, span: int, ramp: int) -> np.ndarray:
    """The adaptive-attention-span soft mask m(i, j) = clamp((ramp + span - |i - j|) / ramp, 0, 1)."""
    dist = np.abs((row0 + np.arange(rows))[:, None] - (col0 + np.arange(cols))[None, :]).astype(np.float64)
    if ramp == 0:
        return (dist <= span).astype(np.float64)
    return np.clip((ramp + span - dist) / ramp, 0.0, 1.0)


def compile_softmax(inst: Inst, m: Machine) -> Run:
    """Row softmax of src*scale (+ mask row), weighted by the span mask; float64 inside, fp32 out.

    A row whose weights are all zero (fully masked) becomes all zeros. A row holding NaN or +inf (after scale
    and mask) becomes all NaN, as onnxruntime's and numpy's exp(x - max) / sum give: never silently zeros.
    """
    v = inst.values
    rows, cols = v["rows"], v["cols"]
    scale = bits_f32(v["scale"])
    has_mask, span = v["has_mask"], v["span"]
    weights = span_mask(rows, cols, v["row0"], v["col0"], span, v["ramp"]) if span else None
    passes, cycles = _costs(m, "softmax", rows, cols)
    read, written = (rows * cols + (cols if has_mask else 0)) * 4, rows * cols * 4
    f32 = m.mem.f32[SRAM]

    def run() -> int:
        buf = None if m.timing_only else f32
        s = _operand(m, buf, v, "src", rows, cols, v["src_stride"])
        mask = _operand(m, buf, v, "mask", 1, cols, 0) if has_mask else None
        d = _operand(m, buf, v, "dst", rows, cols, v["dst_stride"], write=True)
        if buf is not None and cols:
            x = s.astype(np.float64) * scale
            if mask is not None:
                x = x + mask
            top = x.max(axis=1, keepdims=True)  # NaN when the row holds a NaN
            top[np.isneginf(top)] = 0.0  # an all -inf row: every weight is 0, the row becomes zeros
            e = np.exp(x - top)  # +inf - +inf and anything - NaN are NaN
            if weights is not None:
                e *= weights
            total = e.sum(axis=1, keepdims=True)
            d[...] = np.divide(e, total, out=np.zeros_like(e), where=total != 0)
        return _charge(m, passes, read, written, cycles)

    return run


def entropy_of(x: np.ndarray) -> float:
    """log(sum exp(x - max)) - sum((x - max) exp(x - max)) / sum exp(x - max), in float64."""
    x = x.astype(np.float64) - np.max(x)
    e = np.exp(x)
    total = e.sum()
    return float(np.log(total) - np.dot(x, e) / total)


def compile_entropy(inst: Inst, m: Machine) -> Run:
    """fd = entropy of softmax(src[0:n]) (or the next injected value when an entropy trace is given)."""
    v = inst.values
    n, fd = v["n"], v["fd"]
    passes, cycles = _costs(m, "entropy", 1, n)
    f32, fregs = m.mem.f32[SRAM], m.fregs

    def run() -> int:
        x = _operand(m, None if m.timing_only else f32, v, "src", 1, n, 0)
        if n == 0:
            raise Fault("entropy of an empty vector (n = 0)")
        value = m.next_injected_entropy()
        if value is None and m.timing_only:
            raise Fault("timing-only runs need injected entropies (an entropy trace): the logits are not computed")
        fregs[fd] = float(np.float32(entropy_of(x[0]) if value is None else value))
        m.entropy_log.append(fregs[fd])
        return _charge(m, passes, n * 4, 0, cycles)

    return run


FACTORIES: dict[str, Callable[[Inst, Machine], Run]] = {
    "vadd": _binary(np.add),
    "vsub": _binary(np.subtract),
    "vmul": _binary(np.multiply),
    "vmax": _binary(np.maximum),
    "vmin": _binary(np.minimum),
    "vdiv": _binary(np.divide),
    "vaddi": _unary(_addi),
    "vmuli": _unary(_muli),
    "vmov": _unary(lambda s, d: np.copyto(d, s)),
    "gelu": _unary(_gelu_tanh),
    "gelu_erf": _unary(_gelu_erf),
    "tanh": _unary(lambda s, d: np.tanh(s, out=d)),
    "relu": _unary(_relu),
    "exp": _unary(lambda s, d: np.exp(s, out=d)),
    "itof": _unary(_itof, src_kind="i32"),
    "ftoi": _unary(_ftoi, dst_kind="i32"),
    "vcmp": _vcmp,
    "vscan": _unary(_scan),
    "log": _unary(_log),
    "sqrt": _unary(_sqrt),
    "erf": _unary(_erf),
    "quant": _unary(_quant, dst_item=1),
    "dequant": _unary(_dequant, src_item=1, src_kind="u8"),
    "layernorm": compile_layernorm,
    "softmax": compile_softmax,
    "entropy": compile_entropy,
}
