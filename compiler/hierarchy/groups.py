"""The ops of the memory-hierarchy plan: trace events grouped into units the blocked lowering emits at once.

  dense      x @ W (+ bias row), a constant weight; optionally a unary epilogue (GELU, tanh) on each output block
  ffn        dense -> unary -> dense whose intermediate has no other reader: fused by intermediate blocks when the
             input and output stay in SRAM, else the two denses with the intermediate spilled
  rows       a chain of row-local ops (element-wise, layer norm, softmax, embedding rows) computed per row block
  attention  multi-head attention (dense or adaptive span): per head, per query block
  whole      anything else: its tensors whole in SRAM (loaded / stored when they live in DRAM)

Only the trace is read: which values each event reads and writes, their shapes, and the notes the handlers left
(weights, AF8 points)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.compiler.hierarchy.optrace import OpTrace, TEvent

#: unary ops a dense can apply to its output blocks in place (trace kind -> SFU mnemonic)
UNARY = {"edgebert.gelu_tanh": "gelu", "relax.tanh": "tanh", "relax.nn.relu": "relu", "relax.nn.gelu": "gelu_erf",
         "relax.nn.gelu_tanh": "gelu", "relax.exp": "exp"}
BINARY = {"relax.add": "vadd", "relax.subtract": "vsub", "relax.multiply": "vmul", "relax.divide": "vdiv",
          "relax.maximum": "vmax", "relax.minimum": "vmin"}
#: row-local ops: each output row depends only on the same row of its row-shaped operands
ROW_LOCAL = {*UNARY, *BINARY, "relax.nn.layer_norm", "relax.nn.softmax", "edgebert.layer_norm", "edgebert.embedding"}
DENSE = {"edgebert.dense", "edgebert.pooler", "relax.matmul"}
ATTENTION = {"edgebert.attention", "edgebert.attention_span"}
#: events that are not ops of the plan: the lowering handles them itself
SPECIAL = {"input", "output", "carry", "carry-update"}


@dataclass
class DenseGeo:
    """x [M, K] @ W [K, N] (+ bias), then `epilogue` SFU ops on each output block."""

    m: int
    k: int
    n: int
    a: int  # value id of x
    out: int  # value id of the result (after the epilogue)
    weight: np.ndarray
    fmt: Any  # compression.WeightFormat or None (dense fp32)
    a_exp: int | None  # AF8 activation point (x is quantized; the reduction is never split: exact sums)
    bias: bool
    epilogue: list[str] = field(default_factory=list)

    @property
    def w_item(self) -> int:
        return self.fmt.itemsize if self.fmt is not None else 4

    @property
    def sparse(self) -> bool:
        return bool(self.fmt is not None and self.fmt.sparse)


@dataclass
class RowsGeo:
    """A chain of row-local ops over R rows of C output columns; `row_bytes` per value the chain touches."""

    rows: int
    sliced: list[int]  # input values read per row block
    whole: list[int]  # input values read whole (broadcast rows)
    row_bytes: dict[int, int]  # value id -> bytes of one row (inputs, intermediates, outputs)
    const_row_bytes: int  # bytes of one row of the row-shaped constants (loaded per block)
    const_bytes: int  # bytes of the broadcast constants (gamma, beta, ...: loaded once)
    sfu: list[tuple[str, int, int]]  # (mnemonic, rows, cols) of the traced SFU instructions, whole tensors
    gathers: list[tuple[int, int]] = field(default_factory=list)  # (rows, bytes) of the traced embedding gathers


@dataclass
class AttentionGeo:
    """q, k, v [S, H*D] -> context [S, H*D]; `span`: the windowed form (per head (span, ramp) or None)."""

    seq: int
    heads: int
    head_dim: int
    q: int
    k: int
    v: int
    out: int
    af8: bool  # AF8 attention: q, k, v and the probabilities quantized
    span: bool
    windows: list[int | None]  # per head: largest |i - j| with weight (None: every column)
    pu: list[tuple[int, int, int, int, int]]  # traced matmuls (m, k, n, a_bytes, b_bytes)
    sfu: list[tuple[str, int, int]]


@dataclass
class WholeGeo:
    """Everything the event touches in SRAM at once (from the traced instructions)."""

    temp_bytes: int  # buffers created by the event besides its result
    insts: list[Any]  # the traced instructions


@dataclass
class Group:
    """One op of the plan: consecutive trace events lowered together."""

    index: int
    kind: str  # dense | ffn | rows | attention | whole
    events: list[int]
    inputs: list[int]  # values read from outside the group
    outputs: list[int]  # values the group writes that someone outside reads (or the last one)
    internal: list[int]  # values produced and read only inside the group (streamed, never whole)
    geo: Any
    name: str
    read_bytes: dict[int, int] = field(default_factory=dict)  # input value -> bytes of the views read (slices)

    @property
    def first(self) -> int:
        return self.events[0]

    @property
    def last(self) -> int:
        return self.events[-1]


def _rows(shape: tuple[int, ...]) -> tuple[int, int]:
    cols = shape[-1] if shape else 1
    return int(np.prod(shape[:-1])) if len(shape) > 1 else 1, cols


def _dense_geo(trace: OpTrace, e: TEvent) -> DenseGeo | None:
    """The dense view of an event: one constant-weight matmul on a row-major x, bias row in the matmul."""
    mms = e.attrs.get("matmuls") or []
    if e.kind not in DENSE or len(mms) != 1 or mms[0]["weight"] is None or mms[0]["batch"] or e.writes is None:
        return None
    w = mms[0]["weight"]
    x = e.reads[0] if e.reads else -1
    if w.ndim != 2 or x < 0 or mms[0]["b_exp"] is not None:
        return None
    xs, out = tuple(e.args[0].view.shape), trace.values[e.writes].shape
    k, n = w.shape
    if not xs or xs[-1] != k or out[-1] != n:
        return None
    m = int(np.prod(xs[:-1])) if len(xs) > 1 else 1
    if int(np.prod(out)) != m * n:
        return None
    fmt = mms[0]["fmt"]
    if fmt is not None and type(fmt).__name__ == "InPlaceFormat":
        return None  # a multi-task weight read in place: nothing to stream
    # the bias rides in the matmul (`has_bias`) exactly when the composite's bias is a constant row of N
    bias = e.kind != "relax.matmul" and any(isinstance(getattr(a, "array", None), np.ndarray) and a.array.size == n
                                            for a in e.args[2:3])
    if e.kind != "relax.matmul" and not bias:
        return None
    epilogue = ["tanh"] if e.kind == "edgebert.pooler" else []
    return DenseGeo(m, k, n, x, e.writes, w, fmt, mms[0]["a_exp"], bias, epilogue)


def _sole_reader(trace: OpTrace, value: int | None, reader: int) -> bool:
    return value is not None and trace.values[value].consumers == [reader]


def _unary_epilogue(trace: OpTrace, e: TEvent, value: int) -> str | None:
    """The SFU op of `e` when it is a unary op on `value` alone (its other arguments constants)."""
    if e.kind not in UNARY or e.writes is None or not e.reads or e.reads[0] != value:
        return None
    if any(r >= 0 for r in e.reads[1:]):
        return None
    return UNARY[e.kind]


def _row_local(trace: OpTrace, e: TEvent) -> bool:
    """Every tensor argument is row-shaped like the result (sliced per block) or one broadcast row (read whole)."""
    if e.kind not in ROW_LOCAL or e.writes is None or e.expr is None:
        return False
    out = trace.values[e.writes].shape
    if len(out) < 2:
        return False
    if e.kind == "edgebert.embedding":
        ids = e.reads[0] if e.reads else -1
        return ids >= 0 and int(np.prod(trace.values[ids].shape)) == _rows(out)[0]
    attrs = getattr(e.expr, "attrs", None)
    if e.kind == "relax.nn.softmax" and int(attrs.axis) % len(out) != len(out) - 1:
        return False
    if e.kind in ("relax.nn.layer_norm", "edgebert.layer_norm"):
        axes = [int(a) for a in (attrs.axes if e.kind == "relax.nn.layer_norm" else e.attrs.get("axes", []))]
        if [a % len(out) for a in axes] != [len(out) - 1]:
            return False
    for a, vid in zip(e.args, e.reads, strict=False):
        shape = trace.values[vid].shape if vid >= 0 else getattr(getattr(a, "array", None), "shape", None)
        if shape is None:
            if a is None or isinstance(a, tuple):
                continue
            return False
        shape = tuple(shape)
        if shape == out or all(d == 1 for d in shape[:-1]) or len(shape) <= 1:
            continue
        return False
    return True


def _rows_geo(trace: OpTrace, events: list[TEvent]) -> RowsGeo:
    out_shape = trace.values[events[-1].writes].shape
    rows, _ = _rows(out_shape)
    produced = {e.writes for e in events}
    sliced, whole, row_bytes = [], [], {}
    const_row, const_whole = 0, 0
    for e in events:
        for a, vid in zip(e.args, e.reads, strict=False):
            if vid >= 0:
                v = trace.values[vid]
                if vid in produced:
                    continue
                r, c = _rows(v.shape)
                if e.kind == "edgebert.embedding" and vid == e.reads[0] or r == rows and r > 1:
                    if vid not in sliced:
                        sliced.append(vid)
                    row_bytes[vid] = max(1, v.nbytes // rows)
                elif vid not in whole:
                    whole.append(vid)
            elif getattr(a, "array", None) is not None:
                arr = a.array
                if e.kind == "edgebert.embedding":
                    continue  # the table: rows gathered straight from eNVM
                if tuple(arr.shape) == out_shape and rows > 1:
                    const_row += arr.size // rows * 4  # stored fp32 / int32
                else:
                    const_whole += max(arr.size * 4, 4)
        v = trace.values[e.writes]
        row_bytes[e.writes] = max(1, v.nbytes // rows)
    sfu = []
    return RowsGeo(rows, sliced, whole, row_bytes, const_row, const_whole, sfu)


def _attention_geo(trace: OpTrace, e: TEvent) -> AttentionGeo | None:
    from edgebert.compiler.lower import span as span_mod

    if e.writes is None or len(e.reads) < 3 or any(r < 0 for r in e.reads[:3]):
        return None
    shapes = [trace.values[r].shape for r in e.reads[:3]]
    if len({s for s in shapes}) != 1 or len(shapes[0]) != 3 or shapes[0][0] != 1:
        return None
    seq, hidden = shapes[0][1:]
    mask = e.args[3] if len(e.args) > 3 else None
    mshape = tuple(mask.array.shape) if hasattr(mask, "array") else (tuple(mask.shape) if mask is not None else ())
    if mask is not None and len(mshape) > 1 and any(d != 1 for d in mshape[:-1]):
        return None  # a mask per query or head: not one broadcast row
    windows: list[int | None]
    if e.kind == "edgebert.attention":
        heads, head_dim = int(e.attrs["num_heads"]), int(e.attrs["head_dim"])
        windows = [None] * heads
    else:
        smask = e.args[5].array if len(e.args) > 5 and hasattr(e.args[5], "array") else None
        if smask is None:
            return None
        heads = smask.shape[-3] if smask.ndim >= 3 else 1
        head_dim = hidden // heads
        masks = span_mod._head_masks(smask, heads, seq)
        windows = []
        for h in range(heads):
            plan = span_mod.infer_span(masks[h])
            if plan is None:
                return None  # a head not in span form (dense fallback with log masks): lowered whole
            windows.append(span_mod.window(*plan))
    if heads * head_dim != hidden:
        return None
    mms = e.attrs.get("matmuls") or []
    af8 = bool(mms) and all(m["a_exp"] is not None for m in mms)
    return AttentionGeo(seq, heads, head_dim, e.reads[0], e.reads[1], e.reads[2], e.writes, af8,
                        e.kind == "edgebert.attention_span", windows, [], [])


def _io(trace: OpTrace, events: list[int]) -> tuple[list[int], list[int], list[int]]:
    """(inputs, outputs, internal) values of consecutive events."""
    inside = set(events)
    produced = [trace.events[i].writes for i in events if trace.events[i].writes is not None]
    inputs = []
    for i in events:
        for r in trace.events[i].reads:
            if r >= 0 and r not in produced and r not in inputs:
                inputs.append(r)
    outputs, internal = [], []
    for v in produced:
        readers = trace.values[v].consumers
        if any(c not in inside for c in readers) or not readers:
            outputs.append(v)
        else:
            internal.append(v)
    if not outputs and produced:
        outputs.append(produced[-1])
        internal.remove(produced[-1])
    return inputs, outputs, internal


def find_groups(trace: OpTrace) -> list[Group]:
    """Scan the trace in order and group its events (module docstring)."""
    events = trace.events
    groups: list[Group] = []
    i = 0

    def add(kind: str, idx: list[int], geo: Any) -> None:
        ins, outs, internal = _io(trace, idx)
        names = "+".join(events[j].name for j in idx)
        read: dict[int, int] = {}
        for j in idx:
            for a, vid in zip(events[j].args, events[j].reads, strict=False):
                if vid in ins:
                    lo, hi = a.view.extent_bytes()
                    read[vid] = min(trace.values[vid].nbytes, max(read.get(vid, 0), hi - lo))
        groups.append(Group(len(groups), kind, idx, ins, outs, internal, geo, names, read))

    while i < len(events):
        e = events[i]
        if e.kind in SPECIAL or e.writes is None and not any(r >= 0 for r in e.reads):
            i += 1
            continue
        if e.writes is None:  # a view of an argument (reshape, slice): nothing to lower
            i += 1
            continue
        dense = _dense_geo(trace, e)
        if dense is not None:
            idx = [i]
            nxt = events[i + 1] if i + 1 < len(events) else None
            if nxt is not None and nxt.fname == e.fname and _sole_reader(trace, e.writes, nxt.index):
                op = _unary_epilogue(trace, nxt, e.writes)
                if op is not None:
                    dense.epilogue.append(op)
                    dense.out = nxt.writes
                    idx.append(nxt.index)
            after = events[idx[-1] + 1] if idx[-1] + 1 < len(events) else None
            second = _dense_geo(trace, after) if after is not None and after.fname == e.fname else None
            if second is not None and len(idx) == 2 and second.a == dense.out and second.m == dense.m \
                    and _sole_reader(trace, dense.out, after.index) and not dense.epilogue[1:]:
                add("ffn", [*idx, after.index], (dense, second))
                i = after.index + 1
                continue
            add("dense", idx, dense)
            i = idx[-1] + 1
            continue
        if e.kind in ATTENTION:
            geo = _attention_geo(trace, e)
            if geo is not None:
                add("attention", [i], geo)
                i += 1
                continue
        if _row_local(trace, e):
            rows = _rows(trace.values[e.writes].shape)[0]
            idx = [i]
            while idx[-1] + 1 < len(events):
                nxt = events[idx[-1] + 1]
                if nxt.fname != e.fname or not _row_local(trace, nxt) or _dense_geo(trace, nxt) is not None:
                    break
                if _rows(trace.values[nxt.writes].shape)[0] != rows:
                    break
                idx.append(nxt.index)
            add("rows", idx, _rows_geo(trace, [events[j] for j in idx]))
            i = idx[-1] + 1
            continue
        add("whole", [i], WholeGeo(0, []))
        i += 1
    return groups
