"""Blocked denses and FFNs of a memory-hierarchy plan: output-stationary tiles with x and the weights streamed.

dense: for each output block (m_t x n_t, in SRAM: a slot stored to DRAM after its epilogue, or a view of a resident
result), the reduction streams through it in k_t steps: x's block (read in place, or loaded from DRAM), the weight
tile (from eNVM into a slot). With an AF8 activation the reduction is one step (exact sums) and x's row block is
quantized once, then reused by every output block of that row block.
ffn (fused): dense1 -> unary -> dense2 by blocks of j intermediate columns, y accumulating in SRAM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.hierarchy.groups import DenseGeo
from edgebert.compiler.hierarchy.plan import GroupPlan
from edgebert.compiler.lower.blocked import (
    STREAMED,
    BlockedLowering,
    Slots,
    e_dtype,
    in_dram,
    load,
    low_shape,
    matrix,
    row_blocks,
    store,
)
from edgebert.compiler.lower.core import Const, Lowerer, Scope, Tensor
from edgebert.compiler.matmul import PackedWeight, emit_matmul_tile, load_weight_tile
from edgebert.compiler.tile_ir import Buffer
from edgebert.compiler.views import View, fresh_view
from edgebert.isa.errors import CompileError


class DenseOperands:
    """A dense's constant operands prepared the way lower_matmul prepares them (same calls, same order: the
    packed weight, then its AF8 activation point), so the AF8 use counts and constant dedup match the walk."""

    def __init__(self, low: Lowerer, geo: DenseGeo, w: Const, bias: Any, name: str) -> None:
        self.name = name
        w_arr = np.asarray(w.array, np.float32)
        self.packed: PackedWeight | None = low.packed_weight(w_arr)
        if self.packed is None:
            self.b = low.const_buffer(w_arr, "float32")
        else:
            self.b = fresh_view(Buffer("packed", w_arr.size * 4, "const", "envm"), w_arr.shape, "f32")
        self.a_exp = None
        if low.compression is not None:
            self.a_exp = low.compression.activation_bias(w_arr, low.loop_depth > 0)
        if self.a_exp != geo.a_exp:
            raise CompileError(f"internal: {name}: AF8 point {self.a_exp} differs from the plan's {geo.a_exp}")
        self.bias = None
        if geo.bias:
            n = w_arr.shape[1]
            self.bias = low.to_sram(Const(np.asarray(bias.array, np.float32).reshape(n), "float32"), f"{name}.bias").view

    def tile(self, prog: Any, ring: Slots, k0: int, kk: int, n0: int, nn: int) -> tuple[View, int, int, dict]:
        return load_weight_tile(prog, ring, self.b, self.packed, k0, kk, n0, nn, self.name)


def emit_dense(low: Lowerer, geo: DenseGeo, t: dict[str, Any], x: Tensor, ops: DenseOperands, out: Tensor,
               epilogue: list[str], out_exp: int | None = None) -> None:
    """out[M, N] = epilogue(x[M, K] @ W + bias) block by block (module docstring). `out_exp`: out holds AF8 codes
    with that bias, each block quantized after its epilogue; an x holding AF8 codes is used as such (a_exp)."""
    prog, name = low.prog, ops.name
    m, k, n = geo.m, geo.k, geo.n
    x2, o2 = matrix(x.view, m, k), matrix(out.view, m, n)
    if x2 is None or o2 is None:
        raise CompileError(f"internal: {name}: operands of a blocked dense must be row-major")
    m_t, k_t, n_t = t["m_t"], t["k_t"], t["n_t"]
    x_dram, out_dram = in_dram(x), in_dram(out)
    a_exp = ops.a_exp
    w_ring = Slots(prog, f"{name}.w", t.get("w_slots", 2))
    w_ring.nbytes = k_t * n_t * geo.w_item  # a sparse tile is stored sparse only when smaller than this
    a_pre = x.view.dtype == "af8"
    a_ring = Slots(prog, f"{name}.x") if x_dram and not a_pre else None
    q_count = t.get("a_slots", 2) if m > m_t else 1
    q_ring = Slots(prog, f"{name}.xq", q_count) if a_exp is not None and (x_dram or not a_pre) else None
    sub = t.get("n_sub", n_t)  # column sub-blocks of an output block, each in its own buffer
    nsub = -(-n_t // sub)
    count = max(t.get("out_slots", 2), 1)
    o_rings = [Slots(prog, f"{name}.out{i}", count) for i in range(nsub)] if out_dram or out_exp is not None else None
    oq_rings = [Slots(prog, f"{name}.outq{i}", count) for i in range(nsub)] if out_dram and out_exp is not None \
        else None
    mode = t.get("a", "sram") if x_dram else "sram"
    if x_dram and mode == "sram":  # the plan kept x in SRAM but it arrived in DRAM: stream its blocks
        mode = "blocks"
    for m0, mm in row_blocks(m, m_t):
        x_rows = x2.index(0, m0, mm)
        a_src, a_k = x_rows, True  # a_k: index a by the reduction offset
        if a_pre:  # AF8 codes already (quantized by their producer): read in place, or loaded once per row block
            if x_dram:
                a_src = q_ring.view((mm, k), "af8")
                load(prog, a_src, x_rows)
        elif a_exp is not None:  # the row block in AF8, quantized once (from SRAM, or loaded chunk by chunk)
            q = q_ring.view((mm, k), "af8")
            for c0, cc in row_blocks(k, t.get("a_chunk", k)):
                src = x_rows.index(1, c0, cc)
                if x_dram:
                    tmp = a_ring.view((mm, cc))
                    load(prog, tmp, src)
                    src = tmp
                em.emit_unary(prog, "quant", q.index(1, c0, cc), src, exp_bias=a_exp)
            a_src = q
        elif x_dram and mode == "rows":
            a_src = a_ring.view((mm, k))
            load(prog, a_src, x_rows)
        for n0, nn in row_blocks(n, n_t):
            subs = [(n0 + s0, sw) for s0, sw in row_blocks(nn, sub)]
            finals = [o2.index(0, m0, mm).index(1, c0, cw) for c0, cw in subs]
            dsts = [o_rings[i].view((mm, cw)) for i, (_, cw) in enumerate(subs)] if o_rings is not None else finals
            for k0, kk in row_blocks(k, k_t):
                if x_dram and a_exp is None and mode == "blocks":
                    a_view = a_ring.view((mm, kk))
                    load(prog, a_view, x_rows.index(1, k0, kk))
                    a_off = 0
                else:
                    a_view, a_off = a_src, k0 if a_k else 0
                for (c0, cw), dst in zip(subs, dsts, strict=True):
                    b_view, trans, b_stride, fields = ops.tile(prog, w_ring, k0, kk, c0, cw)
                    bias = ops.bias.index(0, c0, cw) if ops.bias is not None and k0 == 0 else None
                    emit_matmul_tile(prog, dst, a_view, b_view, trans, b_stride, fields, 0, mm, a_off, kk, 0, cw,
                                     k0 > 0, bias, a_exp, name)
            for i, ((_, cw), dst, final) in enumerate(zip(subs, dsts, finals, strict=True)):
                for op in epilogue:
                    em.emit_unary(prog, op, dst, dst)
                if out_exp is not None:  # AF8 codes for the next dense: in place in SRAM, or a slot then stored
                    codes = oq_rings[i].view((mm, cw), "af8") if out_dram else final
                    em.emit_unary(prog, "quant", codes, dst, exp_bias=out_exp)
                    if out_dram:
                        store(prog, final, codes)
                elif out_dram:
                    store(prog, final, dst)
    for ring in (w_ring, a_ring, q_ring, *(o_rings or []), *(oq_rings or [])):
        if ring is not None:
            ring.finish()


def _dense_args(scope: Scope, e: Any) -> tuple[Tensor, Const, Any]:
    args = [scope.value_of(a) for a in e.expr.args]
    x, w = args[0], args[1]
    if isinstance(x, Const):
        x = scope.low.to_sram(x, f"{e.name}.x")
    if not isinstance(x, Tensor) or not isinstance(w, Const):
        raise CompileError(f"internal: {e.name}: a blocked dense needs an activation and a constant weight")
    return x, w, args[2] if len(args) > 2 else None


def _weight_args(scope: Scope, e: Any) -> tuple[Any, Any]:
    """The weight and bias (None: a plain matmul) of a dense whose input is produced inside its group."""
    args = [scope.value_of(a) for a in e.expr.args[1:3]]
    return args[0], args[1] if len(args) > 1 else None


def lower_dense_group(bl: BlockedLowering, scope: Scope, gp: GroupPlan, events: list[Any]) -> None:
    """A dense (+ its unary epilogue) as the plan tiled it."""
    low = scope.low
    geo: DenseGeo = gp.group.geo
    first, last = events[0], events[-1]
    x, w, bias = _dense_args(scope, first)
    ops = DenseOperands(low, geo, w, bias, first.name)
    out = bl.result_home(last)
    emit_dense(low, geo, gp.choice.tiling, x, ops, out, geo.epilogue)
    for e in events[:-1]:
        scope.env[e.var] = STREAMED
    scope.env[last.var] = out


def lower_ffn_group(bl: BlockedLowering, scope: Scope, gp: GroupPlan, events: list[Any]) -> None:
    """dense1 -> unary -> dense2: fused by intermediate blocks, or the two denses with the intermediate spilled."""
    low, prog = scope.low, scope.prog
    d1, d2 = gp.group.geo
    e1, e_mid, e2 = events
    t = gp.choice.tiling
    x, w1, b1 = _dense_args(scope, e1)
    ops1 = DenseOperands(low, d1, w1, b1, e1.name)
    if not t.get("fused"):
        h = bl.result_home(e_mid)
        if d2.a_exp is not None:  # stored as dense2's AF8 codes (its only reader)
            h.view.buffer.nbytes = max(1, int(np.prod(h.shape)))
            h = Tensor(fresh_view(h.view.buffer, h.shape, "af8"), h.dtype)
        emit_dense(low, d1, t, x, ops1, h, d1.epilogue, d2.a_exp)
        w2, b2 = _weight_args(scope, e2)
        ops2 = DenseOperands(low, d2, w2, b2, e2.name)
        y = bl.result_home(e2)
        emit_dense(low, d2, t["then"], h, ops2, y, d2.epilogue)
        scope.env[e1.var] = STREAMED
        scope.env[e_mid.var] = h
        scope.env[e2.var] = y
        return
    w2, b2 = _weight_args(scope, e2)
    ops2 = DenseOperands(low, d2, w2, b2, e2.name)
    if ops2.a_exp is not None or in_dram(x):
        raise CompileError(f"internal: {e1.name}: a fused FFN needs x in SRAM and an fp32 second dense")
    m, k, n1, n2 = d1.m, d1.k, d1.n, d2.n
    y = low.new_tensor(e2.name, low_shape(e2), e_dtype(e2))
    x2, y2 = matrix(x.view, m, k), matrix(y.view, m, n2)
    a = x2
    if ops1.a_exp is not None:  # x quantized once for every intermediate block
        q = low.prog.buffer(low.buffer_name(f"{e1.name}.xq"), m * k, "act")
        a = fresh_view(q, (m, k), "af8")
        em.emit_unary(prog, "quant", a, x2, exp_bias=ops1.a_exp)
    j_t, k1, n2_t = t["j_t"], t["k_t"], t["n_t"]
    h_ring, w1_ring, w2_ring = Slots(prog, f"{e_mid.name}.h"), Slots(prog, f"{e1.name}.w"), Slots(prog, f"{e2.name}.w")
    w1_ring.nbytes, w2_ring.nbytes = k1 * j_t * d1.w_item, j_t * n2_t * d2.w_item
    for j0, jj in row_blocks(n1, j_t):
        hb = h_ring.view((m, jj))
        for k0, kk in row_blocks(k, k1):
            b_view, trans, b_stride, fields = ops1.tile(prog, w1_ring, k0, kk, j0, jj)
            bias = ops1.bias.index(0, j0, jj) if ops1.bias is not None and k0 == 0 else None
            emit_matmul_tile(prog, hb, a, b_view, trans, b_stride, fields, 0, m, k0, kk, 0, jj, k0 > 0, bias,
                             ops1.a_exp, e1.name)
        for op in d1.epilogue:
            em.emit_unary(prog, op, hb, hb)
        for n0, nn in row_blocks(n2, n2_t):
            b_view, trans, b_stride, fields = ops2.tile(prog, w2_ring, j0, jj, n0, nn)
            bias = ops2.bias.index(0, n0, nn) if ops2.bias is not None and j0 == 0 else None
            emit_matmul_tile(prog, y2.index(1, n0, nn), hb, b_view, trans, b_stride, fields, 0, m, 0, jj, 0, nn,
                             j0 > 0, bias, None, e2.name)
    for ring in (h_ring, w1_ring, w2_ring):
        ring.finish()
    scope.env[e1.var] = STREAMED
    scope.env[e_mid.var] = STREAMED
    scope.env[e2.var] = y
