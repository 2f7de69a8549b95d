"""Matmul tiling to the PU limits, with constant weights streamed through SRAM staging buffers (or read in place)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgebert.compiler.compression import CompressionOptions, InPlaceFormat, WeightFormat, encode_tile
from edgebert.compiler.emitters import add_operand
from edgebert.compiler.errors import StagingTooSmall
from edgebert.compiler.tile_ir import Buffer, TileInst, TileProgram
from edgebert.compiler.tiling import MAX_FIELD
from edgebert.compiler.views import View
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.table import DTYPES, FORMATS

PREFERRED_N_VECTORS = 16  # weight tiles this many PU vectors wide keep per-instruction overheads small


@dataclass
class StagingRing:
    """SRAM buffers weight tiles rotate through; with two, loading tile t+1 overlaps computing tile t."""

    buffers: list[Buffer]
    nbytes: int
    next: int = 0

    def take(self) -> Buffer:
        buf = self.buffers[self.next % len(self.buffers)]
        self.next += 1
        return buf


@dataclass
class PackedWeight:
    """A constant weight [K, N] (float32 values) with its storage format; `const(raw, what)` makes (and
    deduplicates) the eNVM constant of one encoded tile."""

    values: np.ndarray
    fmt: WeightFormat
    const: Callable[[bytes, str], Buffer]
    #: (k0, n0, k, n, constant buffer (eNVM tile, or the whole SRAM weight), sparse) of every tile, for inspection
    tiles: list[tuple[int, int, int, int, Buffer, bool]] = field(default_factory=list)
    #: the whole weight as one SRAM constant (InPlaceFormat), made on first use
    whole: Buffer | None = None
    #: AF8 codes of the whole weight (tiles are slices of it; compression.CompressionOptions.af8_codes)
    codes: np.ndarray | None = None

    def tile_bytes(self, k0: int, kk: int, n0: int, nn: int, sparse: bool) -> bytes:
        """The stored bytes of one tile (encode_tile, from the cached codes when there are some)."""
        tile = self.values[k0 : k0 + kk, n0 : n0 + nn]
        codes = self.codes[k0 : k0 + kk, n0 : n0 + nn] if self.codes is not None else None
        return encode_tile(tile, self.fmt, sparse, codes)


def sram_const(prog: TileProgram, raw: bytes) -> Buffer:
    """A constant read in place from SRAM (deduplicated by content among those): the memory planner puts it above the
    activations, the multi-task linker (compiler/link.py) into the SRAM task region."""
    buf = next((b for b in prog.buffers if b.kind == "const" and b.space == "sram" and b.data == raw), None)
    return buf or prog.buffer(f"const.in_place.{len(prog.buffers)}", max(len(raw), 4), "const", "sram", raw)


def in_place_bias(prog: TileProgram, compression: CompressionOptions | None, weight: np.ndarray,
                  bias: np.ndarray) -> View | None:
    """The bias row [N] of a matmul whose constant weight is read in place (InPlaceFormat): an SRAM constant read in
    place as well (no `ld`); None for any other weight."""
    if compression is None or not compression.task_weights_in_place or weight.ndim != 2 or \
            not isinstance(compression.weight_format(weight), InPlaceFormat):
        return None
    data = np.ascontiguousarray(bias, np.float32)
    return View(sram_const(prog, data.tobytes()), 0, data.shape, (1,), "f32")


def _in_place_tile(
    prog: TileProgram, packed: PackedWeight, k0: int, kk: int, n0: int, nn: int
) -> tuple[View, dict[str, int], int]:
    """The matmul's b view of one tile of an in-place weight (no `ld`), its format fields and b_stride."""
    fmt = packed.fmt
    k_all, n_all = packed.values.shape
    if packed.whole is None:
        packed.whole = sram_const(prog, encode_tile(packed.values, fmt, False))
    dtype = "af8" if fmt.af8_bias is not None else "f32"
    view = View(packed.whole, k0 * n_all + n0, (kk, nn), (n_all, 1), dtype)
    packed.tiles.append((k0, n0, kk, nn, packed.whole, False))
    fields = {"sparse": 0}
    if fmt.af8_bias is not None:
        fields.update(b_fmt=FORMATS.index("af8"), b_exp=fmt.af8_bias)
    return view, fields, _check_stride("in-place weight", n_all if kk > 1 else 0)


