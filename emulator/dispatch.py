"""The dispatch table `{opcode: factory}` built from the instruction table, and instruction formatting."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from edgebert.emulator import control, dma, matrix, sfu
from edgebert.isa.encoding import Inst
from edgebert.isa.table import BY_MNEMONIC, INSTRUCTIONS, Kind

#: A factory turns one decoded instruction into its zero-argument handler (decode once, run many times).
Factory = Callable[[Inst, Any], Callable[[], Any]]

_BY_MNEMONIC: dict[str, Factory] = {**dma.FACTORIES, **matrix.FACTORIES, **sfu.FACTORIES, **control.FACTORIES}

#: opcode -> handler factory, for every instruction of the table that has semantics.
DISPATCH: dict[int, Factory] = {ins.opcode: _BY_MNEMONIC[ins.mnemonic] for ins in INSTRUCTIONS if ins.mnemonic in _BY_MNEMONIC}


def missing_semantics() -> list[str]:
    """Mnemonics of the table that the emulator has no handler for (should be empty)."""
    return [ins.mnemonic for ins in INSTRUCTIONS if ins.opcode not in DISPATCH]


def format_inst(inst: Inst, labels: dict[int, str] | None = None) -> str:
    """Disassemble one instruction (the ISA disassembler when available, else `mnemonic field=value ...`)."""
    try:
        from edgebert.isa.disassembler import format_inst as disassemble

        return disassemble(inst, labels)
    except Exception:  # the disassembler is optional here: traps must never fail to format
        pass
    spec = BY_MNEMONIC.get(inst.mnemonic)
    if spec is None:
        return f"{inst.mnemonic} (unknown)"
    parts = []
    for f in spec.fields[1:]:
        value = inst.values.get(f.name, f.default)
        if value == f.default and f.name in ("wait", "signal"):
            continue
        if f.kind is Kind.F32:
            shown = repr(struct.unpack("<f", struct.pack("<I", value))[0])
        elif f.kind in (Kind.ENUM, Kind.SPACE):
            shown = f.choices[value]
        else:
            shown = str(value)
        parts.append(f"{f.name}={shown}")
    return f"{inst.mnemonic} {' '.join(parts)}".strip()
