"""An ALBERT-base-shaped program skeleton (real instruction structure, zero weights) for benchmarks and tests.

Builds what a compiled EdgeBERT program looks like, without a model: the embedding (gather + position add +
layer norm + projection), a layer loop run L times over ALBERT's one shared layer (Q/K/V/O projections, 12-head
attention with softmax, FFN in hidden-wide column chunks with GELU, residual adds and layer norms; weights in AF8 streamed
from eNVM into double-buffered SRAM slots, bitmask-sparse when `density` < 1), an exit head per layer (pooler +
classifier whose weights depend on the layer, entropy, `bexit`), the latency-aware DVFS blocks of
`edgebert.compiler.dvfs_plan` after the exit branch, and the epilogue (logits and exit layer to DRAM).

Weights live in eNVM regions that no data segment covers (they read as zeros), so the `.ebin` stays small; only
the sparse bitmask (one 768 x 768 mask shared by every weight block, `density` of its bits set) and the DVFS
tables are data. Dependency tokens are derived from the buffers each instruction touches (every cross-unit
conflict inside a barrier-delimited region gets one signal/wait pair), so the program has no races.
Numerics are meaningless (zero weights): run it with injected entropies, ideally `timing_only=True`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.compiler.dvfs_plan import (
    DvfsPlan,
    LayerCycles,
    fastest_point,
    measure_layer_cycles,
    plan_dvfs,
    predict_snippet,
    recovery_snippet,
    table_bytes,
)
from edgebert.isa.encoding import Inst, make
from edgebert.isa.hardware import HardwareConfig, default_config
from edgebert.isa.program import Program, Segment, Symbol
from edgebert.isa.table import BY_MNEMONIC, DTYPES, FORMATS, SPACES, UNITS

AF8 = FORMATS.index("af8")
ENVM, SRAM_SPACE, DRAM = SPACES.index("envm"), SPACES.index("sram"), SPACES.index("dram")
U8, F32, I32 = DTYPES.index("u8"), DTYPES.index("f32"), DTYPES.index("i32")
DATA_UNITS = tuple(UNITS.index(u) for u in ("ld", "pu", "sfu", "st"))
NBINS = 100
#: Registers: layer counter, L, exit-head offset, predicted layer, 4 p, scratch.
R_LAYER, R_L, R_HEAD, R_PRED, R_OFF, R_TMP = 1, 2, 3, 4, 5, 6
F_ENT = 1


def _f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


@dataclass(frozen=True)
class SkeletonConfig:
    """Model shape (ALBERT-base defaults) and EdgeBERT settings of the skeleton."""

    layers: int = 12
    seq: int = 128
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    embedding: int = 128
    vocab: int = 30000
    labels: int = 2
    density: float = 0.5  # kept weights of the encoder (1.0: dense AF8, no masks)
    threshold: float = 0.23
    seed: int = 0


@dataclass
class _Entry:
    inst: dict[str, Any]
    mnemonic: str
    reads: list[tuple[int, int, int]] = field(default_factory=list)
    writes: list[tuple[int, int, int]] = field(default_factory=list)


class _Emitter:
    """Collects instructions with the memory ranges they touch, then derives their dependency tokens."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.labels: dict[str, int] = {}

    @property
    def pc(self) -> int:
        return len(self.entries)

    def emit(self, mnemonic: str, reads=(), writes=(), **fields: int) -> int:
        self.entries.append(_Entry(fields, mnemonic, list(reads), list(writes)))
        return self.pc - 1

    def raw(self, insts: list[Inst]) -> None:
        for inst in insts:
            fields = {k: v for k, v in inst.values.items() if k != "opcode"}
            self.entries.append(_Entry(fields, inst.mnemonic))

    def label(self, name: str) -> None:
        self.labels[name] = self.pc

    def finish(self) -> list[Inst]:
        """Tokens: for a unit instruction J, the latest earlier conflicting instruction I of another data unit
        (since the last drain) signals J's unit and J waits, unless an earlier wait of J's unit on I's unit already
        covered I (units run in order)."""
        waits = [0] * len(self.entries)
        signals = [0] * len(self.entries)
        window: list[int] = []
        last_dep: dict[tuple[int, int], int] = {}
        for j, e in enumerate(self.entries):
            unit = UNITS.index(BY_MNEMONIC[e.mnemonic].unit)
            if e.mnemonic in ("barrier", "dvfs", "dvfsr", "halt"):
                window, last_dep = [], {}
                continue
            if unit not in DATA_UNITS:
                continue
            for u in DATA_UNITS:
                if u == unit:
                    continue
                dep = -1
                for i in reversed(window):
                    ei = self.entries[i]
                    if UNITS.index(BY_MNEMONIC[ei.mnemonic].unit) != u:
                        continue
                    if _conflict(ei, e):
                        dep = i
                        break
                if dep > last_dep.get((u, unit), -1):
                    last_dep[(u, unit)] = dep
                    signals[dep] |= 1 << unit
                    waits[j] |= 1 << u
            window.append(j)
        out = []
        for j, e in enumerate(self.entries):
            fields = dict(e.inst)
            for k, v in fields.items():
                if isinstance(v, str):
                    fields[k] = self.labels[v]
            if waits[j]:
                fields["wait"] = waits[j]
            if signals[j]:
                fields["signal"] = signals[j]
            out.append(make(e.mnemonic, **fields))
        return out


