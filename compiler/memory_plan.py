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


def live_act_peak(prog: TileProgram) -> int:
    """The most SRAM activation bytes live at one instruction (a lower bound on any placement's peak)."""
    spans = live_intervals(prog)
    deltas: dict[int, int] = {}
    for b in prog.buffers:
        if b.space == "sram" and b.kind == "act" and id(b) in spans:
            lo, hi = spans[id(b)]
            deltas[lo] = deltas.get(lo, 0) + b.nbytes
            deltas[hi + 1] = deltas.get(hi + 1, 0) - b.nbytes
    peak = live = 0
    for i in sorted(deltas):
        live += deltas[i]
        peak = max(peak, live)
    return peak


def _first_fit(placed: list[tuple[int, int, int, int, Buffer]], lo: int, hi: int, size: int, r_lo: int, r_hi: int,
               align: int) -> int | None:
    """The lowest address in [r_lo, r_hi) where `size` bytes are free during [lo, hi], or None."""
    busy = sorted((a, a + s) for (s0, s1, a, s, _) in placed if s0 <= hi and lo <= s1 and a < r_hi and a + s > r_lo)
    addr = r_lo
    for a0, a1 in busy:
        if addr + size <= a0:
            break
        addr = max(addr, _align(a1, align))
    return addr if addr + size <= r_hi else None


class _Roles:
    """What the instructions do with each SRAM buffer (for placement into a config's buffer set)."""

    def __init__(self, prog: TileProgram, hw: HardwareConfig) -> None:
        self.dma: set[int] = set()  # written or read by a DMA (its SRAM port sets the transfer rate)
        self.sfu_rows: dict[int, set[str]] = {}  # row operand of an SFU op -> the buffers that op reads besides its input
        self.partners: dict[int, set[int]] = {}  # matmul a <-> b
        self.operands: set[int] = set()  # read or written by the PU
        operand = hw.pu.operand_buffer
        for inst in prog.insts:
            names = {n: b for n, (b, _) in inst.addrs.items()}
            if inst.mnemonic in ("ld", "gather") and "dst" in names:
                self.dma.add(id(names["dst"]))
            elif inst.mnemonic == "st" and "src" in names:
                self.dma.add(id(names["src"]))
            elif inst.mnemonic == "matmul" and "a" in names and "b" in names:
                self.partners.setdefault(id(names["a"]), set()).add(id(names["b"]))
                self.partners.setdefault(id(names["b"]), set()).add(id(names["a"]))
                self.operands.update(id(b) for n, b in names.items() if n in ("a", "b", "dst"))
            elif inst.unit == "sfu" and inst.mnemonic in hw.sfu.ops:
                extra = {b for b in hw.sfu.ops[inst.mnemonic].reads if b != operand}
                for n, b in names.items():
                    if n not in ("src", "dst", "a", "b") and extra:
                        self.sfu_rows.setdefault(id(b), set()).update(extra)


def _region_order(buf: Buffer, regions: tuple, roles: _Roles, placed: list, lo: int, hi: int, hw: HardwareConfig,
                  bus: int) -> list[tuple[int, int, object]]:
    """The config's SRAM buffers in the order `buf` should try them: a DMA'd tensor avoids ports slower than the
    bus (they would slow every transfer), an SFU row operand (gamma, beta, the mask row) goes where that op reads
    rows from, a PU operand to the PU's operand buffers and away from its matmul partner's; then the smallest buffer
    that holds it (small tensors stay out of the large buffers the blocks need)."""
    if len(regions) == 1:
        return list(regions)
    want = roles.sfu_rows.get(id(buf)) or ({hw.pu.operand_buffer} if id(buf) in roles.operands else set())
    partners = roles.partners.get(id(buf), set())

    def key(item: tuple[int, int, object]) -> tuple:
        r_lo, r_hi, spec = item
        slow = id(buf) in roles.dma and spec.port_bytes_per_cycle < bus
        near = sum(s for (s0, s1, a, s, b) in placed if id(b) in partners and s0 <= hi and lo <= s1 and r_lo <= a < r_hi)
        return (slow, bool(want) and spec.name not in want, near, r_hi - r_lo, r_lo)

    return sorted(regions, key=key)


