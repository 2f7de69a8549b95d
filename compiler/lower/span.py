"""Adaptive attention span: `edgebert.attention_span` / `edgebert.masked_softmax` -> ISA `softmax` with span fields,
QK^T and PV computed only over the key columns inside each row block's span + ramp window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.lower.core import CompositeCall, Const, Scope, Tensor
from edgebert.compiler.lower.matmul_values import quantize_view
from edgebert.compiler.matmul import emit_matmul
from edgebert.compiler.tile_ir import TileInst
from edgebert.compiler.views import View
from edgebert.isa.bits import f32_bits
from edgebert.isa.errors import CompileError

MAX_SPAN_FIELD = 0xFFF  # span, ramp, row0, col0 are 12-bit softmax fields
#: added to log(M) where the span mask M is 0 in the dense fallback: exp(x - 1e30 - max) is exactly 0
LOG_ZERO = -1e30


def span_formula(span: int, ramp: int, seq: int) -> np.ndarray:
    """The exporter's span mask (frontend.models.attention_span.span_mask, float32 arithmetic): clamp((R + z - |i-j|) / R, 0, 1)."""
    pos = np.arange(seq, dtype=np.float32)
    dist = np.abs(pos[:, None] - pos[None, :])
    if ramp == 0:
        return (dist <= np.float32(span)).astype(np.float32)
    return np.clip((np.float32(ramp) + np.float32(span) - dist) / np.float32(ramp), 0.0, 1.0).astype(np.float32)


def infer_span(mask: np.ndarray) -> tuple[int, int] | None:
    """(span, ramp) such that `span_formula` equals the [S, S] mask exactly; (0, 0) for an all-ones mask
    (no span: the ISA's span 0, which is why a span of 0 with a ramp is not expressible); None when the mask is not of that form (the caller falls back to dense)."""
    mask = np.asarray(mask, dtype=np.float32)
    seq = mask.shape[-1]
    if mask.shape != (seq, seq):
        return None
    if np.all(mask == 1.0):
        return 0, 0
    row = mask[0]
    ones = int(np.argmin(row == 1.0)) if not np.all(row == 1.0) else seq
    span = ones - 1
    frac = row[(row > 0) & (row < 1)]
    ramp = int(round(1.0 / (1.0 - float(frac[0])))) if frac.size else 0
    if span < 1 or span > MAX_SPAN_FIELD or ramp > MAX_SPAN_FIELD or seq - 1 > MAX_SPAN_FIELD:
        return None
    if not np.array_equal(span_formula(span, ramp, seq), mask):
        return None
    return span, ramp


def window(span: int, ramp: int) -> int | None:
    """Largest |i - j| with a non-zero mask weight (None: every column)."""
    if span == 0 and ramp == 0:
        return None
    return span + ramp - 1 if ramp > 0 else span


def column_range(r0: int, r1: int, win: int | None, seq: int) -> tuple[int, int]:
    """Key columns [c0, c1) whose weight is non-zero for some query row in [r0, r1)."""
    if win is None:
        return 0, seq
    return max(0, r0 - win), min(seq, r1 - 1 + win + 1)


def row_block(hw: Any, seq: int, win: int | None) -> int:
    """Query rows per block: a PU vector of rows when the span cuts columns, else as many as the PU takes."""
    if win is None:
        return min(seq, hw.pu.max_m)
    return max(1, min(seq, hw.pu.max_m, hw.pu.vector_size))


def _head_masks(span_mask: np.ndarray, heads: int, seq: int) -> np.ndarray:
    arr = np.asarray(span_mask, dtype=np.float32)
    try:
        return np.broadcast_to(arr.reshape(arr.shape[-3:] if arr.ndim >= 3 else arr.shape), (heads, seq, seq))
    except ValueError:
        raise CompileError(f"span mask of shape {arr.shape} does not broadcast to [{heads}, {seq}, {seq}]") from None


def _log_mask(mask: np.ndarray) -> np.ndarray:
    """log(M), LOG_ZERO where M = 0: softmax(x + log M) = M exp(x - max) / sum(...) for rows with some M > 0."""
    if np.any(np.all(mask == 0, axis=-1)):
        raise CompileError("span mask with an all-zero row (dense fallback cannot express it)")
    with np.errstate(divide="ignore"):
        out = np.where(mask > 0, np.log(np.maximum(mask, 1e-45)), LOG_ZERO)
    return out.astype(np.float32)


def _softmax(scope: Scope, tile: View, scale: float, mask_row: View | None, span: int, ramp: int, r0: int, c0: int):
    """One softmax instruction over a dense [rows, cols] tile, in place."""
    rows, cols = tile.shape
    stride = tile.strides[0] if rows > 1 else 0
    fields = {
        "rows": rows, "cols": cols, "dst_stride": stride, "src_stride": stride, "scale": f32_bits(scale),
        "has_mask": int(mask_row is not None), "span": span, "ramp": ramp if span else 0,
        "row0": r0 if span else 0, "col0": c0 if span else 0,
    }
    inst = TileInst("softmax", fields)
    ext = (rows - 1) * (stride or cols) + cols
    em.add_operand(inst, "src", tile, tile.offset, ext, False)
    if mask_row is not None:
        em.add_operand(inst, "mask", mask_row, mask_row.offset, cols, False)
    em.add_operand(inst, "dst", tile, tile.offset, ext, True)
    scope.prog.emit(inst)


