"""The memory-hierarchy plan: per tensor, where it lives (SRAM-resident, spilled to DRAM, or streamed block by block
inside a fused op), and per op, which tiling it uses - chosen when the all-resident plan does not fit.

How it decides (`build_plan`):
1. The ops are the trace's groups (hierarchy/groups.py); each tensor's lifetime is its producer to its last reader,
   stretched over a layer loop it lives across.
2. Start from the least SRAM: every tensor larger than budget/64 in DRAM (fused intermediates streamed). If an op
   then has no tiling within the budget (its smallest block plus what must stay resident around it), the SRAM is too
   small: `SramTooSmall` names the op, its smallest block and an SRAM size that compiles.
3. Greedy promotion: move the tensor (or, for a fused FFN, its input and output together) whose residency lowers the
   plan's score the most into SRAM, re-choosing the tiling of every op its lifetime covers; repeat until nothing
   improves. An op's score is its estimated cycles (block_search.py: the busiest unit of its block pipeline, from
   isa.costs) plus a small weight per byte moved off chip; every op takes the best-scored tiling within the SRAM its
   neighbours leave it.
The budget is a fraction of the SRAM (the rest absorbs alignment, fragmentation and small temporaries); the pipeline
plans again with a smaller fraction when the placed program does not fit.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.compiler.errors import SramTooSmall
from edgebert.compiler.hierarchy.block_search import (
    Estimate,
    Scorer,
    WeightStats,
    attention_options,
    dense_options,
    ffn_options,
    pareto,
    rows_options,
    whole_estimate,
)
from edgebert.compiler.hierarchy.groups import DenseGeo, Group, find_groups
from edgebert.compiler.hierarchy.optrace import OpTrace, Site
from edgebert.isa.hardware import HardwareConfig

#: tensors up to budget / SMALL_FRACTION bytes start in SRAM (masks, logits, pooled rows)
SMALL_FRACTION = 64
#: budget fractions of the SRAM the pipeline tries, largest first
BUDGET_FRACTIONS = (0.97, 0.9, 0.8, 0.7, 0.6, 0.5)


@dataclass
class GroupPlan:
    """The decision for one op: its tiling (an Estimate) and where its tensors live."""

    group: Group
    choice: Estimate
    considered: int  # candidate tilings on the Pareto front within reach
    room: int  # SRAM bytes the op could use (budget minus what lives around it)
    best_anywhere: Estimate | None = None  # the best tiling with unlimited SRAM (for "why")

    @property
    def kind(self) -> str:
        if self.group.kind == "ffn":
            return "ffn-fused" if self.choice.tiling.get("fused") else "ffn"
        return self.group.kind


@dataclass
class MemoryPlan:
    """What the blocked lowering and the report read: homes of values, decisions per op, by trace site."""

    sram_bytes: int
    budget: int
    fraction: float
    trace: OpTrace
    homes: dict[int, str]  # value id -> "sram" | "dram" | "stream"
    groups: list[GroupPlan]
    lifetimes: dict[int, tuple[int, int]]
    ring_bytes: int  # the program-wide weight staging buffers of ops lowered whole
    resident_overflow: str = ""  # why every tensor in SRAM did not fit
    #: value -> the loop-carried value whose DRAM home it is written into (the layer's result: no copy per layer)
    aliases: dict[int, int] = field(default_factory=dict)
    by_site: dict[Site, int] = field(default_factory=dict)  # site -> trace event index
    by_event: dict[int, GroupPlan] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for e in self.trace.events:
            if e.site is not None:
                self.by_site.setdefault(e.site, e.index)
        for gp in self.groups:
            for i in gp.group.events:
                self.by_event[i] = gp

    def event(self, site: Site) -> int | None:
        return self.by_site.get(site)

    def group_at(self, site: Site) -> tuple[GroupPlan, int] | None:
        """The op a site belongs to and the site's event index."""
        i = self.by_site.get(site)
        if i is None or i not in self.by_event:
            return None
        return self.by_event[i], i

    def home_of_event(self, index: int) -> str:
        """Where the value event `index` writes lives ("sram" when it writes none)."""
        v = self.trace.events[index].writes
        return self.homes.get(v, "sram") if v is not None else "sram"