def plan_sram(prog: TileProgram, hw: HardwareConfig) -> int:
    """Give every SRAM buffer an address; buffers with disjoint live intervals share memory. Staging buffers are
    first trimmed to what their tiles use (trim_staging). With a buffer set (`memory.sram.buffers`) every tensor lies
    inside one buffer, placed by the roles its instructions give it (_region_order).

    Returns the peak SRAM use in bytes (with a buffer set: the sum of each buffer's high-water mark); raises
    SramOverflow naming the buffer that does not fit.
    """
    trim_staging(prog)
    sram = hw.memory.sram
    align = sram.align_bytes
    spans = live_intervals(prog)
    whole = (-1, len(prog.insts) + 1)
    regions = sram.regions("sram")
    roles = _Roles(prog, hw) if len(regions) > 1 else None
    bus = max(hw.memory.dram.bandwidth, hw.memory.envm.bandwidth)
    bufs = [b for b in prog.buffers if b.space == "sram" and b.kind in ("act", "stage")]
    placed: list[tuple[int, int, int, int, Buffer]] = []  # (start, end, addr, size)
    peak = 0
    # whole-program buffers first, then largest first (less fragmentation than first-come order)
    order = sorted(bufs, key=lambda b: (b.kind != "stage", -b.nbytes, spans.get(id(b), whole)[0]))
    for buf in order:
        lo, hi = whole if buf.kind == "stage" else spans.get(id(buf), (0, 0))
        size = _align(buf.nbytes, align)
        addr = None
        for r_lo, r_hi, _ in _region_order(buf, regions, roles, placed, lo, hi, hw, bus):
            addr = _first_fit(placed, lo, hi, size, r_lo, r_hi, align)
            if addr is not None:
                break
        if addr is None:
            live = sum(s for (s0, s1, a, s, _) in placed if s0 <= hi and lo <= s1)
            raise SramOverflow(buf.name, buf.what, buf.nbytes, live, sram.size_bytes)
        buf.address = addr
        placed.append((lo, hi, addr, size, buf))
        peak = max(peak, addr + size)
    # constants read in place from SRAM (a multi-task program's task weights, compiler/compression.InPlaceFormat): where
    # compiler/link.py puts the SRAM task region (above the activations' peak, which they do not count in; or at the
    # top of an operand buffer), so that the task program runs as compiled (its DVFS plan measures it)
    in_place = [b for b in prog.buffers if b.kind == "const" and b.space == "sram"]
    if in_place:
        block = _align(max(sum(_align(b.nbytes, 64) for b in in_place), 1), 64)
        region, _, used = task_region(prog.buffers, hw, block, peak)
        top = region if sram.buffers and region >= used else peak
        for buf in in_place:
            buf.address = _align(top, 64)
            top = buf.address + buf.nbytes
    if len(regions) > 1:  # a buffer set: the bytes in use, buffer by buffer (not the highest address)
        return sum(max([lo] + [a + n for (_, _, a, n, _) in placed if lo <= a < hi]) - lo for lo, hi, _ in regions)
    return peak


def task_region(buffers: list[Buffer], hw: HardwareConfig, block: int, peak: int) -> tuple[int, int, int]:
    """Where the SRAM task region of a multi-task program lies: (region address, loaded-task word, the highest byte
    the placed SRAM tensors in `buffers` use below it); the region fits when its address is at least that. One SRAM:
    at the top, above the activations' `peak`. A buffer set: at the top of the PU's operand buffer (the matmuls read
    the task weights in place) whose tensors leave the most room, the loaded-task word in its last 64 bytes."""
    sram = hw.memory.sram
    if not sram.buffers:
        loaded_word = max(sram.size_bytes - 64, 0) // 64 * 64
        return (loaded_word - block) // sram.align_bytes * sram.align_bytes, loaded_word, peak
    best: tuple[int, int, int] | None = None
    for lo, hi, buf in sram.regions("sram"):
        if buf.name != hw.pu.operand_buffer:
            continue
        used = max([lo] + [b.address + b.nbytes for b in buffers
                           if b.space == "sram" and b.kind in ("act", "stage") and lo <= b.address < hi])
        loaded_word = (hi - 64) // 64 * 64
        region = (loaded_word - block) // sram.align_bytes * sram.align_bytes
        if best is None or region - used > best[0] - best[2]:
            best = (region, loaded_word, used)
    if best is None:
        raise CompileError(f"the SRAM buffer set has no '{hw.pu.operand_buffer}' buffer (pu.operand_buffer)")
    return best


def place_spills(prog: TileProgram, hw: HardwareConfig, base: int | None = None) -> None:
    """DRAM homes of spilled tensors (kind "spill"), by liveness above `base` (default: above every other DRAM
    buffer); a layer loop reuses the same homes in every iteration."""
    dram = hw.memory.dram
    spills = [b for b in prog.buffers if b.kind == "spill"]
    if not spills:
        return
    if base is None:
        base = max((b.address + b.nbytes for b in prog.buffers
                    if b.space == "dram" and b.kind != "spill" and b.address is not None), default=0)
    base = _align(base, dram.align_bytes)
    spans = live_intervals(prog)
    placed: list[tuple[int, int, int, int, Buffer]] = []
    for buf in sorted(spills, key=lambda b: (-b.nbytes, spans.get(id(b), (0, 0))[0])):
        lo, hi = spans.get(id(buf), (0, 0))
        size = _align(buf.nbytes, dram.align_bytes)
        addr = _first_fit(placed, lo, hi, size, base, dram.size_bytes, dram.align_bytes)
        if addr is None:
            raise CompileError(f"spilled tensors need more than the {dram.size_bytes} bytes of DRAM")
        buf.address = addr
        placed.append((lo, hi, addr, size, buf))