def _mask_row(scope: Scope, mask: Any, heads: int, seq: int, what: str) -> tuple[View | None, View | None]:
    """The additive attention mask as (row view [S] shared by every head and query, or full [H, S, S] view)."""
    if mask is None:
        return None, None
    if isinstance(mask, Const) and not np.any(mask.array):
        return None, None
    t = scope.low.to_sram(mask, what)
    full = t.view.broadcast_to((1, heads, seq, seq))
    if full.strides[:3] == (0, 0, 0) and (full.strides[3] == 1 or seq == 1):
        return View(full.buffer, full.offset, (seq,), (1,), full.dtype), None
    v = full.reshape((heads, seq, seq)) if full.strides[0] == 0 else None
    v = View(full.buffer, full.offset, full.shape[1:], full.strides[1:], full.dtype) if v is None else v
    return None, v


def lower_attention_span(scope: Scope, call: CompositeCall) -> Tensor:
    """q, k, v [1, S, H*D], additive mask, scale, span mask [H, S, S] (+ eps) -> context [1, S, H*D]."""
    low, name = scope.low, call.dest.name
    q, k, v, mask, scale, span_mask = call.args[:6]
    if not isinstance(scale, Const) or scale.array.size != 1 or not isinstance(span_mask, Const):
        raise CompileError(f"binding '{name}': attention span needs constant scale and span mask")
    seq, hidden = (q.array.shape if isinstance(q, Const) else q.shape)[-2:]
    heads = span_mask.array.shape[-3] if span_mask.array.ndim >= 3 else 1
    head_dim = hidden // heads
    masks = _head_masks(span_mask.array, heads, seq)
    qv, kv, vv = (_rows(scope, t, seq, hidden, f"{name}.{n}") for t, n in ((q, "q"), (k, "k"), (v, "v")))
    qk_exp = pv_exp = None
    if low.compression is not None:  # AF8 attention: q, k, v quantized once, each probability tile before PV
        qk_exp = low.compression.attention_biases(low.loop_depth > 0)
        pv_exp = low.compression.attention_biases(low.loop_depth > 0) if qk_exp is not None else None
        if qk_exp is not None and pv_exp is not None:
            qv = quantize_view(low, qv, qk_exp[0], f"{name}.q_af8")
            kv = quantize_view(low, kv, qk_exp[1], f"{name}.k_af8")
            vv = quantize_view(low, vv, pv_exp[1], f"{name}.v_af8")
    row, full_mask = _mask_row(scope, mask, heads, seq, f"{name}.mask")
    out = low.new_tensor(name, (1, seq, hidden), "float32")
    ov = out.view.reshape((seq, hidden))
    plans = [infer_span(masks[h]) for h in range(heads)]
    log_mask = None
    if any(p is None for p in plans):
        log_mask = low.to_sram(Const(_log_mask(masks), "float32"), f"{name}.logmask").view
    blocks = []
    for h in range(heads):
        win = window(*plans[h]) if plans[h] is not None else None
        mb = row_block(low.hw, seq, win)
        for r0 in range(0, seq, mb):
            r1 = min(seq, r0 + mb)
            blocks.append((h, r0, r1, *column_range(r0, r1, win, seq)))
    widest = max(c1 - c0 for *_, c0, c1 in blocks)
    rows_max = max(r1 - r0 for _, r0, r1, _, _ in blocks)
    scores = low.new_tensor(f"{name}.scores", (len(blocks), rows_max, widest), "float32").view
    sc_scale = float(scale.array.reshape(-1)[0])
    for b, (h, r0, r1, c0, c1) in enumerate(blocks):
        mm, nc = r1 - r0, c1 - c0
        tile = View(scores.buffer, scores.offset + b * rows_max * widest, (mm, nc), (nc, 1), "f32")
        hd = (h * head_dim, head_dim)
        span_block(scope, SpanBlock(h, r0, r1, c0, c1, plans[h]), tile, qv.index(0, r0, mm).index(1, *hd),
                   kv.index(1, *hd), vv.index(1, *hd), ov.index(0, r0, mm).index(1, *hd), sc_scale, row, full_mask,
                   log_mask, qk_exp, pv_exp, name)
    return Tensor(out.view.reshape(call.dest.shape), "float32")


@dataclass(frozen=True)
class SpanBlock:
    """Query rows [r0, r1) of head h against key columns [c0, c1); plan: the head's (span, ramp), None: dense."""

    h: int
    r0: int
    r1: int
    c0: int
    c1: int
    plan: tuple[int, int] | None


