"""The tiling search: candidate block shapes of each op kind, each scored with the emulator's own cycle formulas
(`isa.costs`) and the config's bandwidths, with the SRAM it needs (working set) and the bytes it moves off chip.

A group's estimate is the steady state of its block pipeline: the busiest unit (PU, SFU, load, store) bounds its
cycles, since loads of block i+1 overlap the compute of block i (double buffering). Candidates are reduced to a
Pareto front (working set vs score), so the plan can ask "the best tiling within B bytes" for any budget B.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.compiler.hierarchy.groups import AttentionGeo, DenseGeo, Group, RowsGeo
from edgebert.compiler.tile_ir import ITEMSIZE
from edgebert.isa.costs import Costs, ceil_div
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.table import DTYPES, FORMATS, SPACES

#: block counts tried when splitting a dimension (1 = the whole dimension)
SPLITS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192)
SFU_UNIT = "sfu"


@dataclass
class Estimate:
    """One candidate tiling of a group: what it costs and what it needs."""

    ws: int  # SRAM bytes the group needs besides the values that live around it
    pu: float = 0.0
    sfu: float = 0.0
    ld: float = 0.0
    st: float = 0.0
    envm: int = 0  # bytes read from eNVM
    dram: int = 0  # bytes read from and written to DRAM
    tiling: dict[str, Any] = field(default_factory=dict)
    what: str = ""

    @property
    def cycles(self) -> float:
        return max(self.pu, self.sfu, self.ld, self.st)

    @property
    def offchip(self) -> int:
        return self.envm + self.dram

    def add(self, other: Estimate, other_ws: int | None = None) -> Estimate:
        """Two estimates run one after the other (an unfused pair); `other_ws`: the second's working set with what
        the first leaves resident."""
        ws = max(self.ws, other.ws if other_ws is None else other_ws)
        return Estimate(ws, self.pu + other.pu, self.sfu + other.sfu, self.ld + other.ld,
                        self.st + other.st, self.envm + other.envm, self.dram + other.dram,
                        {**self.tiling, "then": other.tiling}, f"{self.what}; then {other.what}")


class Scorer:
    """isa.costs for one config, memoised (the search asks for the same shapes many times)."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        self.costs = Costs(hw)
        regions = hw.memory.sram.regions("sram")
        self.port = max(b.port_bytes_per_cycle for _, _, b in regions)
        self.largest_region = max(hi - lo for lo, hi, _ in regions)
        self.buffer_set = len(regions) > 1
        self.vs = hw.pu.vector_size
        #: weight of one byte moved off chip in the score: a tie-break worth a quarter of its DRAM transfer time
        self.byte_weight = 1.0 / hw.memory.dram.bandwidth

    def score(self, e: Estimate) -> float:
        return e.cycles + self.byte_weight * e.offchip

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one Scorer per compile
    def matmul(self, m: int, k: int, n: int, a_bytes: int, b_bytes: int, density: float = 1.0) -> int:
        nnz = None if density >= 1.0 else int(round(density * k * n))
        return self.costs.matmul(m, k, n, a_bytes, b_bytes, nnz)

    @functools.lru_cache(maxsize=65536)  # noqa: B019
    def sfu(self, op: str, rows: int, cols: int) -> int:
        return self.costs.sfu(op, max(rows, 1), max(cols, 1))

    def dma(self, src: str, dst: str, rows: int, row_bytes: int, contiguous: bool) -> int:
        nbytes = rows * row_bytes
        bursts = self.costs.bursts(rows, row_bytes, contiguous)
        return self.costs.dma(SPACES.index(src), SPACES.index(dst), nbytes, bursts, self.port)


