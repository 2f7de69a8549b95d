"""A lower bound on the bytes a program must move between its on-chip SRAM and DRAM + eNVM, for an SRAM of S bytes
(benchmarks/bench_memory.py divides a program's measured DRAM + eNVM traffic by it; docs/compiler.md defines it).

Per op (the plan's op structure: hierarchy/groups.py; an op inside a layer loop counts once per iteration):

  compulsory = the constants it reads (weights as stored: AF8 1 byte, a sparse weight's non-zeros only; biases;
               the embedding rows a gather reads)
             + each activation larger than the SRAM written once by its producer and read once (by its first reader)
               - tensors internal to an op (a row chain's intermediates, a dense's pre-activation, the FFN's
               [seq, intermediate] tensor) never need to exist whole, so they count nothing
  io         = for a matrix product M x K x N (a dense, each matmul of the FFN, QK^T and PV per head): the I/O lower
               bound of Smith, Lowery, Langou, van de Geijn ("A Tight I/O Lower Bound for Matrix Multiplication",
               2019): 2 M N K / sqrt(S_e) - 2 S_e elements, S_e = S / e elements of e bytes, e the narrowest operand
               element (1 byte for AF8 operands, 4 for fp32)
  bound(op)  = max(compulsory, io)

minus, per layer loop, (iterations - 1) x min(S, the loop's constant bytes): at most S bytes of the shared weights
could stay on chip from one iteration to the next. Assumptions (where the bound is not universal): the io term
treats each matrix product as one op whose operands start and whose result ends off chip (a schedule fusing two
products through a tensor larger than the SRAM is not covered); everything else holds for any schedule of the ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.compiler.hierarchy.groups import AttentionGeo, DenseGeo, find_groups
from edgebert.compiler.hierarchy.optrace import OpTrace


@dataclass
class TrafficBound:
    """The bound in bytes, and its terms per op (name -> (compulsory, io, iterations))."""

    sram_bytes: int
    bytes: int
    per_op: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    reuse_allowance: int = 0


def smith_io(m: int, k: int, n: int, sram_bytes: int, itemsize: int) -> int:
    """Smith et al. 2019: at least 2 M N K / sqrt(S) - 2 S elements move for C = A B with S elements of fast memory."""
    s_el = max(sram_bytes // itemsize, 1)
    return max(0, int((2 * m * n * k / math.sqrt(s_el) - 2 * s_el) * itemsize))


def _weight_bytes(geo: DenseGeo) -> int:
    if geo.sparse:
        return int(np.count_nonzero(geo.weight)) * geo.w_item
    return geo.weight.size * geo.w_item


def _const_bytes(e: Any) -> int:
    """Constant bytes an event reads besides a dense's weight (biases, gamma/beta, embedding rows, masks)."""
    total = 0
    for i, a in enumerate(e.args):
        arr = getattr(a, "array", None)
        if arr is None or arr.size <= 1:
            continue
        if e.kind == "edgebert.embedding":
            if i == 1:  # the table: only the gathered rows
                rows = int(np.prod(e.args[0].view.shape)) if hasattr(e.args[0], "view") else 1
                total += rows * int(np.prod(arr.shape[1:])) * 4
            continue
        if e.kind in ("edgebert.dense", "edgebert.pooler", "relax.matmul") and i == 1 and arr.ndim == 2:
            continue
        total += arr.size * 4
    return total


def traffic_bound(trace: OpTrace, loops: list[Any], sram_bytes: int) -> TrafficBound:
    """The bound for `trace` (and the loops of its traced program) with `sram_bytes` of SRAM (module docstring)."""
    groups = find_groups(trace)
    starts = [e.start for e in trace.events]
    trips = [1] * len(trace.events)
    loop_of = [-1] * len(trace.events)
    for li, loop in enumerate(loops):
        for i, s in enumerate(starts):
            if loop.start <= s < loop.end:
                trips[i] *= loop.trips
                loop_of[i] = li
    internal = {v for g in groups for v in g.internal}
    big = {v.id for v in trace.values if v.nbytes > sram_bytes and v.id not in internal}
    first_reader: dict[int, int] = {}
    for v in trace.values:
        if v.id in big and v.consumers:
            first_reader[v.id] = v.consumers[0]
    out = TrafficBound(sram_bytes, 0)
    loop_consts: dict[int, int] = {}
    for g in groups:
        events = [trace.events[i] for i in g.events]
        n = trips[g.first]
        consts = sum(_const_bytes(e) for e in events)
        io = 0
        geos = [g.geo] if g.kind == "dense" else list(g.geo) if g.kind == "ffn" else []
        for d in geos:
            consts += _weight_bytes(d)
            item = min(1 if d.a_exp is not None else 4, d.w_item)
            io += smith_io(d.m, d.k, d.n, sram_bytes, item)
        if g.kind == "attention" and isinstance(g.geo, AttentionGeo):
            a = g.geo
            item = 1 if a.af8 else 4
            io += a.heads * (smith_io(a.seq, a.head_dim, a.seq, sram_bytes, item) +
                             smith_io(a.seq, a.seq, a.head_dim, sram_bytes, item))
        acts = sum(trace.values[v].nbytes for v in g.outputs if v in big)
        acts += sum(trace.values[v].nbytes for v in g.inputs if first_reader.get(v) in g.events)
        compulsory = consts + acts
        out.per_op[g.name] = (compulsory, io, n)
        out.bytes += max(compulsory, io) * n
        if loop_of[g.first] >= 0:
            loop_consts[loop_of[g.first]] = loop_consts.get(loop_of[g.first], 0) + consts
    # the final outputs are written and the inputs read once, whatever their size
    for e in trace.events:
        if e.kind == "output":
            out.bytes += sum(trace.values[r].nbytes for r in e.reads if r >= 0 and r not in big)
    for li, total in loop_consts.items():
        allowance = (loops[li].trips - 1) * min(sram_bytes, total)
        out.reuse_allowance += allowance
        out.bytes -= allowance
    return out
