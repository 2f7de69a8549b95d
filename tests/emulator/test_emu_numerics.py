"""Each instruction's numerics against an independent numpy (or math) reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from emu_helpers import program, read, run_sram, strided

from edgebert.emulator import run
from edgebert.emulator.dispatch import missing_semantics
from edgebert.isa import adaptivfloat
from edgebert.isa.bits import f32_bits
from edgebert.isa.encoding import make
from edgebert.isa.errors import EmulatorTrap
from edgebert.isa.table import BROADCASTS, CMP_MODES, DTYPES, EXIT_COMPARES, FORMATS, SPACES

A, B, C, D, E = 0x0000, 0x4000, 0x8000, 0xC000, 0x10000
RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_every_instruction_has_semantics() -> None:
    assert missing_semantics() == []


# ---- DMA -----------------------------------------------------------------------------------


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("dtype", ["f32", "u8"])
def test_ld_st_strided_roundtrip(space: str, dtype: str) -> None:
    npdt = np.float32 if dtype == "f32" else np.uint8
    x = (RNG.standard_normal((5, 7)) * 50).astype(npdt) if dtype == "f32" else RNG.integers(0, 255, (5, 7), npdt)
    code = [
        # space (pitch 11) -> SRAM packed -> space (pitch 9)
        make("ld", dst=0x100, src=0x40, src_space=SPACES.index(space), src_stride=11, rows=5, cols=7,
             dtype=DTYPES.index(dtype), signal=0b01000),
        make("st", dst=0x2000, dst_space=SPACES.index(space), src=0x100, dst_stride=9, rows=5, cols=7,
             dtype=DTYPES.index(dtype), wait=0b00001),
    ]
    r = run(program(code, {0x40: strided(x, 11)}, space=space), {})
    np.testing.assert_array_equal(read(r, 0x100, (5, 7), npdt), x)
    np.testing.assert_array_equal(read(r, 0x2000, (5, 9), npdt, space=space)[:, :7], x)
    assert r.report["race_count"] == 0


def test_gather_rows_with_table_stride() -> None:
    table = rand(10, 6)
    idx = np.array([3, 0, 9, 3], dtype=np.int32)
    code = [make("gather", dst=C, table=0x80, table_space=SPACES.index("dram"), idx=0x40, table_stride=8,
                 rows=4, cols=6, dtype=DTYPES.index("f32"))]
    p = program(code, {0x40: idx})
    p.segments.append(type(p.segments[0])("dram", 0x80, strided(table, 8).tobytes()))
    r = run(p, {})
    np.testing.assert_array_equal(read(r, C, (4, 6)), table[idx])


# ---- matmul --------------------------------------------------------------------------------


@pytest.mark.parametrize("trans_b", [0, 1])
def test_matmul_dense_strided(trans_b: int) -> None:
    a, b = rand(5, 12), rand(12, 7)
    stored_b = b.T.copy() if trans_b else b
    code = [make("matmul", dst=C, a=A, b=B, m=5, k=12, n=7, a_stride=16, b_stride=20, dst_stride=9, trans_b=trans_b)]
    r = run_sram(code, {A: strided(a, 16), B: strided(stored_b, 20)})
    np.testing.assert_allclose(read(r, C, (5, 9))[:, :7], a @ b, rtol=1e-5, atol=1e-5)


def test_matmul_acc_then_bias() -> None:
    a, b, d0, bias = rand(4, 8), rand(8, 6), rand(4, 6), rand(6)
    code = [make("matmul", dst=C, a=A, b=B, bias=D, m=4, k=8, n=6, acc=1, has_bias=1)]
    r = run_sram(code, {A: a, B: b, C: d0, D: bias})
    expected = (d0 + (a @ b).astype(np.float32)) + bias
    np.testing.assert_allclose(read(r, C, (4, 6)), expected, rtol=1e-6, atol=1e-6)


def test_matmul_af8_operands_exact() -> None:
    a_exp, b_exp = 7, 5
    a_codes = RNG.integers(0, 256, (6, 40), dtype=np.uint8)
    b_codes = RNG.integers(0, 256, (40, 3), dtype=np.uint8)
    af8 = FORMATS.index("af8")
    code = [make("matmul", dst=C, a=A, b=B, m=6, k=40, n=3, a_fmt=af8, b_fmt=af8, a_exp=a_exp, b_exp=b_exp)]
    r = run_sram(code, {A: a_codes, B: b_codes})
    a = adaptivfloat.decode(a_codes, a_exp).astype(np.float64)
    b = adaptivfloat.decode(b_codes, b_exp).astype(np.float64)
    # Products of AF8 values are exact in float64 and so is their sum: one rounding to fp32.
    exact = np.array([[math.fsum(a[i] * b[:, j]) for j in range(3)] for i in range(6)])
    np.testing.assert_array_equal(read(r, C, (6, 3)), exact.astype(np.float32))
    assert r.report["macs_by_format"] == {"f32": 0, "af8": 6 * 40 * 3}


def test_matmul_mixed_af8_a_f32_b() -> None:
    a_codes, b = RNG.integers(0, 256, (3, 16), dtype=np.uint8), rand(16, 4)
    code = [make("matmul", dst=C, a=A, b=B, m=3, k=16, n=4, a_fmt=FORMATS.index("af8"), a_exp=4)]
    r = run_sram(code, {A: a_codes, B: b})
    np.testing.assert_allclose(read(r, C, (3, 4)), adaptivfloat.decode(a_codes, 4) @ b, rtol=1e-5, atol=1e-5)
    assert r.report["macs_by_format"]["f32"] == 3 * 16 * 4


def _sparse_image(stored: np.ndarray, values_dtype) -> tuple[bytes, int]:
    """Bitmask (row-major, LSB-first, padded to 4 bytes) + packed non-zeros, built independently."""
    flat = stored.reshape(-1)
    bits = flat != 0
    mask = bytearray((len(flat) + 31) // 32 * 4)
    for i, bit in enumerate(bits):
        if bit:
            mask[i // 8] |= 1 << (i % 8)
    return bytes(mask) + flat[bits].astype(values_dtype).tobytes(), int(bits.sum())


@pytest.mark.parametrize("trans_b", [0, 1])
def test_matmul_sparse_f32(trans_b: int) -> None:
    a, b = rand(4, 13), rand(13, 5)
    b[RNG.random(b.shape) < 0.6] = 0.0
    stored = b.T.copy() if trans_b else b
    image, nnz = _sparse_image(stored, np.float32)
    code = [make("matmul", dst=C, a=A, b=B, m=4, k=13, n=5, sparse=1, trans_b=trans_b, b_stride=999)]
    r = run_sram(code, {A: a, B: np.frombuffer(image, np.uint8)})
    np.testing.assert_allclose(read(r, C, (4, 5)), a @ b, rtol=1e-5, atol=1e-5)
    assert r.report["macs"] == 4 * nnz


def test_matmul_sparse_af8() -> None:
    codes = RNG.integers(1, 256, (9, 6), dtype=np.uint8)
    codes[RNG.random(codes.shape) < 0.5] = 0
    a_codes = RNG.integers(0, 256, (2, 9), dtype=np.uint8)
    image, nnz = _sparse_image(codes, np.uint8)
    af8 = FORMATS.index("af8")
    code = [make("matmul", dst=C, a=A, b=B, m=2, k=9, n=6, sparse=1, a_fmt=af8, b_fmt=af8, a_exp=2, b_exp=3)]
    r = run_sram(code, {A: a_codes, B: np.frombuffer(image, np.uint8)})
    a = adaptivfloat.decode(a_codes, 2).astype(np.float64)
    b = adaptivfloat.decode(codes, 3).astype(np.float64)
    np.testing.assert_array_equal(read(r, C, (2, 6)), (a @ b).astype(np.float32))
    assert r.report["macs"] == 2 * nnz


# ---- SFU -----------------------------------------------------------------------------------

BINARY = {"vadd": np.add, "vsub": np.subtract, "vmul": np.multiply, "vmax": np.maximum, "vmin": np.minimum,
          "vdiv": np.divide}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("bcast", BROADCASTS)
def test_binary_broadcasts(op: str, bcast: str) -> None:
    a = rand(3, 5)
    full = rand(3, 5) + 3.0
    b_data = {"none": strided(full, 8), "row": full[0], "col": full[:, 0].copy(), "scalar": full[0, :1]}[bcast]
    b_ref = {"none": full, "row": full[:1], "col": full[:, :1], "scalar": full[0, 0]}[bcast]
    code = [make(op, dst=C, a=A, b=B, rows=3, cols=5, a_stride=6, b_stride=8, dst_stride=7,
                 bcast=BROADCASTS.index(bcast))]
    r = run_sram(code, {A: strided(a, 6), B: b_data})
    np.testing.assert_array_equal(read(r, C, (3, 7))[:, :5], BINARY[op](a, b_ref).astype(np.float32))


@pytest.mark.parametrize(("op", "ref"), [("vaddi", lambda x, c: x + c), ("vmuli", lambda x, c: x * c)])
def test_immediate_ops(op: str, ref) -> None:
    x = rand(4, 4)
    r = run_sram([make(op, dst=C, src=A, rows=4, cols=4, imm=f32_bits(-1.75))], {A: x})
    np.testing.assert_array_equal(read(r, C, (4, 4)), ref(x, np.float32(-1.75)))


def _gelu_tanh_ref(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


UNARY = {
    "vmov": lambda x: x,
    "gelu": _gelu_tanh_ref,
    "gelu_erf": lambda x: np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(x.astype(np.float64)),
    "tanh": lambda x: np.tanh(x.astype(np.float64)),
    "relu": lambda x: np.maximum(x, 0),
    "exp": lambda x: np.exp(x.astype(np.float64)),
    "erf": lambda x: np.vectorize(math.erf)(x.astype(np.float64)),
    "log": lambda x: np.log(np.abs(x.astype(np.float64))),
    "sqrt": lambda x: np.sqrt(np.abs(x.astype(np.float64))),
}
_POSITIVE = {"log", "sqrt"}  # tested on |x|


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_ops_strided(op: str) -> None:
    x = rand(6, 10) * 3
    if op in _POSITIVE:
        x = np.abs(x)
    r = run_sram([make(op, dst=C, src=A, rows=6, cols=10, src_stride=12, dst_stride=11)], {A: strided(x, 12)})
    np.testing.assert_allclose(read(r, C, (6, 11))[:, :10], UNARY[op](x), rtol=2e-6, atol=2e-6)


def test_itof() -> None:
    x = RNG.integers(-(2**31), 2**31 - 1, (3, 4), dtype=np.int32)
    r = run_sram([make("itof", dst=C, src=A, rows=3, cols=4)], {A: x})
    np.testing.assert_array_equal(read(r, C, (3, 4)), x.astype(np.float32))


def test_ftoi_truncates_and_traps_outside_int32() -> None:
    x = np.array([[2.7, -2.7, 0.4, -0.0], [1e9, -2.0**31, 3.0, 16777217.0]], np.float32)
    r = run_sram([make("ftoi", dst=C, src=A, rows=2, cols=4)], {A: x})
    np.testing.assert_array_equal(read(r, C, (2, 4), np.int32), np.trunc(x).astype(np.int32))
    for bad in (np.nan, 2.0**31, -np.inf):
        with pytest.raises(EmulatorTrap, match="ftoi of"):
            run_sram([make("ftoi", dst=C, src=A, rows=1, cols=1)], {A: np.array([bad], np.float32)})


@pytest.mark.parametrize("mode", CMP_MODES)
@pytest.mark.parametrize("bcast", ["none", "row", "scalar"])
def test_vcmp(mode: str, bcast: str) -> None:
    a = RNG.integers(-2, 3, (4, 6)).astype(np.float32)
    a[0, 0] = np.nan
    b = {"none": RNG.integers(-2, 3, (4, 6)), "row": RNG.integers(-2, 3, (1, 6)),
         "scalar": np.array([[1]])}[bcast].astype(np.float32)
    code = [make("vcmp", dst=C, a=A, b=B, rows=4, cols=6, mode=CMP_MODES.index(mode), bcast=BROADCASTS.index(bcast))]
    r = run_sram(code, {A: a, B: b})
    ref = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal}[mode](a, np.broadcast_to(b, a.shape))
    np.testing.assert_array_equal(read(r, C, (4, 6)), ref.astype(np.float32))


@pytest.mark.parametrize("exclusive", [0, 1])
def test_vscan_prefix_sums_rows_in_order(exclusive: int) -> None:
    x = rand(3, 9)
    r = run_sram([make("vscan", dst=C, src=A, rows=3, cols=9, src_stride=10, exclusive=exclusive)],
                 {A: strided(x, 10)})
    want = np.zeros_like(x)
    for i in range(3):
        acc = np.float32(0)
        for j in range(9):
            if exclusive:
                want[i, j] = acc
            acc = np.float32(acc + x[i, j])
            if not exclusive:
                want[i, j] = acc
    np.testing.assert_array_equal(read(r, C, (3, 9)), want)


def test_layernorm() -> None:
    x, g, b = rand(5, 32) * 4 + 1, rand(32), rand(32)
    eps = 1e-12
    code = [make("layernorm", dst=C, src=A, gamma=B, beta=D, rows=5, cols=32, src_stride=40, eps=f32_bits(eps))]
    r = run_sram(code, {A: strided(x, 40), B: g, D: b})
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + np.float32(eps)) * g + b
    np.testing.assert_allclose(read(r, C, (5, 32)), ref, rtol=1e-6, atol=1e-6)


def _softmax_ref(x, scale, mask, span, ramp, row0, col0):
    x = x.astype(np.float64) * scale + (0 if mask is None else mask)
    out = np.zeros_like(x)
    for r in range(x.shape[0]):
        w = np.ones(x.shape[1])
        if span:
            for c in range(x.shape[1]):
                dist = abs((row0 + r) - (col0 + c))
                w[c] = (dist <= span) if ramp == 0 else min(max((ramp + span - dist) / ramp, 0), 1)
        e = w * np.exp(x[r] - x[r].max())
        out[r] = e / e.sum() if e.sum() > 0 else 0
    return out


@pytest.mark.parametrize(
    ("has_mask", "span", "ramp", "row0", "col0"),
    [(0, 0, 0, 0, 0), (1, 0, 0, 0, 0), (1, 3, 2, 4, 0), (0, 2, 0, 1, 3), (0, 1, 0, 0, 20)],
)
def test_softmax(has_mask: int, span: int, ramp: int, row0: int, col0: int) -> None:
    x, mask = rand(6, 9) * 3, np.where(RNG.random(9) < 0.3, -1e4, 0.0).astype(np.float32)
    code = [make("softmax", dst=C, src=A, mask=B, rows=6, cols=9, src_stride=10, has_mask=has_mask,
                 scale=f32_bits(0.125), span=span, ramp=ramp, row0=row0, col0=col0)]
    r = run_sram(code, {A: strided(x, 10), B: mask})
    ref = _softmax_ref(x, np.float32(0.125), mask if has_mask else None, span, ramp, row0, col0)
    np.testing.assert_allclose(read(r, C, (6, 9)), ref, rtol=1e-6, atol=1e-7)


def test_entropy_is_shannon_entropy_of_softmax() -> None:
    x = rand(7) * 2
    r = run_sram([make("entropy", fd=3, src=A, n=7), make("flw", fd=0, src=0, src_space=2)], {A: x})
    p = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    assert r.machine.fregs[3] == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-6)


def test_quant_dequant_roundtrip() -> None:
    x = rand(4, 9)
    code = [
        make("quant", dst=C, src=A, rows=4, cols=9, src_stride=10, dst_stride=12, exp_bias=6),
        make("dequant", dst=D, src=C, rows=4, cols=9, src_stride=12, exp_bias=6),
    ]
    r = run_sram(code, {A: strided(x, 10)})
    np.testing.assert_array_equal(read(r, C, (4, 12), np.uint8)[:, :9], adaptivfloat.encode(x, 6))
    np.testing.assert_array_equal(read(r, D, (4, 9)), adaptivfloat.quantize(x, 6))


# ---- control -------------------------------------------------------------------------------


def test_scalar_alu_wraps_and_r0_is_zero() -> None:
    code = [
        make("li", rd=1, imm=2**31 - 1),
        make("addi", rd=2, rs1=1, imm=1),  # wraps to -2^31
        make("li", rd=3, imm=-7),
        make("mul", rd=4, rs1=3, rs2=1),
        make("sub", rd=5, rs1=3, rs2=1),
        make("add", rd=6, rs1=1, rs2=1),
        make("li", rd=0, imm=99),
    ]
    regs = run_sram(code).machine.regs
    wrap = lambda v: (v + 2**31) % 2**32 - 2**31  # noqa: E731
    assert regs[:7] == [0, 2**31 - 1, -(2**31), -7, wrap(-7 * (2**31 - 1)), wrap(-7 - (2**31 - 1)), wrap(2 * (2**31 - 1))]


def test_loop_with_branches_and_word_memory() -> None:
    # sum = 0; for i in 0..9: sum += i; store sum at dram[0x10]; loads it back with lw.
    code = [
        make("li", rd=1, imm=0),  # i
        make("li", rd=2, imm=0),  # sum
        make("li", rd=3, imm=10),
        make("add", rd=2, rs1=2, rs2=1),  # 3: loop
        make("addi", rd=1, rs1=1, imm=1),
        make("blt", rs1=1, rs2=3, target=3),
        make("sw", rs=2, dst=0x10, dst_space=SPACES.index("dram")),
        make("lw", rd=4, src=0x10, src_space=SPACES.index("dram")),
        make("beq", rs1=4, rs2=2, target=10),
        make("li", rd=5, imm=1),  # skipped
        make("bne", rs1=4, rs2=0, target=12),  # 10
        make("li", rd=6, imm=1),  # skipped
        make("bge", rs1=0, rs2=4, target=14),  # 12: not taken
        make("jmp", target=15),
        make("li", rd=7, imm=1),  # 14: skipped
    ]
    r = run_sram(code)
    assert r.machine.regs[1:8] == [10, 45, 10, 45, 0, 0, 0]
    assert r.report["instruction_mix"]["add"] == 10


def test_fli_flw_bexit_bexitr() -> None:
    code = [
        make("fli", fd=1, imm=f32_bits(0.25)),
        make("flw", fd=2, src=A, src_space=SPACES.index("sram")),
        make("bexit", fs=1, threshold=f32_bits(0.25), target=4),  # 0.25 < 0.25: not taken
        make("li", rd=1, imm=1),
        make("bexitr", fs=1, ft=2, target=6),  # 0.25 < 0.5: taken
        make("li", rd=2, imm=1),
        make("bexit", fs=1, threshold=f32_bits(0.3), target=8),  # taken
        make("li", rd=3, imm=1),
    ]
    r = run_sram(code, {A: np.array([0.5], np.float32)})
    assert r.machine.fregs[2] == 0.5
    assert r.machine.regs[1:4] == [1, 0, 0]


@pytest.mark.parametrize(("value", "cmp", "taken"), [
    (0.25, "lt", False), (0.25, "le", True), (0.2499, "lt", True), (0.2501, "le", False),
    (float("inf"), "le", False), (float("nan"), "le", False),
])
@pytest.mark.parametrize("register", [False, True], ids=["bexit", "bexitr"])
def test_exit_comparison(value: float, cmp: str, taken: bool, register: bool) -> None:
    """cmp=lt exits when H < threshold (EdgeBERT's software), cmp=le when H <= threshold (its entropy unit); the
    threshold is the fp32 bit pattern, compared exactly; early exit disabled never exits."""
    c = EXIT_COMPARES.index(cmp)
    branch = make("bexitr", fs=1, ft=2, target=4, cmp=c) if register else \
        make("bexit", fs=1, threshold=f32_bits(0.25), target=4, cmp=c)
    code = [make("fli", fd=1, imm=f32_bits(value)), make("fli", fd=2, imm=f32_bits(0.25)), branch,
            make("li", rd=1, imm=1)]
    assert run_sram(code).machine.regs[1] == (0 if taken else 1)
    assert run_sram(code, disable_early_exit=True).machine.regs[1] == 1


@pytest.mark.parametrize(("done", "predicted", "taken"), [(1, 3, False), (3, 3, True), (4, 3, True), (-1, 0, False)])
def test_bexitp_forced_exit_at_the_prediction(done: int, predicted: int, taken: bool) -> None:
    """bexitp (the predictor's countdown): exits when the layers done reach the predicted exit layer (signed >=);
    disabled with early exit like bexit."""
    code = [make("li", rd=3, imm=done), make("li", rd=4, imm=predicted), make("bexitp", rs1=3, rs2=4, target=4),
            make("li", rd=1, imm=1)]
    assert run_sram(code).machine.regs[1] == (0 if taken else 1)
    assert run_sram(code, disable_early_exit=True).machine.regs[1] == 1


@pytest.mark.parametrize(("value", "mode", "expected_bin"), [
    (0.26, "floor", 2), (0.26, "nearest", 3), (-1.0, "floor", 0), (5.0, "floor", 4), (0.35, "nearest", 4),
])
def test_lut_binning(value: float, mode: str, expected_bin: int) -> None:
    table = np.array([10, 11, 12, 13, 14], dtype=np.int32)
    code = [
        make("fli", fd=4, imm=f32_bits(value)),
        make("lut", rd=7, fs=4, table=0x40, table_space=SPACES.index("sram"), nbins=5, scale=f32_bits(10.0),
             mode=["floor", "nearest"].index(mode)),
    ]
    assert run_sram(code, {0x40: table}).machine.regs[7] == 10 + expected_bin
