"""Scheduling: hoist loads so they overlap compute (double buffering), then insert dependency tokens."""

from __future__ import annotations

from edgebert.compiler.tile_ir import TileInst, TileProgram
from edgebert.isa.table import UNITS

HOIST_WINDOW = 24  # how far (instructions) a load may move up


def _ranges(inst: TileInst) -> list[tuple[str, int, int, bool]]:
    out = []
    for r in inst.refs:
        start = r.buffer.address + r.offset
        out.append((r.buffer.space, start, start + max(r.extent, 1), r.write))
    return out


def conflicts(a: list, b: list) -> bool:
    """True when two instructions' accesses overlap in memory and at least one of them writes."""
    for sa, lo_a, hi_a, wa in a:
        for sb, lo_b, hi_b, wb in b:
            if (wa or wb) and sa == sb and lo_a < hi_b and lo_b < hi_a:
                return True
    return False


def hoist_loads(prog: TileProgram) -> None:
    """Move each `ld` up past independent compute so a weight tile loads while the previous one is used.

    Never crosses a fence (a label's first instruction, a control instruction) or another load, so loads
    keep their order and loop bodies keep their instructions; it moves only past instructions it does not
    conflict with, so the program computes the same results. Fenced instructions keep their index.
    """
    insts = prog.insts
    fences = prog.fences
    ranges = [_ranges(i) for i in insts]
    order = list(range(len(insts)))
    for pos in range(len(order)):
        i = order[pos]
        if insts[i].mnemonic != "ld" or i in fences:
            continue
        p = pos
        while p > 0 and pos - p < HOIST_WINDOW:
            j = order[p - 1]
            if j in fences or insts[j].unit in ("ld", "ctl") or conflicts(ranges[i], ranges[j]):
                break
            p -= 1
        if p < pos:
            order.insert(p, order.pop(pos))
    prog.insts = [insts[k] for k in order]


#: bytes per bucket of the SRAM address index of insert_tokens
SRAM_BUCKET = 4096


def insert_tokens(prog: TileProgram) -> int:
    """Set wait/signal bits so every cross-unit conflict is ordered; returns the number of token pairs.

    Regions between `barrier`s are independent (the barrier drains all units); within a region the k-th
    push on queue V->U pairs with the k-th pop, so pushes and pops balance per region (and per loop
    iteration, whose body is one region) and every push precedes its pop in program order.

    For instruction i on unit U and each other unit V, the latest earlier instruction j of V in the region that
    conflicts with i (and is not already covered) signals U. When i or every instruction of V so far touches only
    SRAM, a conflict needs an SRAM overlap: the candidates come from an index of V's SRAM accesses by 4 KiB bucket
    (a blocked program's SFU ops would otherwise scan thousands of unrelated loads); else V's history is scanned.
    """
    insts = prog.insts
    nunits = len(UNITS)
    pairs = 0
    ranges = [_ranges(i) for i in insts]
    sram_keys = [[(r, b) for r in rs if r[0] == "sram" for b in range(r[1] // SRAM_BUCKET,
                                                                     (max(r[2], r[1] + 1) - 1) // SRAM_BUCKET + 1)]
                 for rs in ranges]
    only_sram = [all(r[0] == "sram" for r in rs) for rs in ranges]
    for inst in insts:
        inst.fields["wait"] = 0
        inst.fields["signal"] = 0

    def fresh() -> tuple[list, list, list, list]:
        return ([[] for _ in range(nunits)], [[-1] * nunits for _ in range(nunits)], [{} for _ in range(nunits)],
                [False] * nunits)

    by_unit, covered, index, offchip = fresh()
    for i, inst in enumerate(insts):
        u = UNITS.index(inst.unit)
        if inst.mnemonic in ("barrier", "halt"):
            by_unit, covered, index, offchip = fresh()
            continue
        if inst.unit == "ctl":
            continue
        for v in range(nunits):
            if v == u or not by_unit[v]:
                continue
            floor = covered[u][v]
            best = -1
            if only_sram[i] or not offchip[v]:
                for _, bucket in sram_keys[i]:
                    for j in reversed(index[v].get(bucket, ())):
                        if j <= max(floor, best):
                            break
                        if conflicts(ranges[i], ranges[j]):
                            best = j
                            break
            else:
                for j in reversed(by_unit[v]):
                    if j <= floor:
                        break
                    if conflicts(ranges[i], ranges[j]):
                        best = j
                        break
            if best >= 0:
                insts[best].fields["signal"] |= 1 << u
                inst.fields["wait"] |= 1 << v
                covered[u][v] = best
                pairs += 1
        by_unit[u].append(i)
        offchip[u] = offchip[u] or not only_sram[i]
        for _, bucket in sram_keys[i]:
            lst = index[u].setdefault(bucket, [])
            if not lst or lst[-1] != i:
                lst.append(i)
    return pairs
