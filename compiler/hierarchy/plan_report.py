"""`edgebertc -v`: the memory-hierarchy plan in words - which tiling each op chose and why, and per tensor where it
lives, the blocks it moves in and the bytes it moves (counted on the compiled program: DMAs x loop trips)."""

from __future__ import annotations

from typing import Any

from edgebert.compiler.hierarchy.plan import MemoryPlan
from edgebert.compiler.tile_ir import ITEMSIZE, TileProgram
from edgebert.isa.table import DTYPES


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def _trips(prog: TileProgram) -> list[int]:
    trips = [1] * len(prog.insts)
    for loop in prog.loops:
        for i in range(loop.start, min(loop.end, len(prog.insts))):
            trips[i] *= loop.trips
    return trips


def dram_traffic(prog: TileProgram) -> dict[int, dict[str, Any]]:
    """id(spill buffer) -> {"buffer", "written", "read", "blocks"} of the program's DMAs (loop trips counted)."""
    out: dict[int, dict[str, Any]] = {}
    for inst, n in zip(prog.insts, _trips(prog), strict=True):
        if inst.mnemonic not in ("ld", "st"):
            continue
        f = inst.fields
        nbytes = f["rows"] * f["cols"] * ITEMSIZE[DTYPES[f["dtype"]]] * n
        side = "src" if inst.mnemonic == "ld" else "dst"
        buf = inst.addrs[side][0]
        if buf.kind != "spill":
            continue
        rec = out.setdefault(id(buf), {"buffer": buf, "written": 0, "read": 0, "blocks": set()})
        rec["read" if inst.mnemonic == "ld" else "written"] += nbytes
        rec["blocks"].add(f"{inst.mnemonic} {f['rows']}x{f['cols']}")
    return out


def format_plan(plan: MemoryPlan, prog: TileProgram) -> list[str]:
    """The report lines (module docstring)."""
    lines = [f"memory plan: SRAM {plan.sram_bytes} B, planning budget {plan.budget} B "
             f"({plan.fraction:.0%} of it, less the staging buffers); with every tensor in SRAM: "
             f"{plan.resident_overflow or 'does not fit'}"]
    lines.append("ops (tiling chosen by isa.costs; est. = the busiest unit of its block pipeline):")
    for gp in plan.groups:
        c = gp.choice
        if c is None:
            continue
        bound = max(("pu", c.pu), ("sfu", c.sfu), ("ld", c.ld), ("st", c.st), key=lambda t: t[1])[0]
        why = f"best of {gp.considered} tilings within {gp.room} B"
        best = gp.best_anywhere
        if best is not None and best is not c and best.ws > gp.room:
            why += f" (the best with unlimited SRAM, {best.what}, needs {best.ws} B)"
        lines.append(f"  {gp.group.name:32s} {gp.kind:10s} {c.what}; est. {c.cycles:,.0f} cycles ({bound}-bound), "
                     f"{_mb(c.offchip)} off chip, {c.ws} B; {why}")
    lines.append("tensors (home; blocks moved; bytes per run of the compiled program):")
    traffic: dict[str, list[dict[str, Any]]] = {}
    for rec in dram_traffic(prog).values():
        traffic.setdefault(rec["buffer"].name.split(".dram")[0], []).append(rec)
    for v in plan.trace.values:
        home = plan.homes.get(v.id, "sram")
        shape = "x".join(str(d) for d in v.shape)
        if home == "dram":
            recs = [r for r in traffic.get(v.name, []) if r["buffer"].nbytes in (v.nbytes, v.nbytes // 4)]
            rec = recs.pop(0) if recs else None
            if rec is not None:
                traffic[v.name].remove(rec)
            moved = (f"written {_mb(rec['written'])}, read {_mb(rec['read'])}; " + ", ".join(sorted(rec["blocks"]))
                     if rec else "in DRAM")
            lines.append(f"  {v.name:24s} {v.dtype}[{shape}] {v.nbytes:>9} B  DRAM     {moved}")
        elif home == "stream":
            lines.append(f"  {v.name:24s} {v.dtype}[{shape}] {v.nbytes:>9} B  streamed (inside its op, never whole)")
        else:
            lines.append(f"  {v.name:24s} {v.dtype}[{shape}] {v.nbytes:>9} B  SRAM")
    return lines
