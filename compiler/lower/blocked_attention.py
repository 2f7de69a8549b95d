"""Blocked attention of a memory-hierarchy plan: one head at a time, its K and V loaded once (double buffered across
heads), queries in blocks; all heads' scores never exist at once. The arithmetic per element is the resident
lowering's (same instructions on smaller tiles), so results are bit-identical to it.

dense (`edgebert.attention`): per query block scores = q K_h^T, x scale (vmuli), + mask row, softmax, P V_h.
span (`edgebert.attention_span`): per head, the 16-row windowed blocks of lower/span.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.hierarchy.plan import GroupPlan
from edgebert.compiler.lower import span as sp
from edgebert.compiler.lower.blocked import (
    BlockedLowering,
    Slots,
    in_dram,
    load,
    matrix,
    row_blocks,
    store,
)
from edgebert.compiler.lower.core import Const, Scope
from edgebert.compiler.matmul import emit_matmul
from edgebert.compiler.views import View
from edgebert.isa.errors import CompileError


class HeadSource:
    """One of q, k, v: per head an SRAM [S, D] view (read in place, or loaded from DRAM into a slot), quantized to
    AF8 when the attention is calibrated."""

    def __init__(self, bl: BlockedLowering, value: Any, seq: int, hidden: int, name: str, slots: int,
                 staging: Slots | None = None) -> None:
        self.prog = bl.low.prog
        self.low = bl.low
        if isinstance(value, Const):
            value = bl.low.to_sram(value, name)
        self.view = matrix(value.view, seq, hidden)
        if self.view is None:
            raise CompileError(f"internal: {name}: attention operand is not row-major")
        self.dram = in_dram(value)
        self.slots = (staging or Slots(self.prog, name, slots)) if self.dram else None
        self.count = slots
        self.qslots: Slots | None = None
        self.name = name

    def head(self, h: int, d: int, rows: tuple[int, int] | None = None, exp_bias: int | None = None) -> View:
        v = self.view.index(1, h * d, d)
        if rows is not None:
            v = v.index(0, *rows)
        if self.dram:
            dst = self.slots.view(v.shape)
            load(self.prog, dst, v)
            v = dst
        if exp_bias is not None:
            if self.qslots is None:
                self.qslots = Slots(self.prog, f"{self.name}.af8", self.count)
            q = self.qslots.view(v.shape, "af8")
            em.emit_unary(self.prog, "quant", q, v, exp_bias=exp_bias)
            v = q
        return v

    def finish(self) -> None:
        for s in (self.slots, self.qslots):
            if s is not None:
                s.finish()


def _mask_row(scope: Scope, bl: BlockedLowering, mask: Any, seq: int) -> View | None:
    """The additive attention mask as one SRAM row [S] (it is [.., 1, S] broadcast over heads and queries)."""
    if mask is None or isinstance(mask, Const) and not np.any(mask.array):
        return None
    t = scope.low.to_sram(mask, "mask") if isinstance(mask, Const) else mask
    if in_dram(t):
        t = bl.to_sram(t, "mask")
    row = t.view.reshape((seq,))
    if row is None:
        raise CompileError("internal: blocked attention needs the mask as one row")
    return row


def lower_attention_blocked(bl: BlockedLowering, scope: Scope, gp: GroupPlan, e: Any) -> None:
    geo = gp.group.geo
    args = [scope.value_of(a) for a in e.expr.args]
    S, H, D = geo.seq, geo.heads, geo.head_dim
    out = bl.result_home(e)
    o2 = matrix(out.view, S, H * D)
    kv_slots = gp.choice.tiling.get("kv_slots", 2)
    slots = gp.choice.tiling.get("slots", 2)
    # with AF8 operands, K_h and V_h are quantized right after their load: they share one fp32 staging ring
    staging = Slots(scope.prog, f"{e.name}.kv", kv_slots) if geo.af8 else None
    q = HeadSource(bl, args[0], S, H * D, f"{e.name}.q", slots)
    k = HeadSource(bl, args[1], S, H * D, f"{e.name}.k", kv_slots, staging)
    v = HeadSource(bl, args[2], S, H * D, f"{e.name}.v", kv_slots, staging)
    o_slots = Slots(scope.prog, f"{e.name}.ctx", slots) if in_dram(out) else None
    if geo.span:
        _span(bl, scope, e, args, geo, q, k, v, o2, o_slots, slots)
    else:
        _dense(bl, scope, e, args, geo, gp.choice.tiling["r"], q, k, v, o2, o_slots, slots)
    for s in (q, k, v):
        s.finish()
    if staging is not None:
        staging.finish()
    if o_slots is not None:
        o_slots.finish()
    scope.env[e.var] = out


def _out_block(o2: View, o_slots: Slots | None, rows: tuple[int, int], h: int, d: int) -> tuple[View, View]:
    """(where a head's context rows are computed, where they end up)."""
    final = o2.index(0, *rows).index(1, h * d, d)
    return (o_slots.view(final.shape) if o_slots is not None else final), final


def _dense(bl: BlockedLowering, scope: Scope, e: Any, args: list[Any], geo: Any, r: int, q: HeadSource,
           k: HeadSource, v: HeadSource, o2: View, o_slots: Slots | None, slots: int) -> None:
    low, prog = scope.low, scope.prog
    S, H, D = geo.seq, geo.heads, geo.head_dim
    comp = low.compression
    qk = comp.attention_biases(low.loop_depth > 0) if comp is not None else None  # QK^T, then PV (the walk's order)
    pv = comp.attention_biases(low.loop_depth > 0) if comp is not None else None
    mask = _mask_row(scope, bl, args[3], S)
    scale = args[4]
    if not isinstance(scale, Const) or scale.array.size != 1:
        raise CompileError(f"internal: {e.name}: blocked attention needs a constant scale")
    sc_slots = Slots(prog, f"{e.name}.scores", slots)
    p_slots = Slots(prog, f"{e.name}.p_af8", slots) if pv is not None else None
    for h in range(H):
        kh = k.head(h, D, exp_bias=qk and qk[1])
        vh = v.head(h, D, exp_bias=pv and pv[1])
        for r0, rb in row_blocks(S, r):
            qb = q.head(h, D, (r0, rb), exp_bias=qk and qk[0])
            sc = sc_slots.view((rb, S))
            emit_matmul(prog, low.hw, low.ring, sc, qb, kh.permute((1, 0)), name=f"{e.name}.qk",
                        a_exp=qk and qk[0], b_exp=qk and qk[1])
            em.emit_immediate(prog, "vmuli", sc, sc, float(scale.array.reshape(-1)[0]))
            if mask is not None:
                em.emit_binary(prog, "vadd", sc, sc, mask.broadcast_to((rb, S)))
            em.emit_row_op(prog, "softmax", sc, sc)
            p = sc
            if pv is not None:
                p = p_slots.view((rb, S), "af8")
                em.emit_unary(prog, "quant", p, sc, exp_bias=pv[0])
            ob, final = _out_block(o2, o_slots, (r0, rb), h, D)
            emit_matmul(prog, low.hw, low.ring, ob, p, vh, name=f"{e.name}.pv", a_exp=pv and pv[0],
                        b_exp=pv and pv[1])
            if o_slots is not None:
                store(prog, final, ob)
    for s in (sc_slots, p_slots):
        if s is not None:
            s.finish()


def _span(bl: BlockedLowering, scope: Scope, e: Any, args: list[Any], geo: Any, q: HeadSource, k: HeadSource,
          v: HeadSource, o2: View, o_slots: Slots | None, slots: int) -> None:
    low, prog = scope.low, scope.prog
    S, H, D = geo.seq, geo.heads, geo.head_dim
    mask, scale, span_mask = args[3], args[4], args[5]
    masks = sp._head_masks(span_mask.array, H, S)
    plans = [sp.infer_span(masks[h]) for h in range(H)]
    if any(p is None for p in plans):
        raise CompileError(f"internal: {e.name}: blocked span attention needs every head in span form")
    qk = pv = None
    if low.compression is not None:  # the walk's order: QK^T biases, then PV
        qk = low.compression.attention_biases(low.loop_depth > 0)
        pv = low.compression.attention_biases(low.loop_depth > 0) if qk is not None else None
        if qk is None or pv is None:
            qk = pv = None
    row, full_mask = sp._mask_row(scope, mask, H, S, f"{e.name}.mask")
    if full_mask is not None:
        raise CompileError(f"internal: {e.name}: blocked span attention needs the mask as one row")
    sc_scale = float(scale.array.reshape(-1)[0])
    sc_slots = Slots(prog, f"{e.name}.scores", slots)
    for h in range(H):
        kh = k.head(h, D, exp_bias=qk and qk[1])
        vh = v.head(h, D, exp_bias=pv and pv[1])
        win = sp.window(*plans[h])
        mb = sp.row_block(low.hw, S, win)
        for r0 in range(0, S, mb):
            r1 = min(S, r0 + mb)
            c0, c1 = sp.column_range(r0, r1, win, S)
            qb = q.head(h, D, (r0, r1 - r0), exp_bias=qk and qk[0])
            ob, final = _out_block(o2, o_slots, (r0, r1 - r0), h, D)
            tile = sc_slots.view((r1 - r0, c1 - c0))
            sp.span_block(scope, sp.SpanBlock(h, r0, r1, c0, c1, plans[h]), tile, qb, kh, vh, ob, sc_scale, row,
                          None, None, qk, pv, e.name)
            if o_slots is not None:
                store(prog, final, ob)
    sc_slots.finish()
