"""The op trace: what a lowering walk did, binding by binding (ops, the tensors they read and write, their sizes and
instruction ranges), recorded while lowering so the memory-hierarchy plan reads the walk instead of re-deriving it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgebert.compiler.tile_ir import Buffer

#: A site: one lowering of one binding (hash of its Relax var: the IR node, its function name, the n-th lowering of that var).
Site = tuple[int, str, int]


@dataclass
class TValue:
    """A tensor value of the trace: one buffer's contents from the op that wrote them to their last reader."""

    id: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # storage dtype (f32, i32, af8, u8)
    nbytes: int
    producer: int  # index of the event that wrote it
    buffer: Buffer
    consumers: list[int] = field(default_factory=list)  # events that read it (in order, repeats removed)


@dataclass
class TEvent:
    """One lowered binding (or a loop carry, an input, an output): the unit the plan groups and re-lowers."""

    index: int
    kind: str  # relax op (`relax.add`), composite (`edgebert.dense`), or view / input / output / carry / copy
    name: str  # the binding var's name (or what the event is)
    fname: str  # the function being lowered
    site: Site | None
    reads: list[int]  # value ids of the tensor arguments, in argument order (-1: not a tensor)
    args: tuple  # the lowered arguments (lower.core values): constants and views, for the plan to inspect
    writes: int | None  # value id of the tensor it produced (None: a view of an argument, a tuple, nothing)
    start: int  # instruction range it emitted (in the traced program)
    end: int
    loop_depth: int
    expr: Any = None  # the Relax call (attributes)
    var: Any = None  # the binding's Relax var
    attrs: dict[str, Any] = field(default_factory=dict)  # composite attributes; a_exp of AF8 matmul inputs, ...

    @property
    def emitted(self) -> bool:
        return self.end > self.start


class OpTrace:
    """Events in lowering order and the values they read and write (buffer identity decides which value a view
    belongs to: reshapes and slices are views of the value whose buffer they address)."""

    def __init__(self) -> None:
        self.events: list[TEvent] = []
        self.values: list[TValue] = []
        self._by_buffer: dict[int, int] = {}  # id(buffer) -> latest value written into it
        self.loops: list[Any] = []  # the traced program's LoopRanges (event i is in one when its start is inside)

    def value_of(self, view: Any) -> int | None:
        """The value a tensor view reads (None: not a traced buffer, e.g. a constant)."""
        return self._by_buffer.get(id(view.buffer))

    def mark(self) -> tuple[int, int, dict[int, int]]:
        """A point to `rollback` to (trial lowerings that are discarded)."""
        return len(self.events), len(self.values), dict(self._by_buffer)

    def rollback(self, mark: tuple[int, int, dict[int, int]]) -> None:
        ne, nv, by_buffer = mark
        del self.events[ne:]
        del self.values[nv:]
        self._by_buffer = by_buffer
        for v in self.values:
            v.consumers = [c for c in v.consumers if c < ne]

    def record(self, kind: str, name: str, fname: str, site: Site | None, args: list[Any], result: Any,
               start: int, end: int, loop_depth: int, expr: Any = None, attrs: dict[str, Any] | None = None,
               new_value: bool | None = None, var: Any = None) -> TEvent:
        """Append one event. `args` and `result` are lowered values (lower.core.Tensor / Const / tuple / None).
        The result is a new value when it lives in a buffer no argument uses, or the event emitted instructions
        (in place over a dying argument); else it is a view of an argument's value (`new_value` overrides)."""
        index = len(self.events)
        reads = []
        arg_buffers = set()
        for a in args:
            view = getattr(a, "view", None)
            vid = self.value_of(view) if view is not None else None
            reads.append(-1 if vid is None else vid)
            if view is not None:
                arg_buffers.add(id(view.buffer))
            if vid is not None and (not self.values[vid].consumers or self.values[vid].consumers[-1] != index):
                self.values[vid].consumers.append(index)
        writes = None
        view = getattr(result, "view", None)
        if view is not None:
            fresh = new_value if new_value is not None else (id(view.buffer) not in arg_buffers or end > start)
            if fresh or self.value_of(view) is None:
                writes = len(self.values)
                dtype = view.dtype
                self.values.append(TValue(writes, name, tuple(view.shape), dtype, view.buffer.nbytes, index,
                                          view.buffer))
                self._by_buffer[id(view.buffer)] = writes
        event = TEvent(index, kind, name, fname, site, reads, tuple(args), writes, start, end, loop_depth, expr,
                       var, dict(attrs or {}))
        self.events.append(event)
        return event
