"""Memory planning: constants to eNVM (overflow to DRAM), I/O to DRAM, activations to SRAM by liveness."""

from __future__ import annotations

from edgebert.compiler.errors import SramOverflow
from edgebert.compiler.tile_ir import Buffer, TileProgram
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig


def _align(x: int, a: int) -> int:
    return -(-x // a) * a


def place_constants_and_io(prog: TileProgram, hw: HardwareConfig) -> None:
    """Constants fill eNVM in creation order (the shared encoder and embeddings, as EdgeBERT stores them)
    and overflow to DRAM; inputs and outputs go to DRAM after the overflow."""
    top = {"envm": 0, "dram": 0}
    for buf in prog.buffers:
        if buf.kind != "const" or buf.space == "sram":  # SRAM constants (read in place): plan_sram places them
            continue
        level = hw.memory.envm
        addr = _align(top["envm"], level.align_bytes)
        if addr + buf.nbytes <= level.size_bytes:
            buf.space, buf.address = "envm", addr
            top["envm"] = addr + buf.nbytes
            continue
        buf.space = "dram"
        buf.address = _align(top["dram"], hw.memory.dram.align_bytes)
        top["dram"] = buf.address + buf.nbytes
    for buf in prog.buffers:
        if buf.kind in ("input", "output"):
            buf.space = "dram"
            buf.address = _align(top["dram"], hw.memory.dram.align_bytes)
            top["dram"] = buf.address + buf.nbytes
    if top["dram"] > hw.memory.dram.size_bytes:
        raise CompileError(
            f"constants and I/O need {top['dram']} bytes of DRAM; the hardware has {hw.memory.dram.size_bytes}"
        )


def live_intervals(prog: TileProgram) -> dict[int, tuple[int, int]]:
    """id(buffer) -> [first, last] instruction index referencing it, stretched over loops it lives across."""
    spans: dict[int, list[int]] = {}
    for i, inst in enumerate(prog.insts):
        for ref in inst.refs:
            s = spans.setdefault(id(ref.buffer), [i, i])
            s[1] = i
    for loop in prog.loops:
        for s in spans.values():
            inside = s[0] < loop.end and s[1] >= loop.start
            if inside and s[0] < loop.start:  # defined before, read in the body: live in every iteration
                s[1] = max(s[1], loop.end)
            if inside and s[1] >= loop.end:
                s[0] = min(s[0], loop.start)
    return {k: (v[0], v[1]) for k, v in spans.items()}


def trim_staging(prog: TileProgram) -> None:
    """Shrink every weight staging buffer to the bytes its tiles actually touch: the buffers are sized as a fraction of
    SRAM before lowering (an upper bound on a tile), and a small model's tiles use a sliver of that."""
    used: dict[int, int] = {}
    for inst in prog.insts:
        for ref in inst.refs:
            if ref.buffer.kind == "stage":
                used[id(ref.buffer)] = max(used.get(id(ref.buffer), 0), ref.offset + ref.extent)
    for buf in prog.buffers:
        if buf.kind == "stage":
            buf.nbytes = min(buf.nbytes, max(used.get(id(buf), 0), 1))


def plan_sram(prog: TileProgram, hw: HardwareConfig) -> int:
    """Give every SRAM buffer an address; buffers with disjoint live intervals share memory. Staging buffers are
    first trimmed to what their tiles use (trim_staging).

    Returns the peak SRAM use in bytes; raises SramOverflow naming the buffer that does not fit.
    """
    trim_staging(prog)
    sram = hw.memory.sram
    align = sram.align_bytes
    spans = live_intervals(prog)
    whole = (-1, len(prog.insts) + 1)
    bufs = [b for b in prog.buffers if b.space == "sram" and b.kind in ("act", "stage")]
    placed: list[tuple[int, int, int, int, Buffer]] = []  # (start, end, addr, size)
    peak = 0
    # whole-program buffers first, then largest first (less fragmentation than first-come order)
    order = sorted(bufs, key=lambda b: (b.kind != "stage", -b.nbytes, spans.get(id(b), whole)[0]))
    for buf in order:
        lo, hi = whole if buf.kind == "stage" else spans.get(id(buf), (0, 0))
        size = _align(buf.nbytes, align)
        busy = sorted((a, a + s) for (s0, s1, a, s, _) in placed if s0 <= hi and lo <= s1)
        addr = 0
        for a0, a1 in busy:
            if addr + size <= a0:
                break
            addr = max(addr, _align(a1, align))
        if addr + size > sram.size_bytes:
            live = sum(s for (s0, s1, a, s, _) in placed if s0 <= hi and lo <= s1)
            raise SramOverflow(buf.name, buf.what, buf.nbytes, live, sram.size_bytes)
        buf.address = addr
        placed.append((lo, hi, addr, size, buf))
        peak = max(peak, addr + size)
    # constants read in place from SRAM (a multi-task program's task weights, compiler/compression.InPlaceFormat): above
    # the activations' peak, which they do not count in; compiler/link.py moves them into the SRAM task region
    top = peak
    for buf in prog.buffers:
        if buf.kind == "const" and buf.space == "sram":
            buf.address = _align(top, 64)
            top = buf.address + buf.nbytes
    return peak