class _Planner:
    def __init__(self, trace: OpTrace, insts: list[Any], loops: list[Any], hw: HardwareConfig, budget: int) -> None:
        self.trace, self.insts, self.hw, self.budget = trace, insts, hw, budget
        self.scorer = Scorer(hw)
        self.groups = find_groups(trace)
        self.sizes = {v.id: v.nbytes for v in trace.values}
        self.lifetimes = _lifetimes(trace, loops)
        self.stats: dict[Any, WeightStats] = {}
        self.fronts: dict[Any, list[Estimate]] = {}
        self._fill_traced_costs()
        self.forced = {e.writes for e in trace.events if e.kind == "input" and e.writes is not None}
        self.internal: set[int] = set()
        self.ffn_h: dict[int, int] = {}  # group index -> its intermediate value (home "stream" = fused)
        for g in self.groups:
            if g.kind == "ffn":
                h = g.geo[0].out
                self.ffn_h[g.index] = h
                self.internal.update(v for v in g.internal if v != h)
            else:
                self.internal.update(g.internal)
        self.touching: dict[int, list[int]] = {}  # value -> groups whose span its lifetime overlaps
        self.window: dict[int, list[int]] = {}  # group -> values whose lifetime overlaps its span
        for g in self.groups:
            self.window[g.index] = self._window_values(g)
            for v in self.window[g.index]:
                self.touching.setdefault(v, []).append(g.index)

    # ---- facts ---------------------------------------------------------------------------------
    def _fill_traced_costs(self) -> None:
        """Ops whose blocked form keeps the traced instruction shapes: span attention, rows chains, whole ops."""
        first_ref: dict[int, int] = {}
        for i, inst in enumerate(self.insts):
            for ref in inst.refs:
                first_ref.setdefault(id(ref.buffer), i)
        for g in self.groups:
            events = [self.trace.events[i] for i in g.events]
            insts = [inst for e in events for inst in self.insts[e.start:e.end]]
            if g.kind == "rows":
                g.geo.sfu = [(x.mnemonic, x.fields["rows"], x.fields["cols"]) for x in insts if x.unit == "sfu"]
                g.geo.gathers = [(x.fields["rows"], x.fields["rows"] * x.fields["cols"] * 4) for x in insts
                                 if x.mnemonic == "gather"]
            elif g.kind == "attention" and g.geo.span:
                g.geo.pu = [(x.fields["m"], x.fields["k"], x.fields["n"], 1 + 3 * (x.fields.get("a_fmt", 0) == 0),
                             1 + 3 * (x.fields.get("b_fmt", 0) == 0)) for x in insts if x.mnemonic == "matmul"]
                g.geo.sfu = [(x.mnemonic, x.fields["rows"], x.fields["cols"]) for x in insts if x.unit == "sfu"]
            elif g.kind == "whole":
                e = events[0]
                own = {id(self.trace.values[v].buffer) for v in [*g.inputs, *g.outputs, *g.internal]}
                temps = {id(r.buffer): r.buffer.nbytes for x in insts for r in x.refs
                         if r.buffer.kind in ("act", "stage") and first_ref.get(id(r.buffer), -1) >= e.start
                         and id(r.buffer) not in own}
                g.geo.temp_bytes = sum(temps.values())
                g.geo.insts = insts

    def _window_values(self, g: Group) -> list[int]:
        return [v for v, (a, b) in self.lifetimes.items() if a <= g.last and b >= g.first]

    def weight_stats(self, w: np.ndarray) -> WeightStats:
        key = (w.shape, hash(np.ascontiguousarray(w[:: max(1, w.shape[0] // 61), :: max(1, w.shape[1] // 59)]).tobytes()),
               int(np.count_nonzero(w)))
        if key not in self.stats:
            self.stats[key] = WeightStats.of(w, self.scorer.vs)
        return self.stats[key]

    # ---- options -------------------------------------------------------------------------------
    def _home(self, homes: dict[int, str], v: int) -> str:
        return homes.get(v, "sram")

    def front(self, g: Group, homes: dict[int, str]) -> list[Estimate]:
        """The Pareto front of `g`'s tilings given where its tensors live (memoised by structure)."""
        key = self._key(g, homes)
        if key not in self.fronts:
            self.fronts[key] = pareto(self._options(g, homes), self.scorer)
        return self.fronts[key]

    def _dense_stats(self, geo: DenseGeo) -> WeightStats | None:
        return self.weight_stats(geo.weight) if geo.sparse else None

    def _key(self, g: Group, homes: dict[int, str]) -> Any:
        io = tuple((self._home(homes, v), self.sizes[v]) for v in [*g.inputs, *g.outputs])
        if g.kind == "dense":
            d = g.geo
            st = self._dense_stats(d)
            return ("dense", d.m, d.k, d.n, d.w_item, id(st), d.a_exp is None, d.bias, tuple(d.epilogue), io)
        if g.kind == "ffn":
            d1, d2 = g.geo
            return ("ffn", g.index, self._home(homes, self.ffn_h[g.index]), io)
        if g.kind == "attention":
            a = g.geo
            return ("attention", a.seq, a.heads, a.head_dim, a.af8, a.span, tuple(a.windows), tuple(a.pu),
                    tuple(a.sfu), io)
        if g.kind == "rows":
            r = g.geo
            return ("rows", r.rows, tuple(sorted(r.row_bytes.items())), r.const_row_bytes, r.const_bytes,
                    tuple(r.sfu), tuple(r.gathers), tuple(r.sliced), tuple(r.whole), io,
                    tuple(g.outputs), tuple(g.internal))
        return ("whole", g.index, io)

    def _options(self, g: Group, homes: dict[int, str]) -> list[Estimate]:
        s, h = self.scorer, lambda v: self._home(homes, v)
        if g.kind == "dense":
            d = g.geo
            return dense_options(d, h(d.a), h(d.out), self.sizes[d.a], self.sizes[d.out], s, self._dense_stats(d))
        if g.kind == "ffn":
            d1, d2 = g.geo
            hv = self.ffn_h[g.index]
            if h(hv) == "stream":
                if h(d1.a) != "sram" or h(d2.out) != "sram":
                    return []
                return ffn_options(d1, d2, self.sizes[d1.a], self.sizes[d2.out], s, self._dense_stats(d1),
                                   self._dense_stats(d2))
            q = d2.a_exp is not None  # the intermediate stored as dense2's AF8 codes (a quarter of the bytes)
            hb = self.sizes[hv] // 4 if q else self.sizes[hv]
            f1 = pareto(dense_options(d1, h(d1.a), h(hv), self.sizes[d1.a], hb, s, self._dense_stats(d1),
                                      out_q=q), s)
            f2 = pareto(dense_options(d2, h(hv), h(d2.out), hb, self.sizes[d2.out], s, self._dense_stats(d2),
                                      a_pre=q), s)
            x_live = self.sizes[d1.a] if h(d1.a) == "sram" else 0  # x stays resident while dense2 runs
            return [a.add(b, b.ws + x_live) for a in f1 for b in f2]
        if g.kind == "attention":
            return attention_options(g.geo, homes, self.sizes, s)
        if g.kind == "rows":
            return rows_options(g.geo, homes, self.sizes, g.outputs, g.internal, s, g.geo.gathers)
        return [whole_estimate(g, g.geo.insts, homes, self.sizes, g.geo.temp_bytes, s)]

    def around(self, g: Group, homes: dict[int, str]) -> int:
        """SRAM held by resident tensors that live across `g` but are none of its own."""
        own = {*g.inputs, *g.outputs, *g.internal}
        return sum(self.sizes[v] for v in self.window[g.index] if v not in own and homes.get(v) == "sram")

    def best(self, g: Group, homes: dict[int, str]) -> tuple[Estimate | None, int, int]:
        """(the best tiling within the room `g` has, how many fit, the room)."""
        room = self.budget - self.around(g, homes)
        front = self.front(g, homes)
        k = bisect.bisect_right([e.ws for e in front], room)
        return (front[k - 1] if k else None), k, room

    def score(self, g: Group, homes: dict[int, str]) -> float:
        e, _, _ = self.best(g, homes)
        return math.inf if e is None else self.scorer.score(e)

    # ---- the greedy ----------------------------------------------------------------------------
    def initial_homes(self) -> dict[int, str]:
        small = max(256, self.budget // SMALL_FRACTION)
        homes = {}
        for v in self.trace.values:
            if v.id in self.internal:
                homes[v.id] = "stream"
            elif v.id in self.forced or v.nbytes <= small:
                homes[v.id] = "sram"
            else:
                homes[v.id] = "dram"
        return homes

    def moves(self, homes: dict[int, str]) -> list[dict[int, str]]:
        out = [{v: "sram"} for v, h in sorted(homes.items()) if h == "dram"]
        for gi, hv in self.ffn_h.items():
            g = self.groups[gi]
            d1, d2 = g.geo
            if homes.get(hv) != "stream":
                out.append({hv: "stream", d1.a: "sram", d2.out: "sram"})
        return out

    def affected(self, move: dict[int, str]) -> set[int]:
        out: set[int] = set()
        for v in move:
            out.update(self.touching.get(v, []))
        return out

    def run(self) -> tuple[dict[int, str], dict[int, float]]:
        homes = self.initial_homes()
        scores = {g.index: self.score(g, homes) for g in self.groups}
        bad = [g for g in self.groups if scores[g.index] == math.inf]
        if bad:
            self.too_small(bad, homes)
        while True:
            best_delta, best_move = -1e-9, None
            for move in self.moves(homes):
                trial = {**homes, **move}
                delta = 0.0
                for gi in self.affected(move):
                    delta += self.score(self.groups[gi], trial) - scores[gi]
                    if delta == math.inf:
                        break
                if delta < best_delta:
                    best_delta, best_move = delta, move
            if best_move is None:
                return homes, scores
            homes = {**homes, **best_move}
            for gi in self.affected(best_move):
                scores[gi] = self.score(self.groups[gi], homes)

    def too_small(self, bad: list[Group], homes: dict[int, str]) -> None:
        """Raise SramTooSmall for the op needing the most SRAM in the least-SRAM state."""
        needs = []
        for g in self.groups:
            front = self.front(g, homes)
            if not front:
                raise SramTooSmall(g.name, f"{g.kind}: no tiling fits the PU limits", 0, self.hw.memory.sram.size_bytes,
                                   0)
            needs.append((self.around(g, homes) + front[0].ws, g, front[0]))
        need, g, e = max(needs, key=lambda t: t[0])
        worst = max(n for n, *_ in needs)
        size = self.hw.memory.sram.size_bytes
        suggest = suggested_size(worst, self.budget, size)
        raise SramTooSmall(f"{g.name} ({g.kind})", e.what, need, size, suggest)


def suggested_size(need: int, budget: int, size: int) -> int:
    """An SRAM size whose first planning budget holds `need` bytes (4 KiB steps, with this size's slack)."""
    slack = size - budget
    target = need / BUDGET_FRACTIONS[0] + max(0, slack - size * (1 - BUDGET_FRACTIONS[0]))
    return int(math.ceil(target / 4096) * 4096)


def _lifetimes(trace: OpTrace, loops: list[Any]) -> dict[int, tuple[int, int]]:
    """value id -> (first, last) event index, stretched over the layer loops it lives across."""
    spans = {}
    for v in trace.values:
        last = max(v.consumers) if v.consumers else v.producer
        spans[v.id] = [v.producer, last]
    starts = [e.start for e in trace.events]
    for loop in loops:
        inside = [i for i, s in enumerate(starts) if loop.start <= s < loop.end]
        if not inside:
            continue
        lo, hi = inside[0], inside[-1]
        for s in spans.values():
            if s[0] < lo <= s[1]:  # defined before the body, read in it: live in every iteration
                s[1] = max(s[1], hi)
            if lo <= s[0] <= hi < s[1]:  # written in the body, read after it
                s[0] = min(s[0], lo)
    return {k: (a, b) for k, (a, b) in spans.items()}


def build_plan(trace: OpTrace, insts: list[Any], loops: list[Any], hw: HardwareConfig, fraction: float,
               ring_bytes: int) -> MemoryPlan:
    """The plan for the traced program within `fraction` of the SRAM (module docstring)."""
    size = hw.memory.sram.size_bytes
    budget = int(size * fraction) - 2 * ring_bytes
    planner = _Planner(trace, insts, loops, hw, budget)
    homes, _ = planner.run()
    decided = []
    for g in planner.groups:
        e, k, room = planner.best(g, homes)
        front = planner.front(g, homes)
        decided.append(GroupPlan(g, e, k, room, front[-1] if front else None))
    for gi, hv in planner.ffn_h.items():  # the unfused FFN's intermediate lives where dense1 put it
        if homes.get(hv) == "stream" and not decided[gi].choice.tiling.get("fused"):
            homes[hv] = "dram"
    plan = MemoryPlan(size, budget, fraction, trace, homes, decided, planner.lifetimes, ring_bytes)
    plan.aliases = _carry_aliases(trace, homes, plan)
    return plan


def _carry_aliases(trace: OpTrace, homes: dict[int, str], plan: MemoryPlan) -> dict[int, int]:
    """A layer's result written straight into the loop's carried state in DRAM, when its op comes after the body's
    last read of the carried state (the copy at the end of every layer disappears)."""
    out = {}
    for u in trace.events:
        carry = u.attrs.get("carry") if u.kind == "carry-update" else None
        if carry is None or not u.reads or u.reads[0] < 0:
            continue
        r = u.reads[0]
        gp = plan.by_event.get(trace.values[r].producer)
        if homes.get(r) != "dram" or homes.get(carry) != "dram" or gp is None or gp.group.kind == "whole":
            continue
        reads = [c for c in trace.values[carry].consumers if c < u.index]
        if gp.group.first > max(reads, default=-1):
            out[r] = carry
    return out