def span_block(scope: Scope, blk: SpanBlock, tile: View, q_blk: View, kh: View, vh: View, o_blk: View,
               sc_scale: float, row: View | None, full_mask: View | None, log_mask: View | None, qk_exp: Any,
               pv_exp: Any, name: str) -> None:
    """One block: tile = q_blk @ k_cols^T, the windowed softmax (or scale + additive masks + plain softmax), then
    o_blk = p @ v_cols. q_blk, o_blk: the block's query and context rows [r1 - r0, D]; kh, vh: the head's [S, D]
    keys and values (all in SRAM)."""
    low = scope.low
    h, r0, r1, c0, c1 = blk.h, blk.r0, blk.r1, blk.c0, blk.c1
    mm, nc = r1 - r0, c1 - c0
    k_t = kh.index(0, c0, nc).permute((1, 0))
    emit_matmul(scope.prog, low.hw, low.ring, tile, q_blk, k_t, name=f"{name}.qk",
                a_exp=qk_exp and qk_exp[0], b_exp=qk_exp and qk_exp[1])
    span, ramp = blk.plan if blk.plan is not None else (0, 0)
    extra = []
    if full_mask is not None:
        extra.append(full_mask.index(0, h, 1).index(1, r0, mm).index(2, c0, nc))
    if blk.plan is None:
        extra.append(log_mask.index(0, h, 1).index(1, r0, mm).index(2, c0, nc))
    if extra:  # scale first, then the additive terms, then a plain softmax
        em.emit_immediate(scope.prog, "vmuli", tile, tile, sc_scale)
        for e in extra:
            e2 = View(e.buffer, e.offset, (mm, nc), e.strides[1:], e.dtype)
            em.emit_binary(scope.prog, "vadd", tile, tile, e2)
        _softmax(scope, tile, 1.0, row.index(0, c0, nc) if row is not None else None, span, ramp, r0, c0)
    else:
        _softmax(scope, tile, sc_scale, row.index(0, c0, nc) if row is not None else None, span, ramp, r0, c0)
    v_blk = vh.index(0, c0, nc)
    probs = tile
    if pv_exp is not None:
        probs = quantize_view(low, tile, pv_exp[0], f"{name}.p_af8")
    emit_matmul(scope.prog, low.hw, low.ring, o_blk, probs, v_blk, name=f"{name}.pv",
                a_exp=pv_exp and pv_exp[0], b_exp=pv_exp and pv_exp[1])


def lower_masked_softmax(scope: Scope, call: CompositeCall) -> Tensor:
    """x [..., H, S, S], span mask const -> the span softmax of each head (no column savings outside attention)."""
    low, name = scope.low, call.dest.name
    x, span_mask = call.args[:2]
    shape = call.dest.shape
    seq = shape[-1]
    if len(shape) < 2 or shape[-2] != seq or not isinstance(span_mask, Const):
        raise CompileError(f"binding '{name}': masked softmax needs [..., S, S] scores and a constant mask")
    lead = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    marr = np.asarray(span_mask.array, dtype=np.float32)
    masks = np.broadcast_to(marr, (*shape[:-2], seq, seq)).reshape(lead, seq, seq) if marr.ndim >= 2 else None
    if masks is None:
        raise CompileError(f"binding '{name}': span mask of shape {marr.shape}")
    xt = low.to_sram(x, name)
    xd = xt.view.reshape((lead, seq, seq))
    if xd is None:
        xd = low.dense_copy(xt, name).view.reshape((lead, seq, seq))
    out = low.new_tensor(name, (lead, seq, seq), "float32")
    em.emit_unary(scope.prog, "vmov", out.view, xd)  # softmax in place on a dense copy
    plans = [infer_span(masks[i]) for i in range(lead)]
    log_mask = None
    if any(p is None for p in plans):
        log_mask = low.to_sram(Const(_log_mask(masks), "float32"), f"{name}.logmask").view
    for i in range(lead):
        tile = out.view.index(0, i, 1)
        tile = View(tile.buffer, tile.offset, (seq, seq), tile.strides[1:], tile.dtype)
        if plans[i] is None:
            lm = log_mask.index(0, i, 1)
            em.emit_binary(scope.prog, "vadd", tile, tile, View(lm.buffer, lm.offset, (seq, seq), lm.strides[1:], "f32"))
            _softmax(scope, tile, 1.0, None, 0, 0, 0, 0)
        else:
            _softmax(scope, tile, 1.0, None, plans[i][0], plans[i][1], 0, 0)
    return Tensor(out.view.reshape(shape), "float32")


def _rows(scope: Scope, t: Any, seq: int, hidden: int, what: str) -> View:
    """q/k/v as a [S, H*D] view dense along its last axis."""
    t = scope.low.to_sram(t, what)
    v = t.view.reshape((seq, hidden))
    if v is None or (v.strides[1] != 1 and hidden > 1):
        v = scope.low.dense_copy(t, what).view.reshape((seq, hidden))
    return v

