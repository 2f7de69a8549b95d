"""Emission: a scheduled, planned tile program -> an ISA `Program` with segments, symbols and metadata."""

from __future__ import annotations

import re
from typing import Any

from edgebert.compiler.tile_ir import TileProgram
from edgebert.isa.abi import R_ZERO
from edgebert.isa.encoding import Inst, make
from edgebert.isa.errors import CompileError, EdgebertError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program, Segment, Symbol
from edgebert.isa.table import BY_MNEMONIC, SPACES

COMPILER_VERSION = "edgebertc 0.1.0"


def symbol_name(text: str) -> str:
    """A name the assembler accepts ([A-Za-z_][A-Za-z0-9_.]*), derived from any tensor or label name."""
    name = re.sub(r"[^A-Za-z0-9_.]", "_", text)
    return name if re.match(r"[A-Za-z_]", name) and not re.fullmatch(r"[rf]\d+", name) else f"_{name}"


def encode_inst(inst, labels: dict[str, int]) -> Inst:
    """Resolve symbolic addresses and labels of one tile instruction into a concrete `Inst`."""
    spec = BY_MNEMONIC[inst.mnemonic]
    values = dict(inst.fields)
    for name, (buf, off) in inst.addrs.items():
        values[name] = buf.address + off
        values.setdefault(f"{name}_base", R_ZERO)  # absolute unless the lowering set a base register (abi.py)
        space_field = spec.by_name.get(f"{name}_space")
        if space_field is not None:
            values[f"{name}_space"] = SPACES.index(buf.space)
        elif buf.space != "sram":
            raise CompileError(
                f"internal: operand '{name}' of {inst.mnemonic} must be in SRAM, '{buf.name}' is in {buf.space}"
            )
    if inst.target is not None:
        values["target"] = labels[inst.target]
    try:
        return make(inst.mnemonic, **values)
    except EdgebertError as exc:
        raise CompileError(f"cannot encode {inst.mnemonic}: {exc}") from None


def emit_program(prog: TileProgram, hw: HardwareConfig, metadata: dict[str, Any]) -> Program:
    """The final program: code, constant segments, symbols (labels, constants, I/O) and metadata."""
    code = [encode_inst(i, prog.labels) for i in prog.insts]
    code.append(make("halt"))
    segments = []
    symbols = [
        Symbol(symbol_name(name), "code", idx)
        for name, idx in sorted(prog.labels.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    for buf in prog.buffers:
        if buf.kind == "const" and buf.data is not None:
            segments.append(Segment(buf.space, buf.address, buf.data, buf.name))
            symbols.append(Symbol(symbol_name(buf.name), buf.space, buf.address, buf.nbytes))
    segments.sort(key=lambda s: (s.space, s.address))
    io = {"inputs": [], "outputs": []}
    for key, entries in (("inputs", prog.inputs), ("outputs", prog.outputs)):
        for name, buf, shape, dtype in entries:
            io[key].append(
                {"name": name, "space": buf.space, "address": buf.address, "shape": list(shape), "dtype": dtype}
            )
            symbols.append(Symbol(symbol_name(f"{key[:-1]}.{name}"), buf.space, buf.address, buf.nbytes))
    meta = {**io, "compiler": COMPILER_VERSION, "hw_name": hw.name, "hw_fingerprint": hw.fingerprint.hex(),
            "hw_config": hw.toml_text(), **metadata}
    return Program(code=code, segments=segments, symbols=symbols, metadata=meta, hw_fingerprint=hw.fingerprint)
