"""Per-layer constants of a looped body as one strided table: a body lowered once per layer (trial lowerings), the
instruction streams checked equal up to the constants they read, those constants laid out as L blocks of S bytes
(block k = layer k's), and the first layer's code re-addressed at R[base] + offset with base = r1 * S.

Used by layer loops whose layers have their own weights (compiler/lower/loops.py: BERT's 12 layers) and by the looped
exit heads for their head weights (compiler/lower/exit_loop.py).
"""

from __future__ import annotations

from typing import Any

from edgebert.compiler.lower.core import Lowerer
from edgebert.compiler.tile_ir import Buffer, Ref, TileInst, TileProgram


class TableUnfit(Exception):
    """A copy's code differs from the first copy's by more than the constants it reads."""


def match_copy(ref: list[TileInst], got: list[TileInst], new1: set[int], newk: set[int],
               slots: dict[int, list[Buffer | None]], k: int, count: int,
               names: tuple[str, str] = ("copy", "copy")) -> None:
    """Copy k's code must be copy 0's up to the constants it reads (same sizes); records them in `slots`
    (copy 0's constant buffer id -> the buffer each copy reads in its place). `names`: what errors call copy k and
    copy 0 (e.g. "exit head", "head")."""
    this, first = names
    if len(ref) != len(got):
        raise TableUnfit(f"{this} {k + 1} lowers to {len(got)} instructions, {first} 1 to {len(ref)}")
    amap: dict[int, Buffer] = {}

    def same(b1: Buffer, bk: Buffer) -> bool:
        if b1.kind == "const":
            if bk.kind != "const" or bk.nbytes != b1.nbytes or bk.data is None or b1.data is None:
                return False
            slot = slots.setdefault(id(b1), [b1] + [None] * (count - 1))
            if slot[k] is None:
                slot[k] = bk
            return slot[k] is bk
        if id(b1) in new1:
            return id(bk) in newk and amap.setdefault(id(b1), bk) is bk
        return b1 is bk

    for i1, ik in zip(ref, got, strict=True):
        ok = i1.mnemonic == ik.mnemonic and i1.fields == ik.fields and i1.target == ik.target and \
            i1.addrs.keys() == ik.addrs.keys() and len(i1.refs) == len(ik.refs)
        ok = ok and all(i1.addrs[n][1] == ik.addrs[n][1] and same(i1.addrs[n][0], ik.addrs[n][0]) for n in i1.addrs)
        ok = ok and all((r1.offset, r1.extent, r1.write) == (rk.offset, rk.extent, rk.write) and
                        same(r1.buffer, rk.buffer) for r1, rk in zip(i1.refs, ik.refs, strict=True))
        if not ok:
            raise TableUnfit(f"{this} {k + 1}'s code differs from {first} 1's ({i1.mnemonic} vs {ik.mnemonic})")


def stack_table(prog: TileProgram, low: Lowerer, slots: dict[int, list[Buffer | None]], code: range,
                size_inst: TileInst, base_reg: int, name: str, new1: set[int], count: int) -> int:
    """Lay the constants that differ between copies out as `count` blocks of S bytes in one table; re-address copy 0's
    code (`code`: instruction indices) at R[base_reg] + offset; `size_inst` (the `li` of S) gets S. Returns S."""
    align = max(4, low.hw.memory.envm.align_bytes)
    varying = {key: bufs for key, bufs in slots.items() if any(b is not bufs[0] for b in bufs)}
    if not varying:
        return 0
    offset: dict[int, int] = {}
    size = 0
    for key, bufs in varying.items():
        offset[key] = size
        size += -(-bufs[0].nbytes // align) * align
    data = bytearray(size * count)
    for k in range(count):
        for key, bufs in varying.items():
            at = k * size + offset[key]
            data[at: at + len(bufs[k].data)] = bufs[k].data
    space = "sram" if any(b.space == "sram" for bufs in varying.values() for b in bufs) else "envm"
    table = prog.buffer(name, size * count, "const", space, bytes(data))
    size_inst.fields["imm"] = size
    for i in code:
        inst = prog.insts[i]
        for n, (buf, off) in list(inst.addrs.items()):
            if id(buf) in offset:
                inst.addrs[n] = (table, offset[id(buf)] + off)
                inst.fields[f"{n}_base"] = base_reg
        inst.refs = [Ref(table, offset[id(r.buffer)] + r.offset, r.extent, r.write) if id(r.buffer) in offset else r
                     for r in inst.refs]
    # copy 0's own constants are now unused: drop them (and from the dedup cache, so nothing later reuses them)
    used = {id(b) for inst in prog.insts for b, _ in inst.addrs.values()}
    dead = {key for key in varying if key in new1 and key not in used}
    prog.buffers[:] = [b for b in prog.buffers if id(b) not in dead]
    low.forget_consts(dead)
    return size


def lower_copies(low: Lowerer, first: Any, others: list[Any], names: tuple[str, str] = ("copy", "copy")
                 ) -> tuple[range, set[int], dict[int, list[Buffer | None]]]:
    """Lower `first()` (emitting code), then each of `others` as a trial lowering matched against it and discarded
    (`match_copy`, which `names` the copies in its errors). Returns the first copy's instruction range, the ids of the
    buffers it made, and the constant slots."""
    prog = low.prog
    s, nb, ring0, sites0 = len(prog.insts), len(prog.buffers), low.ring.next, low.snapshot_sites()
    first()
    e1, ring1, sites1 = len(prog.insts), low.ring.next, low.snapshot_sites()
    new1 = {id(b) for b in prog.buffers[nb:]}
    slots: dict[int, list[Buffer | None]] = {}
    count = len(others) + 1
    for k, lower in enumerate(others, start=1):
        nbk, npk, fences = len(prog.buffers), len(prog.packed_weights), set(prog.fences)
        consts, mark = low.snapshot_consts(), low.trace.mark()
        low.ring.next = ring0
        low.restore_sites(sites0)  # copy k at copy 1's sites: the same plan decisions
        lower()
        try:
            match_copy(prog.insts[s:e1], prog.insts[e1:], new1, {id(b) for b in prog.buffers[nbk:]}, slots, k, count,
                       names)
        finally:
            del prog.insts[e1:]
            del prog.buffers[nbk:]
            del prog.packed_weights[npk:]
            prog.fences = fences
            low.restore_consts(consts)
            low.trace.rollback(mark)  # a trial lowering: not part of the program's op trace
    low.ring.next = ring1
    low.restore_sites(sites1)
    return range(s, e1), new1, slots