def _overlap(a: list[tuple[int, int, int]], b: list[tuple[int, int, int]]) -> bool:
    return any(s == t and lo < hi2 and lo2 < hi for s, lo, hi in a for t, lo2, hi2 in b)


def _conflict(first: _Entry, second: _Entry) -> bool:
    return (_overlap(first.writes, second.reads) or _overlap(first.writes, second.writes)
            or _overlap(first.reads, second.writes))


class _Alloc:
    """Bump allocator of one memory space (64-byte aligned)."""

    def __init__(self, size: int, start: int = 0) -> None:
        self.size, self.top = size, start

    def __call__(self, nbytes: int) -> int:
        addr = self.top
        self.top = -(-(addr + nbytes) // 64) * 64
        if self.top > self.size:
            raise ValueError(f"skeleton does not fit: {self.top} > {self.size} bytes")
        return addr


def _mask_bytes(k: int, n: int) -> int:
    return -(-(k * n) // 32) * 4


def build_skeleton(
    cfg: SkeletonConfig = SkeletonConfig(),
    hw: HardwareConfig | None = None,
    *,
    plan: DvfsPlan | None = None,
) -> Program:
    """The skeleton program; without `plan`, the DVFS tables keep every layer at the fastest point."""
    hw = hw or default_config()
    L, S, H, FF, E, A = cfg.layers, cfg.seq, cfg.hidden, cfg.intermediate, cfg.embedding, cfg.labels
    D = H // cfg.heads
    blk = H  # FFN weights in H x H blocks (one mask shape for every weight block)
    if H % cfg.heads or FF % H:
        raise ValueError("hidden must divide by heads, intermediate by hidden")
    sparse = cfg.density < 1.0
    F = fastest_point(hw)
    em = _Emitter()
    sram = _Alloc(hw.memory.level("sram").size_bytes)
    envm = _Alloc(hw.memory.level("envm").size_bytes)
    dram = _Alloc(hw.memory.level("dram").size_bytes)
    segments: list[Segment] = []
    symbols: list[Symbol] = []

    def s_rng(addr: int, n: int) -> tuple[int, int, int]:
        return (SRAM_SPACE, addr, addr + n)

    # ---- eNVM: tables, mask, weights (uninitialized) -------------------------------------------------
    exit_tab = envm(4 * NBINS)
    point_tab = envm(4 * (L + 1))
    recov_tab = envm(4 * (L + 1))
    if plan is None:
        exits = np.full(NBINS, L, dtype=np.int32)
        points = np.full(L + 1, F, dtype=np.int32)
        recov = points
    else:
        exits, points, recov = plan.exit_table, plan.point_table, plan.recovery_table
    for name, addr, tab in (("exit_table", exit_tab, exits), ("point_table", point_tab, points),
                            ("recovery_table", recov_tab, recov)):
        segments.append(Segment("envm", addr, table_bytes(tab), name))
        symbols.append(Symbol(name.upper(), "envm", addr, 4 * len(tab)))
    mbytes = _mask_bytes(H, blk)
    mask_addr = envm(mbytes) if sparse else 0
    nnz = 0
    if sparse:
        rng = np.random.default_rng(cfg.seed)
        bits = rng.random(H * blk) < cfg.density
        nnz = int(bits.sum())
        mask = np.packbits(bits, bitorder="little")
        segments.append(Segment("envm", mask_addr, mask.tobytes() + b"\0" * (mbytes - len(mask)), "mask"))
        symbols.append(Symbol("MASK", "envm", mask_addr, mbytes))
    emb_table = envm(cfg.vocab * E * 4)
    pos_table = envm(S * E * 4)
    w_emb = envm(E * H)
    consts_len = (4 * H + FF + H + 4 * H + 2 * E + H + H + A) * 4
    consts_envm = envm(consts_len)
    vals_bytes = nnz if sparse else H * blk  # AF8 non-zeros (or the dense block) of one H x blk weight block
    blocks = 4 + 2 * (FF // blk)
    w_vals = [envm(vals_bytes) for _ in range(blocks)]
    head_stride = -(-(H * H + H * A) // 64) * 64
    heads = envm(head_stride * L)

    # ---- DRAM: input ids, outputs ----------------------------------------------------------------------
    ids_dram, logits_dram, exit_dram = dram(4 * S), dram(4 * A), dram(4)

    # ---- SRAM ------------------------------------------------------------------------------------------
    act = S * H * 4
    x_s, xq_s = sram(act), sram(S * H)
    region_a = sram(3 * act)  # Q, K, V; later T, Y, FFN hidden chunk; the embedding stage before
    q_s, k_s, v_s = region_a, region_a + act, region_a + 2 * act
    t_s, y_s, h_s = q_s, k_s, v_s
    qq_s, kq_s, vq_s = sram(S * H), sram(S * H), sram(S * H)
    hq_s = qq_s
    sc_s = [sram(S * S * 4) for _ in range(2)]
    pq_s = [sram(S * S) for _ in range(2)]
    ctx_s, cq_s = sram(act), sram(S * H)
    slot = (mbytes if sparse else 0) + H * blk + H * A  # a weight block, or an exit head (pooler + classifier)
    w_s = [sram(slot), sram(slot)]
    consts = sram(consts_len)
    ids_s = sram(4 * S)
    pool_s, poolq_s, x0q_s, logits_s = sram(H * 4), sram(H), sram(H), sram(A * 4)
    emb_s, pos_s, embq_s, we_s = region_a, region_a + S * E * 4, region_a + 2 * S * E * 4, region_a + 3 * S * E * 4
    # constant offsets inside `consts`
    c_bias = {n: consts + 4 * i * H for i, n in enumerate(("q", "k", "v", "o"))}
    c_b1 = consts + 16 * H
    c_b2 = c_b1 + 4 * FF
    c_ln = [c_b2 + 4 * H + 4 * H * i for i in range(4)]  # ln1 gamma, ln1 beta, ln2 gamma, ln2 beta
    c_emb_ln = c_b2 + 4 * H + 16 * H
    c_bemb = c_emb_ln + 8 * E
    c_bp = c_bemb + 4 * H
    c_bc = c_bp + 4 * H

    def ld(dst: int, src_space: int, src: int, rows: int, cols: int, dtype: int, esize: int, *, src_base: int = 0,
           src_stride: int = 0) -> None:
        em.emit("ld", writes=[s_rng(dst, rows * cols * esize)], dst=dst, src_space=src_space, src=src,
                src_base=src_base, src_stride=src_stride, rows=rows, cols=cols, dtype=dtype)

    def ld_bytes(dst: int, src: int, nbytes: int, row: int = 4096) -> None:
        """A contiguous eNVM -> SRAM copy as packed rows of `row` bytes plus a remainder row."""
        rows, rest = divmod(nbytes, row)
        if rows:
            ld(dst, ENVM, src, rows, row, U8, 1)
        if rest:
            ld(dst + rows * row, ENVM, src + rows * row, 1, rest, U8, 1)

    def load_weight(i: int, slot_i: int, src_stride: int = 0, dense_src: int | None = None) -> int:
        """Load weight block i (H x blk AF8) into slot slot_i; returns its SRAM address."""
        dst = w_s[slot_i]
        if sparse:
            ld_bytes(dst, mask_addr, mbytes)  # the bitmask (the [A] mask buffer's content)
            ld_bytes(dst + mbytes, w_vals[i], nnz)  # the packed non-zeros
        else:
            src = w_vals[i] if dense_src is None else dense_src
            ld(dst, ENVM, src, H, blk, U8, 1, src_stride=src_stride)
        return dst

    def matmul(dst: int, a: int, b: int, m: int, k: int, n: int, *, bias: int | None = None, acc: int = 0,
               sparse_b: bool = False, a_stride: int = 0, b_stride: int = 0, dst_stride: int = 0,
               trans_b: int = 0, b_bytes: int | None = None) -> None:
        a_rows_bytes = ((m - 1) * (a_stride or k) + k)
        b_len = b_bytes if b_bytes is not None else ((n if trans_b else k) - 1) * (b_stride or (k if trans_b else n)) + (
            k if trans_b else n)
        d_len = ((m - 1) * (dst_stride or n) + n) * 4
        reads = [s_rng(a, a_rows_bytes), s_rng(b, b_len)] + ([s_rng(bias, 4 * n)] if bias is not None else [])
        if acc:
            reads.append(s_rng(dst, d_len))
        em.emit("matmul", reads=reads, writes=[s_rng(dst, d_len)], dst=dst, a=a, b=b, bias=bias or 0, m=m, k=k,
                n=n, acc=acc, has_bias=int(bias is not None), sparse=int(sparse_b), trans_b=trans_b, a_fmt=AF8,
                b_fmt=AF8, a_exp=4, b_exp=4, a_stride=a_stride, b_stride=b_stride, dst_stride=dst_stride)

    def weight_matmul(dst: int, a: int, w: int, m: int, *, bias: int | None, acc: int = 0) -> None:
        matmul(dst, a, w, m, H, blk, bias=bias, acc=acc, sparse_b=sparse, dst_stride=0,
               b_bytes=(mbytes + nnz) if sparse else H * blk)

    def unary(mn: str, dst: int, src: int, rows: int, cols: int, out_size: int = 4, in_size: int = 4,
              **kw: int) -> None:
        em.emit(mn, reads=[s_rng(src, rows * cols * in_size)], writes=[s_rng(dst, rows * cols * out_size)],
                dst=dst, src=src, rows=rows, cols=cols, **kw)

    def quant(dst: int, src: int, rows: int, cols: int, **kw: int) -> None:
        unary("quant", dst, src, rows, cols, out_size=1, exp_bias=4, **kw)

    def vadd(dst: int, a: int, b: int, rows: int, cols: int) -> None:
        n = rows * cols * 4
        em.emit("vadd", reads=[s_rng(a, n), s_rng(b, n)], writes=[s_rng(dst, n)], dst=dst, a=a, b=b, rows=rows,
                cols=cols)

    def layernorm(dst: int, src: int, rows: int, cols: int, gamma: int) -> None:
        em.emit("layernorm", reads=[s_rng(src, rows * cols * 4), s_rng(gamma, 8 * cols)],
                writes=[s_rng(dst, rows * cols * 4)], dst=dst, src=src, rows=rows, cols=cols, gamma=gamma,
                beta=gamma + 4 * cols, eps=_f32(1e-12))

    # ---- prologue ---------------------------------------------------------------------------------------
    em.emit("dvfs", point=F)
    for r, v in ((R_LAYER, 0), (R_L, L), (R_HEAD, 0), (R_PRED, 0), (R_OFF, 0)):
        em.emit("li", rd=r, imm=v)
    ld(ids_s, DRAM, ids_dram, 1, S, I32, 4)
    ld(consts, ENVM, consts_envm, 1, consts_len // 4, F32, 4)
    em.emit("gather", reads=[s_rng(ids_s, 4 * S)], writes=[s_rng(emb_s, S * E * 4)], dst=emb_s, table_space=ENVM,
            table=emb_table, idx=ids_s, rows=S, cols=E, dtype=F32)
    ld(pos_s, ENVM, pos_table, S, E, F32, 4)
    vadd(emb_s, emb_s, pos_s, S, E)
    layernorm(emb_s, emb_s, S, E, c_emb_ln)
    quant(embq_s, emb_s, S, E)
    ld(we_s, ENVM, w_emb, E, H, U8, 1)
    matmul(x_s, embq_s, we_s, S, E, H, bias=c_bemb)
    em.emit("barrier")

    # ---- the layer loop ---------------------------------------------------------------------------------
    em.label("layer")
    em.emit("barrier")
    em.emit("addi", rd=R_LAYER, rs1=R_LAYER, imm=1)
    quant(xq_s, x_s, S, H)
    n_slot = 0
    for i, (name, dst) in enumerate((("q", q_s), ("k", k_s), ("v", v_s))):
        w = load_weight(i, n_slot % 2)
        n_slot += 1
        weight_matmul(dst, xq_s, w, S, bias=c_bias[name])
    for src, dst in ((q_s, qq_s), (k_s, kq_s), (v_s, vq_s)):
        quant(dst, src, S, H)
    for h in range(cfg.heads):
        sc, pq = sc_s[h % 2], pq_s[h % 2]
        matmul(sc, qq_s + h * D, kq_s + h * D, S, D, S, trans_b=1, a_stride=H, b_stride=H)
        unary("softmax", sc, sc, S, S, scale=_f32(1.0 / np.sqrt(D)))
        quant(pq, sc, S, S)
        matmul(ctx_s + h * D * 4, pq, vq_s + h * D, S, S, D, b_stride=H, dst_stride=H)
    quant(cq_s, ctx_s, S, H)
    w = load_weight(3, n_slot % 2)
    n_slot += 1
    weight_matmul(t_s, cq_s, w, S, bias=c_bias["o"])
    vadd(t_s, t_s, x_s, S, H)
    layernorm(x_s, t_s, S, H, c_ln[0])
    quant(xq_s, x_s, S, H)
    chunks = FF // blk
    for c in range(chunks):
        w1 = load_weight(4 + 2 * c, n_slot % 2)
        n_slot += 1
        matmul(h_s, xq_s, w1, S, H, blk, bias=c_b1 + 4 * c * blk, sparse_b=sparse,
               b_bytes=(mbytes + nnz) if sparse else H * blk)
        unary("gelu", h_s, h_s, S, blk)
        quant(hq_s, h_s, S, blk)
        w2 = load_weight(5 + 2 * c, n_slot % 2)
        n_slot += 1
        # W2 chunk c: rows c*blk .. of the FF x H matrix (blk x H); the skeleton keeps blk == H blocks.
        matmul(y_s, hq_s, w2, S, blk, H, bias=c_b2 if c == chunks - 1 else None, acc=int(c > 0), sparse_b=sparse,
               b_bytes=(mbytes + nnz) if sparse else blk * H)
    vadd(y_s, y_s, x_s, S, H)
    layernorm(x_s, y_s, S, H, c_ln[2])
    # exit head of this layer (pooler + classifier; weights at heads + R_HEAD)
    quant(x0q_s, x_s, 1, H)
    wp = w_s[n_slot % 2]
    ld(wp, ENVM, heads, H, H, U8, 1, src_base=R_HEAD)
    wc = wp + H * H
    ld(wc, ENVM, heads + H * H, H, A, U8, 1, src_base=R_HEAD)
    matmul(pool_s, x0q_s, wp, 1, H, H, bias=c_bp)
    unary("tanh", pool_s, pool_s, 1, H)
    quant(poolq_s, pool_s, 1, H)
    matmul(logits_s, poolq_s, wc, 1, H, A, bias=c_bc)
    em.emit("entropy", reads=[s_rng(logits_s, 4 * A)], fd=F_ENT, src=logits_s, n=A)
    em.emit("addi", rd=R_HEAD, rs1=R_HEAD, imm=head_stride)
    em.emit("bexit", fs=F_ENT, threshold=_f32(cfg.threshold), target="exit")
    em.raw(predict_snippet(em.pc, r_layer=R_LAYER, r_pred=R_PRED, r_off=R_OFF, r_tmp=R_TMP, f_entropy=F_ENT,
                           exit_table=exit_tab, point_table=point_tab, space="envm", nbins=NBINS, scale=100.0))
    em.raw(recovery_snippet(em.pc, r_layer=R_LAYER, r_pred=R_PRED, r_off=R_OFF, r_tmp=R_TMP,
                            recovery_table=recov_tab, space="envm"))
    em.emit("blt", rs1=R_LAYER, rs2=R_L, target="layer")

    # ---- epilogue ---------------------------------------------------------------------------------------
    em.label("exit")
    em.emit("barrier")
    em.emit("st", dst_space=DRAM, dst=logits_dram, src=logits_s, rows=1, cols=A, dtype=F32)
    em.emit("sw", rs=R_LAYER, dst_space=DRAM, dst=exit_dram)
    em.emit("halt")
    code = em.finish()
    symbols += [Symbol(name, "code", pc) for name, pc in em.labels.items()]
    metadata: dict[str, Any] = {
        "inputs": [{"name": "input_ids", "space": "dram", "address": ids_dram, "shape": [1, S], "dtype": "int64"}],
        "outputs": [{"name": "logits", "space": "dram", "address": logits_dram, "shape": [1, A], "dtype": "float32"}],
        "exit_layer": {"space": "dram", "address": exit_dram},
        "thresholds": [cfg.threshold],
        "compiler": "edgebert.emulator.albert_skeleton",
        "skeleton": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "sram_bytes_used": sram.top,
    }
    if plan is not None:
        metadata["dvfs_table"] = plan.to_json()
    return Program(code, segments, symbols, metadata, hw.fingerprint)


def measure_cycles(program: Program, hw: HardwareConfig | None = None) -> LayerCycles:
    """Prologue / per-layer / epilogue cycles of the skeleton (`dvfs_plan.measure_layer_cycles`)."""
    return measure_layer_cycles(program, hw or default_config())


def build_planned_skeleton(
    cfg: SkeletonConfig,
    exit_table: np.ndarray,
    target_s: float,
    hw: HardwareConfig | None = None,
    *,
    margin: float = 0.0,
) -> tuple[Program, DvfsPlan]:
    """Build the skeleton, measure its cycles, plan DVFS for `target_s`, rebuild with the plan's tables."""
    hw = hw or default_config()
    cycles = measure_cycles(build_skeleton(cfg, hw), hw)
    plan = plan_dvfs(hw, cycles, cfg.layers, target_s, exit_table, margin=margin)
    return build_skeleton(cfg, hw, plan=plan), plan
