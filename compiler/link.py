"""Linking task programs into one multi-task Program: shared code, shared weights once, per-task weight blocks.

Layout (docs/multitask.md):
  eNVM  [shared constants, deduplicated by content][task store: one block per task, identical layout]
  SRAM  [activations ... peak][task region: the selected task's block][loaded-task word]   (placement "sram")
  DRAM  [shared/task overflow][I/O][task-select word]
Code: an entry block (per task: threshold -> f7, task base -> r14, copy the block into the task region unless
it is already there), then the tasks' common code once; every task-weight operand is R[r14] + offset. With the SRAM
placement the tasks are compiled with their weights read in place (compiler/compression.InPlaceFormat: matmul b and bias
operands in the region, no staging `ld`); with the eNVM placement they are compiled staged (`ld` from the store).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from edgebert.compiler.emit import emit_program, symbol_name
from edgebert.compiler.errors import TaskRegionError
from edgebert.compiler.memory_plan import place_spills, task_region
from edgebert.compiler.tile_ir import Buffer, Ref, TileProgram
from edgebert.isa.abi import (
    EXIT_WORD,
    F_THRESHOLD,
    R_LOADED,
    R_SELECTED,
    R_SELECTED_PLUS_1,
    R_TASK,
    R_TASK_TMP,
    R_ZERO,
    TASK_BODY_LABEL,
)
from edgebert.isa.bits import f32_bits
from edgebert.isa.encoding import Inst, encode, make
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program, Segment, Symbol
from edgebert.isa.table import SPACES

LD_COLS = 64  # the block copy: u8 rows of 64 bytes


@dataclass
class LinkResult:
    """The linked program and the byte accounting the tests and the bench pin."""

    program: Program
    task_results: list[Any]
    shared_bytes: dict[str, int]  # level -> bytes of shared constants
    task_bytes: dict[str, int]  # task -> bytes of its block
    placement: str
    sram_peak_bytes: int
    notes: list[str] = field(default_factory=list)

    @property
    def token_pairs(self) -> int:
        return self.task_results[0].token_pairs

    @property
    def weight_bytes(self) -> int:
        return sum(len(s.data) for s in self.program.segments)


def _align(x: int, a: int) -> int:
    return -(-x // a) * a


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _consts(prog: TileProgram) -> list[Buffer]:
    return [b for b in prog.buffers if b.kind == "const" and b.data is not None]


def split_constants(progs: list[TileProgram], names: list[str]) -> tuple[set[bytes], list[list[Buffer]]]:
    """Match the tasks' constant operands by position (instruction k, field f: the code is the same in every task).

    A position where every task reads the same bytes is shared (stored once); any other is a task entry, one per
    distinct tuple of the tasks' buffers, so each task's block has the same layout even when equal tensors inside
    one task were stored once (a buffer used both ways, or by several entries, is cloned). A constant read in place
    from SRAM (a task weight, compiler/compression.InPlaceFormat) is always the task's. Returns the shared digests and,
    per task, its entry buffers in entry order."""
    uses = [[(k, f, buf) for k, inst in enumerate(p.insts) for f, (buf, _off) in inst.addrs.items()
             if buf.kind == "const" and buf.data is not None] for p in progs]
    for name, u in zip(names[1:], uses[1:], strict=True):
        if [(k, f) for k, f, _ in u] != [(k, f) for k, f, _ in uses[0]]:
            raise CompileError(f"task '{name}' reads constants at other instructions than task '{names[0]}': the "
                               "shared code needs one layout")
    shared: set[bytes] = set()
    entry_of: dict[tuple[int, ...], int] = {}
    kinds = []  # per position: ("shared", digest) or ("entry", index)
    for j in range(len(uses[0])):
        bufs = [u[j][2] for u in uses]
        digests = {_digest(b.data) for b in bufs}  # type: ignore[arg-type]
        if len(digests) == 1 and all(b.space != "sram" for b in bufs):
            shared |= digests
            kinds.append(("shared", digests.pop()))
        else:
            kinds.append(("entry", entry_of.setdefault(tuple(id(b) for b in bufs), len(entry_of))))
    own: list[list[Buffer]] = []
    for prog, u in zip(progs, uses, strict=True):
        first_kind: dict[int, tuple] = {}
        clones: dict[tuple[int, tuple], Buffer] = {}
        entries: dict[int, Buffer] = {}
        for (k, f, buf), kind in zip(u, kinds, strict=True):
            if first_kind.setdefault(id(buf), kind) != kind:  # this buffer also serves another role: a copy of it
                if (id(buf), kind) not in clones:
                    clones[(id(buf), kind)] = prog.buffer(f"{buf.name}.{len(clones) + 1}", buf.nbytes, "const",
                                                          buf.space, buf.data)
                clone = clones[(id(buf), kind)]
                inst = prog.insts[k]
                inst.addrs[f] = (clone, inst.addrs[f][1])
                inst.refs = [r if r.buffer is not buf else Ref(clone, r.offset, r.extent, r.write) for r in inst.refs]
                buf = clone
            if kind[0] == "entry":
                entries[kind[1]] = buf
        used = {id(b) for _, _, b in u} | {id(c) for c in clones.values()}
        prog.buffers = [b for b in prog.buffers if b.kind != "const" or b.data is None or id(b) in used]
        own.append([entries[e] for e in range(len(entry_of))])
    return shared, own


def _place_level(hw: HardwareConfig, top: dict[str, int], nbytes: int, prefer: str = "envm") -> tuple[str, int]:
    level = getattr(hw.memory, prefer)
    addr = _align(top[prefer], level.align_bytes)
    if prefer == "envm" and addr + nbytes > level.size_bytes:
        return _place_level(hw, top, nbytes, "dram")
    top[prefer] = addr + nbytes
    return prefer, addr


def link_tasks(tasks: list[Any], results: list[Any], hw: HardwareConfig, *, placement: str = "auto",
               padded_labels: int = 0) -> LinkResult:
    """Link the compiled task programs (same order as `tasks`); see the module docstring."""
    if placement not in ("auto", "sram", "envm"):
        raise CompileError(f"unknown task placement '{placement}' (auto, sram, envm)")
    progs: list[TileProgram] = [r.tile_program for r in results]
    for r in results:  # tables patched into the emitted segments after compilation (DVFS plans)
        patched = {(s.name, s.address): s.data for s in r.program.segments}
        for b in _consts(r.tile_program):
            b.data = patched.get((b.name, b.address), b.data)
    names = [t.name for t in tasks]
    shared, own = split_constants(progs, names)
    sizes = [[b.nbytes for b in bufs] for bufs in own]
    for name, s in zip(names[1:], sizes[1:], strict=True):
        if s != sizes[0]:
            k = next(i for i, (a, b) in enumerate(zip(s, sizes[0], strict=True)) if a != b)
            raise CompileError(
                f"task '{name}' has task-specific weights of other shapes than task '{names[0]}' (entry {k}: "
                f"'{own[names.index(name)][k].name}' {s[k]} bytes vs "
                f"'{own[0][k].name}' {sizes[0][k]} bytes): the shared code needs one layout"
            )
    # task block layout (identical for every task)
    offsets, off = [], 0
    for n in sizes[0]:
        off = _align(off, 64)
        offsets.append(off)
        off += n
    block = _align(max(off, 1), 64)

    top = {"envm": 0, "dram": 0}
    shared_at: dict[bytes, tuple[str, int, Buffer]] = {}
    shared_bytes = {"envm": 0, "dram": 0}
    for prog in progs:
        for b in _consts(prog):
            h = _digest(b.data)  # type: ignore[arg-type]
            if h in shared and h not in shared_at:
                space, addr = _place_level(hw, top, b.nbytes)
                shared_at[h] = (space, addr, b)
                shared_bytes[space] += b.nbytes
    # task store: every block in one level (the code reads them through one space field)
    store_level = "envm"
    envm = hw.memory.envm
    if _align(top["envm"], 64) + block * len(tasks) > envm.size_bytes:
        store_level = "dram"
    store_base = []
    for _ in tasks:
        _, addr = _place_level(hw, top, block, store_level)
        top[store_level] = _align(top[store_level], 64)
        store_base.append(addr)

    peak = max(r.sram_peak_bytes for r in results)
    sram = hw.memory.sram
    region, loaded_word, used = task_region([b for p in progs for b in p.buffers], hw, block, peak)
    notes = []
    fits = region >= used
    in_place = any(b.space == "sram" for b in own[0])  # compiled for the SRAM placement (matmuls read the region)
    if placement == "envm" and in_place:
        raise CompileError("internal: task programs compiled to read their weights in place from SRAM cannot be "
                           "linked with the eNVM placement (compile them with the weights staged)")
    if (placement == "sram" or in_place) and not fits:
        where = (f"the top of an '{hw.pu.operand_buffer}' buffer, above its tensors ({used} bytes into SRAM)"
                 if sram.buffers else f"the top of SRAM, above the activations' peak ({peak} bytes)")
        raise TaskRegionError(sram.size_bytes - region,
            f"task-specific weights do not fit in SRAM: a task block ({block} bytes: adapters and heads of one "
            f"task) + 64 bytes do not fit at {where} (memory.sram.size_bytes {sram.size_bytes})"
        )
    mode = "sram" if placement == "sram" or (placement == "auto" and fits) else "envm"
    task_space = "sram" if mode == "sram" else store_level

    # I/O after the constants in DRAM (identical for every task), then the task-select word
    io_top = dict(top)
    for prog in progs:
        t = dict(io_top)
        for b in prog.buffers:
            if b.kind in ("input", "output"):
                b.space = "dram"
                b.address = _align(t["dram"], hw.memory.dram.align_bytes)
                t["dram"] = b.address + b.nbytes
        top["dram"] = max(top["dram"], t["dram"])
    select_word = _align(top["dram"], hw.memory.dram.align_bytes)
    top["dram"] = select_word + 4
    for prog in progs:  # tensors the memory-hierarchy plan spilled: their DRAM homes above everything linked
        place_spills(prog, hw, base=top["dram"])
    top["dram"] = max([top["dram"]] + [b.address + b.nbytes for prog in progs for b in prog.buffers
                                       if b.kind == "spill"])
    if top["dram"] > hw.memory.dram.size_bytes:
        raise CompileError(f"shared weights, task store and I/O need {top['dram']} bytes of DRAM; the hardware "
                           f"has {hw.memory.dram.size_bytes}")

    codes = []
    for prog, bufs in zip(progs, own, strict=True):
        for b in _consts(prog):
            h = _digest(b.data)  # type: ignore[arg-type]
            if h in shared_at:
                b.space, b.address = shared_at[h][0], shared_at[h][1]
        for b, o in zip(bufs, offsets, strict=True):
            b.space, b.address = task_space, o
        task_ids = {id(b) for b in bufs}
        for inst in prog.insts:
            for fname, (buf, off) in list(inst.addrs.items()):
                if id(buf) not in task_ids:
                    continue
                base = inst.fields.get(f"{fname}_base", R_ZERO)
                if base in (R_ZERO, R_TASK):
                    inst.fields[f"{fname}_base"] = R_TASK
                elif mode == "sram":  # a register-indexed table (the looped exit heads' r7): the region is fixed
                    inst.addrs[fname] = (buf, off + region)
                else:
                    raise CompileError(f"{inst.mnemonic}: task weight '{buf.name}' is indexed by r{base} (a per-layer "
                                       "table); reading it in place from the task store needs the SRAM placement")
        program = emit_program(prog, hw, {})
        codes.append([_threshold_from_register(i) for i in program.code])
    ref = [encode(i) for i in codes[0]]
    for name, code in zip(names[1:], codes[1:], strict=True):
        if len(code) != len(ref):
            raise CompileError(f"task '{name}' compiles to {len(code)} instructions, task '{names[0]}' to {len(ref)}")
        for k, inst in enumerate(code):
            if encode(inst) != ref[k]:
                raise CompileError(f"task '{name}' differs from task '{names[0]}' outside the task region at "
                                   f"instruction {k} ({inst.mnemonic} vs {codes[0][k].mnemonic})")

    entry, entry_labels = _entry_block(tasks, store_base, store_level, block, mode, region, loaded_word, select_word)
    body = [_shift_target(i, len(entry)) for i in codes[0]]
    code = entry + body
    first = results[0].program
    symbols = [Symbol(n, "code", v) for n, v in entry_labels.items()]
    symbols += [Symbol(s.name, "code", s.value + len(entry)) for s in first.symbols if s.space == "code"]
    segments = []
    for _h, (space, addr, b) in sorted(shared_at.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        segments.append(Segment(space, addr, b.data, f"shared.{b.name}"))  # type: ignore[arg-type]
        symbols.append(Symbol(symbol_name(f"shared.{b.name}"), space, addr, b.nbytes))
    for t, base, bufs in zip(tasks, store_base, own, strict=True):
        symbols.append(Symbol(symbol_name(f"task.{t.name}.block"), store_level, base, block))
        for b, o in zip(bufs, offsets, strict=True):
            segments.append(Segment(store_level, base + o, b.data, f"task.{t.name}:{b.name}"))  # type: ignore[arg-type]
            symbols.append(Symbol(symbol_name(f"task.{t.name}:{b.name}"), store_level, base + o, b.nbytes))
    if mode == "sram":
        symbols.append(Symbol("task_region", "sram", region, block))
        symbols.append(Symbol("task_loaded", "sram", loaded_word, 4))
    symbols.append(Symbol("task_select", "dram", select_word, 4))
    meta = {k: v for k, v in first.metadata.items() if k not in ("source_model_sha256",)}
    io = emit_program(progs[0], hw, {}).metadata  # the re-placed I/O
    meta["inputs"], meta["outputs"] = io["inputs"], io["outputs"]
    for entry_ in io["inputs"] + io["outputs"]:
        symbols.append(Symbol(symbol_name(f"io.{entry_['name']}"), "dram", entry_["address"]))
    exit_buf = next((b for b in progs[0].buffers if b.name == EXIT_WORD and b.kind == "output"), None)
    if exit_buf is not None:
        meta["exit_layer"] = {"space": exit_buf.space, "address": exit_buf.address}
    for key in ("dvfs_table", "dvfs_plan"):  # per task in multitask.tasks
        meta.pop(key, None)
    meta["sram_peak_bytes"] = peak
    meta["hw_name"], meta["hw_fingerprint"], meta["hw_config"] = hw.name, hw.fingerprint.hex(), hw.toml_text()
    meta["tasks"] = names
    meta["thresholds"] = [t.threshold for t in tasks]
    meta.pop("early_exit", None) if not any(r.program.metadata.get("early_exit") for r in results) else None
    if "early_exit" in meta:
        meta["early_exit"] = {**meta["early_exit"], "threshold": None, "threshold_register": f"f{F_THRESHOLD}"}
    meta["multitask"] = {
        "version": 1,
        "tasks": [{"name": t.name, "index": k, "num_labels": t.num_labels, "label_names": t.label_names,
                   "threshold": t.threshold, "source_model_sha256": r.program.metadata.get("source_model_sha256"),
                   "block": {"space": store_level, "address": base, "bytes": block},
                   "weight_bytes": sum(len(b.data) for b in bufs),  # type: ignore[arg-type]
                   "dvfs_table": r.program.metadata.get("dvfs_table")}
                  for k, (t, r, base, bufs) in enumerate(zip(tasks, results, store_base, own, strict=True))],
        "padded_labels": padded_labels,
        "placement": mode,
        "task_region": ({"space": "sram", "address": region, "bytes": block} if mode == "sram" else None),
        "loaded_word": ({"space": "sram", "address": loaded_word} if mode == "sram" else None),
        "task_select": {"space": "dram", "address": select_word},
        "task_register": f"r{R_TASK}",
        "shared_bytes": shared_bytes,
        "task_layout": [{"offset": o, "bytes": n, "name": b.name} for o, n, b in zip(offsets, sizes[0], own[0],
                                                                                     strict=True)],
        "entry_instructions": len(entry),
        "notes": notes,
    }
    program = Program(code=code, segments=sorted(segments, key=lambda s: (s.space, s.address)), symbols=symbols,
                      metadata=meta, hw_fingerprint=hw.fingerprint)
    return LinkResult(program, results, shared_bytes, {t.name: sum(len(b.data) for b in bufs)  # type: ignore[arg-type]
                                                         for t, bufs in zip(tasks, own, strict=True)},
                      mode, peak, notes)


def _threshold_from_register(inst: Inst) -> Inst:
    """bexit fs, <immediate>, T -> bexitr fs, f7, T: each task's threshold comes from the entry block."""
    if inst.mnemonic != "bexit":
        return inst
    return make("bexitr", fs=inst.values["fs"], ft=F_THRESHOLD, target=inst.values["target"],
                cmp=inst.values.get("cmp", 0), wait=inst.values.get("wait", 0), signal=inst.values.get("signal", 0))


