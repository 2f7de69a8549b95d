"""Helpers for emulator tests: build tiny programs from `make(...)` with data preloaded in SRAM."""

from __future__ import annotations

import numpy as np

from edgebert.emulator import RunResult, run
from edgebert.isa.encoding import Inst, make
from edgebert.isa.program import Program, Segment


def program(insts: list[Inst], data: dict[int, np.ndarray] | None = None, space: str = "sram", **meta) -> Program:
    """A program of `insts` + halt with `data` ({byte address: array}) preloaded in `space`."""
    segs = [Segment(space, addr, np.ascontiguousarray(arr).tobytes()) for addr, arr in (data or {}).items()]
    return Program([*insts, make("halt")], segs, metadata=meta)


def run_sram(insts: list[Inst], data: dict[int, np.ndarray] | None = None, **kw) -> RunResult:
    """Run `insts` + halt with `data` preloaded in SRAM."""
    return run(program(insts, data), {}, **kw)


def read(result: RunResult, addr: int, shape: tuple[int, ...], dtype=np.float32, space: str = "sram") -> np.ndarray:
    """A copy of an array stored packed at byte `addr` of `space` after the run."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return result.memory(space)[addr : addr + nbytes].view(dtype).reshape(shape).copy()


def strided(arr: np.ndarray, stride: int) -> np.ndarray:
    """`arr` (rows x cols) laid out with a row pitch of `stride` elements (padding is NaN / 0xFF)."""
    rows, cols = arr.shape
    fill = np.nan if arr.dtype.kind == "f" else np.iinfo(arr.dtype).max
    out = np.full((rows, stride), fill, dtype=arr.dtype)
    out[:, :cols] = arr
    return out
