"""The compile errors the compiler itself reacts to (retries, fallbacks), each carrying the facts it decides on."""

from __future__ import annotations

from edgebert.isa.errors import CompileError


class SramOverflow(CompileError):
    """A tensor does not fit in SRAM next to what is live with it (the pipeline retries with smaller staging
    buffers, the multi-task linker with a reserved task region)."""

    def __init__(self, tensor: str, what: str, nbytes: int, live: int, size: int) -> None:
        super().__init__(
            f"SRAM overflow: tensor '{tensor}' ({what + ', ' if what else ''}{nbytes} bytes) does not fit: {live} bytes "
            f"are live at that point and memory.sram.size_bytes is {size}"
        )
        self.tensor, self.what, self.nbytes, self.live, self.size = tensor, what, nbytes, live, size


class StagingTooSmall(CompileError):
    """A weight staging buffer cannot hold one row of a weight tile (the pipeline tries the other staging sizes)."""

    def __init__(self, budget: int, itemsize: int) -> None:
        super().__init__(f"weight staging buffer of {budget} bytes cannot hold one {itemsize}-byte element row")
        self.budget, self.itemsize = budget, itemsize


class ExitLoopUnfit(CompileError):
    """The layers and exit heads cannot share one loop body (the lowering falls back to unrolled early exit)."""


class TaskRegionError(CompileError):
    """The SRAM task region does not fit above the activations; `reserve` = the SRAM bytes it needs."""

    def __init__(self, reserve: int, message: str) -> None:
        super().__init__(message)
        self.reserve = reserve


class SramTooSmall(SramOverflow):
    """Even the memory-hierarchy plan cannot fit: one block of `op`'s working set (plus what must stay resident around
    it) needs `need` bytes; `suggest` is an SRAM size the plan fits in."""

    def __init__(self, op: str, block: str, need: int, size: int, suggest: int, tried: int = 0) -> None:
        works = (f"an SRAM of {suggest} bytes compiles (memory.sram.size_bytes = {suggest})" if suggest else
                 f"no SRAM up to {tried} bytes compiles either" if tried else
                 "no SRAM up to 2.5x this size compiles either")
        CompileError.__init__(
            self,
            f"SRAM too small: op '{op}' needs {need} bytes for its smallest block ({block}); memory.sram.size_bytes "
            f"is {size}. Below that no tiling fits; {works}")
        self.tensor, self.what, self.nbytes, self.live, self.size = op, block, need, 0, size
        self.op, self.block, self.need, self.suggest, self.tried = op, block, need, suggest, tried