def _shift_target(inst: Inst, by: int) -> Inst:
    if "target" not in inst.values or inst.mnemonic not in ("beq", "bne", "blt", "bge", "jmp", "bexit", "bexitr",
                                                            "bexitp"):
        return inst
    return Inst(inst.mnemonic, {**inst.values, "target": inst.values["target"] + by})


def _entry_block(tasks: list[Any], store_base: list[int], store_level: str, block: int, mode: str, region: int,
                 loaded_word: int, select_word: int) -> tuple[list[Inst], dict[str, int]]:
    """Task dispatch: read the task-select word, then per task set f7/r14 and (SRAM) load its block."""
    dram, sram, store = SPACES.index("dram"), SPACES.index("sram"), SPACES.index(store_level)

    def task_code(k: int, t: Any) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if t.threshold is not None:
            out.append(("fli", {"fd": F_THRESHOLD, "imm": f32_bits(t.threshold)}))
        if mode == "sram":
            out.append(("li", {"rd": R_TASK, "imm": region}))
            out.append(("beq", {"rs1": R_LOADED, "rs2": R_SELECTED_PLUS_1, "target": TASK_BODY_LABEL}))
            rows_total, done = block // LD_COLS, 0
            while done < rows_total:
                rows = min(rows_total - done, 65535)
                out.append(("ld", {"dst": region + done * LD_COLS, "src_space": store, "src": store_base[k]
                                   + done * LD_COLS, "rows": rows, "cols": LD_COLS, "dtype": 3}))
                done += rows
            out.append(("sw", {"rs": R_SELECTED_PLUS_1, "dst_space": sram, "dst": loaded_word}))
        else:
            out.append(("li", {"rd": R_TASK, "imm": store_base[k]}))
        out.append(("jmp", {"target": TASK_BODY_LABEL}))
        return out

    pre: list[tuple[str, dict[str, Any]]] = [
        ("lw", {"rd": R_SELECTED, "src_space": dram, "src": select_word}),
        ("addi", {"rd": R_SELECTED_PLUS_1, "rs1": R_SELECTED, "imm": 1}),
    ]
    if mode == "sram":
        pre.append(("lw", {"rd": R_LOADED, "src_space": sram, "src": loaded_word}))
    for k, _ in enumerate(tasks):
        pre += [("li", {"rd": R_TASK_TMP, "imm": k}), ("beq", {"rs1": R_SELECTED, "rs2": R_TASK_TMP, "target": f"mt.task.{k}"})]
    pre.append(("halt", {}))  # an unknown task index stops at once
    blocks = [task_code(k, t) for k, t in enumerate(tasks)]
    labels, pc = {}, len(pre)
    for k, (t, blk) in enumerate(zip(tasks, blocks, strict=True)):
        labels[f"mt.task.{k}"] = pc
        labels[symbol_name(f"mt.task.{t.name}")] = pc
        pc += len(blk)
    labels[TASK_BODY_LABEL] = pc
    flat = pre + [x for blk in blocks for x in blk] + [("barrier", {})]
    code = []
    for mnemonic, values in flat:
        if "target" in values:
            values = {**values, "target": labels[values["target"]]}
        code.append(make(mnemonic, **values))
    return code, labels