def splits(total: int, step: int, limit: int) -> list[int]:
    """Block sizes for a dimension: `total` split into 1, 2, 3, ... blocks (multiples of `step`, at most `limit`)."""
    out = []
    for j in SPLITS:
        b = -(-total // j)
        if b < total:
            b = -(-b // step) * step
        b = min(b, total)
        if b <= limit and b not in out and (b >= step or b == total):
            out.append(b)
    if not out:
        out.append(min(limit, total))
    return out


def pareto(options: list[Estimate], scorer: Scorer) -> list[Estimate]:
    """Options by increasing working set, each strictly better scored than every smaller one."""
    front: list[Estimate] = []
    for e in sorted(options, key=lambda o: (o.ws, scorer.score(o))):
        if not front or scorer.score(e) < scorer.score(front[-1]):
            front.append(e)
    return front


def _counts(total: int, block: int) -> list[tuple[int, int]]:
    """(block size, how many) covering `total`: full blocks and the remainder."""
    full, rest = divmod(total, block)
    return [(block, full)] + ([(rest, 1)] if rest else [])


# ---- weight statistics (sparse tiles) --------------------------------------------------------------------------------


@dataclass
class WeightStats:
    """Non-zero counts of a weight on a grid of vector-sized blocks (sizes of its bitmask-sparse tiles)."""

    grid: np.ndarray  # [K/vs, N/vs] prefix sums of non-zeros (ceil)
    step: int
    density: float

    @classmethod
    def of(cls, w: np.ndarray, step: int) -> WeightStats:
        k, n = w.shape
        kb, nb = -(-k // step), -(-n // step)
        padded = np.zeros((kb * step, nb * step), bool)
        padded[:k, :n] = w != 0
        counts = padded.reshape(kb, step, nb, step).sum(axis=(1, 3))
        grid = np.zeros((kb + 1, nb + 1), np.int64)
        grid[1:, 1:] = counts.cumsum(0).cumsum(1)
        return cls(grid, step, float(counts.sum()) / max(w.size, 1))

    def max_nnz(self, k_t: int, n_t: int) -> int:
        """The most non-zeros of any [k_t, n_t] tile of the tiling (tiles aligned to vector blocks)."""
        g = self.grid
        kb_all, nb_all = g.shape[0] - 1, g.shape[1] - 1
        kb, nb = max(1, -(-k_t // self.step)), max(1, -(-n_t // self.step))
        rs = np.unique(np.append(np.arange(0, kb_all, kb), kb_all))
        cs = np.unique(np.append(np.arange(0, nb_all, nb), nb_all))
        sub = g[np.ix_(rs, cs)]
        sums = sub[1:, 1:] - sub[:-1, 1:] - sub[1:, :-1] + sub[:-1, :-1]
        return min(k_t * n_t, int(sums.max()) if sums.size else 0)


def weight_tile_bytes(geo: DenseGeo, stats: WeightStats | None, k_t: int, n_t: int) -> int:
    """The largest stored [k_t, n_t] tile of the weight: dense, or bitmask + packed non-zeros when smaller."""
    dense = k_t * n_t * geo.w_item
    if not geo.sparse or stats is None:
        return dense
    sparse = -(-k_t * n_t // 32) * 4 + stats.max_nnz(k_t, n_t) * geo.w_item
    return min(dense, sparse) + 64  # the raw rows are padded to a rectangle


# ---- dense ---------------------------------------------------------------------------------------------------------


def dense_options(geo: DenseGeo, a_home: str, out_home: str, a_bytes: int, out_bytes: int, s: Scorer,
                  stats: WeightStats | None, w_level: str = "envm", a_pre: bool = False,
                  out_q: bool = False) -> list[Estimate]:
    """Output-stationary tilings of a dense: each output block stays in SRAM while the reduction streams through it.

    A (`a_home` sram: read in place; dram: loaded per block, or one row block whole) and the weight tiles (from
    `w_level`) are double buffered. With an AF8 activation the reduction is never split (the sums stay exact): the
    row block of A is quantized once (from SRAM, or loaded in chunks) and reused for every output block; `a_pre`:
    A is already AF8 codes (its producer quantized it). `out_q`: each output block is quantized to AF8 codes after
    the epilogue (for the next dense, which reads only them) and stored as such; `out_bytes` is their size."""
    hw = s.hw
    vs = s.vs
    m, k, n = geo.m, geo.k, geo.n
    wb = geo.w_item
    density = stats.density if stats is not None and hw.pu.skip_zero_macs else 1.0
    af8 = geo.a_exp is not None
    a_fmt = 1 if af8 else 4
    bias = n * 4 if geo.bias else 0
    out: list[Estimate] = []
    m_opts = splits(m, vs, hw.pu.max_m)
    n_opts = splits(n, vs, hw.pu.max_n)
    k_opts = [k] if af8 else splits(k, vs, hw.pu.max_k)
    if af8 and k > hw.pu.max_k:
        return []
    for m_t in m_opts:
        nm = ceil_div(m, m_t)
        for n_t in n_opts:
            nn = ceil_div(n, n_t)
            # an output block larger than one SRAM buffer of a buffer set: column sub-blocks in separate buffers,
            # each with its own weight tile, all sharing x's block (x is re-read once per n_t, not per sub-block)
            sub = n_t
            if m_t * n_t * 4 > s.largest_region and s.buffer_set:
                sub = min(n_t, ceil_div(ceil_div(n_t, 2), vs) * vs)
            if m_t * sub * 4 > s.largest_region:
                continue
            for k_t in k_opts:
                w_tile = weight_tile_bytes(geo, stats, k_t, sub)
                if w_tile > s.largest_region:
                    continue
                pu = sum(s.matmul(mm, kk, nn_, a_fmt, wb, density) * cm * ck * cn
                         for mm, cm in _counts(m, m_t) for kk, ck in _counts(k, k_t) for nn_, cn in _counts(n, sub))
                w_ld = sum(s.dma(w_level, "sram", kk if not geo.sparse else 1,
                                 nn_ * wb if not geo.sparse else weight_tile_bytes(geo, stats, kk, nn_),
                                 nn_ == n or geo.sparse) * ck * cn
                           for kk, ck in _counts(k, k_t) for nn_, cn in _counts(n, sub)) * nm
                envm = int(k * n * (wb * (density if geo.sparse else 1.0) + (0.125 if geo.sparse else 0)) * nm) + bias
                o_item = 1 if out_q else 4
                st = sum(s.dma("sram", "dram", mm, nn_ * o_item, nn_ == n) * cm * cn
                         for mm, cm in _counts(m, m_t) for nn_, cn in _counts(n, sub)) if out_home == "dram" else 0
                ops = [*geo.epilogue, *(["quant"] if out_q else [])]
                sfu = sum(s.sfu(op, mm, nn_) * cm * cn for op in ops
                          for mm, cm in _counts(m, m_t) for nn_, cn in _counts(n, sub))
                dram_out = m * n * o_item if out_home == "dram" else 0
                for out_slots in ((2, 1) if out_home == "dram" or out_q else (0,)):
                    out_ws = out_slots * m_t * n_t * (4 + (1 if out_q and out_home == "dram" else 0))
                    if out_home != "dram":
                        out_ws += out_bytes
                    base = dict(m_t=m_t, k_t=k_t, n_t=n_t, out_slots=out_slots, **({"n_sub": sub} if sub < n_t
                                                                                  else {}))
                    # one output slot: the next block waits for the store of the last one
                    st_serial = st if out_slots == 1 else 0
                    out.extend(_dense_candidates(geo, s, a_home, a_bytes, m_t, k_t, n_t, pu + st_serial, sfu, w_ld,
                                                 st, envm, dram_out, out_ws, w_tile, bias, base, a_fmt, nm, nn, a_pre))
    for e in out:
        e.what = _dense_what(geo, e)
    return out


def _dense_candidates(geo: DenseGeo, s: Scorer, a_home: str, a_bytes: int, m_t: int, k_t: int, n_t: int, pu: float,
                      sfu: float, w_ld: float, st: float, envm: int, dram_out: int, out_ws: int, w_tile: int,
                      bias: int, base: dict[str, Any], a_fmt: int, nm: int, nn: int,
                      a_pre: bool = False) -> list[Estimate]:
    """The ways of feeding A to one (m_t, k_t, n_t) tiling (dense_options)."""
    m, k = geo.m, geo.k
    out: list[Estimate] = []
    if a_pre:  # AF8 codes already: a row block read in place, or loaded once per row block
        a_ld = 0 if a_home == "sram" else sum(s.dma("dram", "sram", mm, k, True) * cm for mm, cm in _counts(m, m_t))
        for slots, a_slots in ((2, 2), (1, 2), (2, 1), (1, 1)):
            a_ws = a_bytes if a_home == "sram" else m_t * k * (a_slots if nm > 1 else 1)
            e = Estimate(a_ws + slots * w_tile + out_ws + bias, pu, sfu, w_ld + a_ld, st, envm,
                         dram_out + (0 if a_home == "sram" else m * k),
                         {**base, "a": "af8", "w_slots": slots, "a_slots": a_slots})
            e.pu += (w_ld if slots == 1 else 0) + (a_ld if a_slots == 1 and nm > 1 else 0)  # loads no longer overlap
            out.append(e)
        return out
    if geo.a_exp is not None:  # A's row block quantized once, reused by every output block
        for chunk in ([k] if a_home == "sram" else splits(k, s.vs, k)[:6]):
            a_ld = 0 if a_home == "sram" else sum(s.dma("dram", "sram", mm, kc * 4, kc == k) * cm * ckc
                                                  for mm, cm in _counts(m, m_t) for kc, ckc in _counts(k, chunk))
            q = sum(s.sfu("quant", mm, kc) * cm * ckc for mm, cm in _counts(m, m_t) for kc, ckc in _counts(k, chunk))
            for slots, a_slots in ((2, 2), (1, 2), (2, 1), (1, 1)):
                blocks = a_slots if nm > 1 else 1  # AF8 row blocks: the next one quantized while this one is used
                a_ws = (a_bytes if a_home == "sram" else 2 * m_t * chunk * 4) + blocks * m_t * k
                e = Estimate(a_ws + slots * w_tile + out_ws + bias, pu, sfu + q, w_ld + a_ld, st, envm,
                             dram_out + (0 if a_home == "sram" else m * k * 4),
                             {**base, "a_chunk": chunk, "w_slots": slots, "a_slots": a_slots})
                # single buffers: weight loads, or the next row block's loads and quantization, no longer overlap
                e.pu += (w_ld if slots == 1 else 0) + ((a_ld + q) if blocks == 1 and nm > 1 else 0)
                out.append(e)
        return out
    if a_home == "sram":
        return [Estimate(a_bytes + 2 * w_tile + out_ws + bias, pu, sfu, w_ld, st, envm, dram_out, {**base, "a": "sram"})]
    # A from DRAM: a block per (output block, reduction step), or each row block whole once
    a_blocks = sum(s.dma("dram", "sram", mm, kk * 4, kk == k) * cm * ck
                   for mm, cm in _counts(m, m_t) for kk, ck in _counts(k, k_t))
    out.append(Estimate(2 * m_t * k_t * 4 + 2 * w_tile + out_ws + bias, pu, sfu, w_ld + a_blocks * nn, st, envm,
                        dram_out + m * k * 4 * nn, {**base, "a": "blocks"}))
    if m_t * k * 4 <= s.largest_region and nn > 1:
        whole_ws = m_t * k * 4 * (2 if nm > 1 else 1)
        out.append(Estimate(whole_ws + 2 * w_tile + out_ws + bias, pu, sfu, w_ld + a_blocks, st, envm,
                            dram_out + m * k * 4, {**base, "a": "rows"}))
    return out


def _dense_what(geo: DenseGeo, e: Estimate) -> str:
    t = e.tiling
    a = {"sram": "x in SRAM", "blocks": "x blocks streamed", "rows": "x row blocks loaded once",
         "af8": "x as AF8 codes"}.get(t.get("a"), "")
    if "a_chunk" in t:
        a = f"x quantized per row block (chunks of {t['a_chunk']})"
    subs = f" (output in {-(-t['n_t'] // t['n_sub'])} buffers)" if "n_sub" in t else ""
    return f"{t['m_t']}x{t['k_t']}x{t['n_t']} output-stationary{subs}, {a}"


# ---- fused FFN -----------------------------------------------------------------------------------------------------


def ffn_options(d1: DenseGeo, d2: DenseGeo, x_bytes: int, y_bytes: int, s: Scorer, st1: WeightStats | None,
                st2: WeightStats | None) -> list[Estimate]:
    """dense1 -> unary -> dense2 by blocks of j intermediate columns: h_j = f(x W1[:, j]) never exists whole and
    y += h_j W2[j, :] accumulates in SRAM (x and y stay in SRAM). Not with an AF8 second dense (its sum is split)."""
    hw, vs = s.hw, s.vs
    if d2.a_exp is not None:
        return []
    m, k, n1, n2 = d1.m, d1.k, d1.n, d2.n
    a1 = 1 if d1.a_exp is not None else 4
    den1 = st1.density if st1 is not None and hw.pu.skip_zero_macs else 1.0
    den2 = st2.density if st2 is not None and hw.pu.skip_zero_macs else 1.0
    bias = (n1 + n2) * 4
    out = []
    for j_t in splits(n1, vs, min(hw.pu.max_n, hw.pu.max_k)):
        nj = ceil_div(n1, j_t)
        if nj < 2:
            continue
        for k1 in ([k] if d1.a_exp is not None else splits(k, vs, hw.pu.max_k)[:6]):
            for n2_t in splits(n2, vs, hw.pu.max_n)[:8]:
                w1 = weight_tile_bytes(d1, st1, k1, j_t)
                w2 = weight_tile_bytes(d2, st2, j_t, n2_t)
                ws = x_bytes + y_bytes + 2 * m * j_t * 4 + 2 * w1 + 2 * w2 + bias
                if d1.a_exp is not None:
                    ws += m * k
                pu = sfu = ld = 0.0
                for jj, cj in _counts(n1, j_t):
                    pu += cj * sum(s.matmul(m, kk, jj, a1, d1.w_item, den1) * ck for kk, ck in _counts(k, k1))
                    pu += cj * sum(s.matmul(m, jj, nn_, 4, d2.w_item, den2) * cn for nn_, cn in _counts(n2, n2_t))
                    sfu += cj * sum(s.sfu(op, m, jj) for op in d1.epilogue)
                    ld += cj * sum(s.dma("envm", "sram", kk, jj * d1.w_item, False) * ck for kk, ck in _counts(k, k1))
                    ld += cj * sum(s.dma("envm", "sram", jj, nn_ * d2.w_item, nn_ == n2) * cn
                                   for nn_, cn in _counts(n2, n2_t))
                if d1.a_exp is not None:
                    sfu += s.sfu("quant", m, k)
                envm = int(k * n1 * d1.w_item * (den1 if d1.sparse else 1) + n1 * n2 * d2.w_item
                           * (den2 if d2.sparse else 1)) + bias
                e = Estimate(ws, pu, sfu, ld, 0, envm, 0, dict(j_t=j_t, k_t=k1, n_t=n2_t, fused=True))
                e.what = f"fused by {nj} blocks of {j_t} intermediate columns (W1 tiles {k1}x{j_t}, W2 tiles " \
                         f"{j_t}x{n2_t}); the intermediate never exists whole"
                out.append(e)
    return out


# ---- row-local chains ----------------------------------------------------------------------------------------------


def rows_options(geo: RowsGeo, homes: dict[int, str], sizes: dict[int, int], outputs: list[int], internal: list[int],
                 s: Scorer, gathers: list[tuple[int, int]]) -> list[Estimate]:
    """The chain per block of r rows: DRAM inputs loaded per block (double buffered), outputs stored per block."""
    out = []
    rows = geo.rows

    def streamed(v: int, r: int, src: str, dst: str) -> tuple[int, float, int]:
        """(SRAM, transfer cycles, DRAM bytes) of a row-shaped tensor: two block slots in DRAM, else whole."""
        rb = geo.row_bytes[v]
        if homes.get(v) != "dram":
            return sizes[v], 0.0, 0
        return 2 * r * rb, sum(s.dma(src, dst, rr, rb, True) * c for rr, c in _counts(rows, r)), rows * rb

    for r in splits(rows, 1, rows):
        ws = dram = 0
        ld = st = 0.0
        for v in geo.sliced:
            w, t, d = streamed(v, r, "dram", "sram")
            ws, ld, dram = ws + w, ld + t, dram + d
        for v in geo.whole:
            ws += sizes[v]
            if homes.get(v) == "dram":
                ld += s.dma("dram", "sram", 1, sizes[v], True)
                dram += sizes[v]
        if geo.const_row_bytes:
            ws += 2 * r * geo.const_row_bytes
            ld += sum(s.dma("envm", "sram", rr, geo.const_row_bytes, True) * c for rr, c in _counts(rows, r))
        ws += geo.const_bytes
        for v in internal:
            ws += r * geo.row_bytes[v]
        for v in outputs:
            w, t, d = streamed(v, r, "sram", "dram")
            ws, st, dram = ws + w, st + t, dram + d
        for grows, gbytes in gathers:  # embedding rows gathered from eNVM per block
            ld += sum(s.dma("envm", "sram", rr * grows // rows, gbytes // max(grows, 1), False) * c
                      for rr, c in _counts(rows, r))
        sfu = 0.0
        for op, irows, icols in geo.sfu:  # the traced instruction's share of a block of rr rows
            for rr, c in _counts(rows, r):
                if irows % rows == 0:
                    sfu += s.sfu(op, rr * irows // rows, icols) * c
                elif irows == 1:
                    sfu += s.sfu(op, 1, -(-icols * rr // rows)) * c
                else:
                    sfu += s.sfu(op, -(-irows * rr // rows), icols) * c
        e = Estimate(ws, 0, sfu, ld, st, geo.const_row_bytes * rows + geo.const_bytes, dram, dict(r=r))
        e.what = f"{ceil_div(rows, r)} blocks of {r} rows"
        out.append(e)
    return out


# ---- attention -----------------------------------------------------------------------------------------------------


def attention_options(geo: AttentionGeo, homes: dict[int, str], sizes: dict[int, int], s: Scorer) -> list[Estimate]:
    """Per head: K_h and V_h loaded (double buffered across heads, or single), then per query block of r rows:
    scores, softmax with the scale and mask, P V. The span form keeps its 16-row windowed blocks; its q block is
    the whole head. `slots` 1: a query block's load, scores and store no longer overlap the next block's."""
    out = []
    S, H, D = geo.seq, geo.heads, geo.head_dim
    ab = 1 if geo.af8 else 4
    head = S * D * 4
    kv_ld = s.dma("dram", "sram", S, D * 4, H == 1)
    widest = max((min(S, 16 + 2 * w) if w is not None else S) for w in geo.windows)
    span_rows = min(S, s.vs) if all(w is not None for w in geo.windows) else min(S, s.hw.pu.max_m)  # span.row_block
    r_opts = [span_rows] if geo.span else splits(S, s.vs, min(S, s.hw.pu.max_m))
    for r, kv_slots, slots in ((r, kv, sl) for r in r_opts for kv in (2, 1) for sl in (2, 1)):
        nb = ceil_div(S, r)
        ws, ld, st, dram = S * 4, 0.0, 0.0, 0
        for i, v in enumerate((geo.k, geo.v)):
            if homes.get(v) == "dram":  # AF8: K and V share one fp32 staging ring (quantized right after loading)
                ws += (kv_slots * head if i == 0 or not geo.af8 else 0) + (kv_slots * S * D if geo.af8 else 0)
                ld += H * kv_ld
                dram += sizes[v]
            else:
                ws += sizes[v] + (kv_slots * S * D if geo.af8 else 0)
        if homes.get(geo.q) == "dram":
            ws += slots * r * D * 4 + (r * D if geo.af8 else 0)
            ld += H * nb * s.dma("dram", "sram", r, D * 4, False)
            dram += sizes[geo.q]
        else:
            ws += sizes[geo.q] + (r * D if geo.af8 else 0)
        if homes.get(geo.out) == "dram":
            ws += slots * r * D * 4
            st += H * nb * s.dma("sram", "dram", r, D * 4, False)
            dram += sizes[geo.out]
        else:
            ws += sizes[geo.out]
        srows = r
        ws += slots * srows * widest * 4 + (srows * widest if geo.af8 else 0)
        if geo.pu:
            pu = sum(s.matmul(m, k, n, a, b) for m, k, n, a, b in geo.pu)
            sfu = sum(s.sfu(op, rr, c) for op, rr, c in geo.sfu)
        else:
            pu = H * nb * (s.matmul(r, D, S, ab, ab) + s.matmul(r, S, D, ab, ab))
            sfu = H * nb * (s.sfu("vmuli", r, S) + s.sfu("vadd", r, S) + s.sfu("softmax", r, S))
            if geo.af8:
                sfu += H * (nb * (s.sfu("quant", r, D) + s.sfu("quant", r, S)) + 2 * s.sfu("quant", S, D))
        if kv_slots == 1 and homes.get(geo.k) == "dram":
            pu += H * 2 * kv_ld  # K and V loads no longer overlap the previous head
        if slots == 1:
            pu += (ld - (H * 2 * kv_ld if homes.get(geo.k) == "dram" else 0)) + st
        e = Estimate(ws, pu, sfu, ld, st, 0, dram, dict(r=r, kv_slots=kv_slots, slots=slots))
        e.what = (f"per head, query blocks of {r} rows" if not geo.span else "per head, 16-row span windows") + \
            (", K/V double buffered" if kv_slots == 2 else ", K/V single buffered") + \
            (", one slot per stream" if slots == 1 else "")
        out.append(e)
    return out


# ---- whatever else: whole tensors ----------------------------------------------------------------------------------


def instruction_cycles(inst: Any, s: Scorer) -> tuple[str, float]:
    """(unit, cycles) of one traced tile instruction (its buffers' spaces as placed in the trace)."""
    f, mn = inst.fields, inst.mnemonic
    unit = inst.unit
    if mn == "matmul":
        a = 1 if f.get("a_fmt", 0) == FORMATS.index("af8") else 4
        b = 1 if f.get("b_fmt", 0) == FORMATS.index("af8") else 4
        return unit, s.matmul(f["m"], f["k"], f["n"], a, b)
    if unit == SFU_UNIT:
        if mn == "entropy":
            return unit, s.sfu(mn, 1, f["n"])
        return unit, s.sfu(mn, f["rows"], f["cols"])
    if mn in ("ld", "st", "gather"):
        item = ITEMSIZE[DTYPES[f["dtype"]]]
        spaces = [b.space for b, _ in inst.addrs.values()]
        src = next((sp for sp in spaces if sp != "sram"), "dram")
        src, dst = (src, "sram") if mn != "st" else ("sram", src)
        return unit, s.dma(src, dst, f["rows"], f["cols"] * item, f.get("src_stride", 0) == 0)
    return unit, 1.0


def whole_estimate(group: Group, insts: list[Any], homes: dict[int, str], sizes: dict[int, int], temp: int,
                   s: Scorer) -> Estimate:
    """Every tensor of the op whole in SRAM: inputs in DRAM loaded, a result in DRAM stored."""
    e = Estimate(temp)
    for inst in insts:
        unit, cyc = instruction_cycles(inst, s)
        if unit in ("pu", "sfu", "ld", "st"):
            setattr(e, unit, getattr(e, unit) + cyc)
    for v in group.inputs:
        nbytes = group.read_bytes.get(v, sizes[v]) if homes.get(v) == "dram" else sizes[v]
        e.ws += nbytes
        if homes.get(v) == "dram":
            e.ld += s.dma("dram", "sram", 1, nbytes, True)
            e.dram += nbytes
    for v in group.outputs + group.internal:
        e.ws += sizes[v]
        if homes.get(v) == "dram" and v in group.outputs:
            e.st += s.dma("sram", "dram", 1, sizes[v], True)
            e.dram += sizes[v]
    e.what = "whole tensors in SRAM"
    return e