def _load_packed_tile(
    prog: TileProgram, ring: StagingRing, packed: PackedWeight, k0: int, kk: int, n0: int, nn: int
) -> tuple[View, dict[str, int]]:
    """`ld` one encoded weight tile into a staging buffer; returns the matmul's b view and format fields."""
    fmt = packed.fmt
    raw = packed.tile_bytes(k0, kk, n0, nn, fmt.sparse)
    sparse = fmt.sparse and len(raw) <= ring.nbytes and len(raw) < kk * nn * fmt.itemsize
    if not sparse and fmt.sparse:
        raw = packed.tile_bytes(k0, kk, n0, nn, False)
    stage = ring.take()
    if sparse:  # raw bytes: bitmask then packed non-zeros, as rows of at most MAX_FIELD bytes (zero padded)
        rows = -(-len(raw) // MAX_FIELD)
        cols = -(-len(raw) // rows)
        raw += bytes(rows * cols - len(raw))
        shape, dtype = (rows, cols), "u8"
    else:
        shape, dtype = (kk, nn), "af8" if fmt.af8_bias is not None else "f32"
    src = packed.const(raw, "sparse" if sparse else "af8")
    packed.tiles.append((k0, n0, kk, nn, src, sparse))
    dst = View(stage, 0, shape, (shape[1], 1), dtype)
    inst = TileInst(
        "ld", {"rows": shape[0], "cols": shape[1], "dst_stride": 0, "src_stride": 0, "dtype": DTYPES.index(dtype)}
    )
    add_operand(inst, "src", View(src, 0, shape, (shape[1], 1), dtype), 0, shape[0] * shape[1], False)
    add_operand(inst, "dst", dst, 0, shape[0] * shape[1], True)
    prog.emit(inst)
    fields = {"sparse": int(sparse)}
    if fmt.af8_bias is not None:
        fields.update(b_fmt=FORMATS.index("af8"), b_exp=fmt.af8_bias)
    return dst, fields


def weight_tile_shape(hw: HardwareConfig, k: int, n: int, budget: int, itemsize: int = 4) -> tuple[int, int]:
    """(k_t, n_t) of weight tiles fitting `budget` bytes: the whole reduction when that leaves a wide tile,
    else wide tiles (PREFERRED_N_VECTORS vectors) over a split reduction; multiples of the vector size."""
    vs = hw.pu.vector_size
    k_t = min(k, hw.pu.max_k)
    n_t = min(n, hw.pu.max_n, budget // (itemsize * k_t))
    if n_t >= vs and n_t < n:
        n_t -= n_t % vs
    wide = min(n, hw.pu.max_n, PREFERRED_N_VECTORS * vs)
    if n_t < wide // 2:
        n_t = wide
        k_t = min(k, hw.pu.max_k, budget // (itemsize * n_t))
        if k_t >= vs and k_t < k:
            k_t -= k_t % vs
    if k_t < 1 or n_t < 1:
        raise StagingTooSmall(budget, itemsize)
    return k_t, n_t


def _check_stride(what: str, stride: int) -> int:
    if stride < 0 or stride > MAX_FIELD:
        raise CompileError(f"{what}: row stride {stride} does not fit the 16-bit stride field")
    return stride


def load_weight_tile(prog: TileProgram, ring: StagingRing, b: View, packed: PackedWeight | None, k0: int, kk: int,
                     n0: int, nn: int, name: str) -> tuple[View, int, int, dict[str, int]]:
    """One [kk, nn] tile of a constant b (rows k0.., columns n0..): loaded into the next staging buffer (or, for an
    in-place weight, a view of the SRAM constant). Returns the matmul's b view, trans_b, b_stride and format fields."""
    if packed is not None and isinstance(packed.fmt, InPlaceFormat):
        b_view, fmt_fields, b_stride = _in_place_tile(prog, packed, k0, kk, n0, nn)
        return b_view, 0, b_stride, fmt_fields
    if packed is not None:
        b_view, fmt_fields = _load_packed_tile(prog, ring, packed, k0, kk, n0, nn)
        return b_view, 0, 0, fmt_fields
    stage = ring.take()
    tile = View(stage, 0, (kk, nn), (nn, 1), b.dtype)
    src = b.index(0, k0, kk).index(1, n0, nn)
    inst = TileInst(
        "ld",
        {
            "rows": kk,
            "cols": nn,
            "dst_stride": 0,
            "src_stride": _check_stride(f"{name} weights", src.strides[0] if kk > 1 else 0),
            "dtype": DTYPES.index(b.dtype),
        },
    )
    add_operand(inst, "src", src, src.offset, (kk - 1) * src.strides[0] + nn if kk > 1 else nn, False)
    add_operand(inst, "dst", tile, 0, kk * nn, True)
    prog.emit(inst)
    return tile, 0, 0, {}


def activation_tile(b: View, k0: int, kk: int, n0: int, nn: int, name: str,
                    b_exp: int | None) -> tuple[View, int, int, dict[str, int]]:
    """A [kk, nn] tile of an activation b read in place (dense along either axis: trans_b when along rows)."""
    b_view = b.index(0, k0, kk).index(1, n0, nn)
    if b_view.strides[1] == 1 or nn == 1:
        trans, b_stride = 0, b_view.strides[0] if kk > 1 else 0
    elif b_view.strides[0] == 1 or kk == 1:
        trans, b_stride = 1, b_view.strides[1] if nn > 1 else 0
    else:
        raise CompileError(f"internal: {name} b operand is not dense along either axis")
    fmt_fields = {"b_fmt": FORMATS.index("af8"), "b_exp": b_exp} if b_exp is not None else {}
    return b_view, trans, _check_stride(f"{name} b", b_stride), fmt_fields


def emit_matmul_tile(prog: TileProgram, dst: View, a: View, b_view: View, trans: int, b_stride: int,
                     fmt_fields: dict[str, int], m0: int, mm: int, k0: int, kk: int, n0: int, nn: int, acc: bool,
                     bias: View | None, a_exp: int | None, name: str) -> None:
    """dst[m0:m0+mm, n0:n0+nn] (+)= a[m0:m0+mm, k0:k0+kk] @ b tile (+ bias[n0:n0+nn]): one matmul instruction.
    a and dst are dense along their last axis; their row strides come from the views."""
    a_stride = _check_stride(f"{name} a", a.strides[0] if a.shape[0] > 1 else 0)
    d_stride = _check_stride(f"{name} dst", dst.strides[0] if dst.shape[0] > 1 else 0)
    inst = TileInst(
        "matmul",
        {
            "m": mm,
            "k": kk,
            "n": nn,
            "dst_stride": d_stride,
            "a_stride": a_stride,
            "b_stride": b_stride,
            "acc": int(acc),
            "has_bias": int(bias is not None),
            "trans_b": trans,
            **fmt_fields,
            **({"a_fmt": FORMATS.index("af8"), "a_exp": a_exp} if a_exp is not None else {}),
        },
    )
    a_off = a.offset + m0 * a.strides[0] + k0 * a.strides[1]
    add_operand(inst, "a", a, a_off, (mm - 1) * (a_stride or kk) + kk, False)
    if fmt_fields.get("sparse"):
        add_operand(inst, "b", b_view, b_view.offset, b_view.shape[0] * b_view.shape[1], False)
    elif trans:
        add_operand(inst, "b", b_view, b_view.offset, (nn - 1) * (b_stride or kk) + kk, False)
    else:
        add_operand(inst, "b", b_view, b_view.offset, (kk - 1) * (b_stride or nn) + nn, False)
    if bias is not None:
        add_operand(inst, "bias", bias, bias.offset + n0, nn, False)
    d_off = dst.offset + m0 * dst.strides[0] + n0 * dst.strides[1]
    if acc:
        add_operand(inst, "dst", dst, d_off, (mm - 1) * (d_stride or nn) + nn, False)
    add_operand(inst, "dst", dst, d_off, (mm - 1) * (d_stride or nn) + nn, True)
    prog.emit(inst)


def emit_matmul(
    prog: TileProgram,
    hw: HardwareConfig,
    ring: StagingRing,
    dst: View,
    a: View,
    b: View,
    bias: View | None = None,
    name: str = "matmul",
    packed: PackedWeight | None = None,
    a_exp: int | None = None,
    b_exp: int | None = None,
) -> None:
    """dst[M, N] = a[M, K] @ b[K, N] (+ bias[N]); b either a constant (streamed) or an SRAM activation.

    a and dst must be dense along their last axis.
    `packed`: the constant b stored compressed (AF8 codes and/or bitmask-sparse tiles, compiler/compression.py).
    `a_exp`: a holds AF8 codes with that exponent bias (a_fmt=af8); `b_exp` likewise for an activation b.
    """
    m_all, k_all = a.shape
    n_all = b.shape[1]
    if a.strides[1] != 1 and k_all > 1 or dst.strides[1] != 1 and n_all > 1:
        raise CompileError(f"internal: {name} operands must be dense along the last axis")
    const_b = b.buffer.kind == "const"
    in_place = const_b and packed is not None and isinstance(packed.fmt, InPlaceFormat)
    if in_place:  # no staging buffer: tiles only as large as the PU takes
        k_t, n_t = min(k_all, hw.pu.max_k), min(n_all, hw.pu.max_n)
    elif const_b:
        itemsize = packed.fmt.itemsize if packed is not None else b.itemsize
        k_t, n_t = weight_tile_shape(hw, k_all, n_all, ring.nbytes, itemsize)
    else:
        k_t, n_t = min(k_all, hw.pu.max_k), min(n_all, hw.pu.max_n)
    m_t = min(m_all, hw.pu.max_m)
    a_stride = a.strides[0] if m_all > 1 else 0
    d_stride = dst.strides[0] if m_all > 1 else 0
    a_m = View(a.buffer, a.offset, a.shape, (a_stride, a.strides[1]), a.dtype)
    dst_m = View(dst.buffer, dst.offset, dst.shape, (d_stride, dst.strides[1]), dst.dtype)
    for n0 in range(0, n_all, n_t):
        nn = min(n_t, n_all - n0)
        for k0 in range(0, k_all, k_t):
            kk = min(k_t, k_all - k0)
            if const_b:
                b_view, trans, b_stride, fmt_fields = load_weight_tile(prog, ring, b, packed, k0, kk, n0, nn, name)
            else:
                b_view, trans, b_stride, fmt_fields = activation_tile(b, k0, kk, n0, nn, name, b_exp)
            for m0 in range(0, m_all, m_t):
                mm = min(m_t, m_all - m0)
                use_bias = bias is not None and k0 == 0
                emit_matmul_tile(prog, dst_m, a_m, b_view, trans, b_stride, fmt_fields, m0, mm, k0, kk, n0, nn,
                                 k0 > 0, bias if use_bias else None, a_exp, name)
