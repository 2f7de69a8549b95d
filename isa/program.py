"""The in-memory program: what the assembler and compiler build, `.ebin` stores and the emulator runs.

Metadata contract (JSON object, all keys optional unless the emulator needs them):

- ``inputs`` / ``outputs``: lists of ``{"name", "space", "address", "shape", "dtype"}`` (dtype one of
  ``float32``, ``int32``, ``int64``, ``uint8``): where the emulator writes inputs before running
  and reads outputs after ``halt``. int64 inputs (ONNX token ids) are stored as int32.
- ``exit_layer``: ``{"space", "address"}`` of an int32 word the program writes with the layer it
  exited after (1-based); absent when the program has no early exit.
- ``hw_config``: the TOML text of the hardware config the program was built for; a program runs on it when no
  other config is given (validated: it must parse and match the header's fingerprint, `isa/program_config.py`).
- ``compiler``, ``source_model_sha256``, ``hw_name``, ``tasks``, ``thresholds``, ``dvfs_table``:
  provenance and EdgeBERT settings, reported as-is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgebert.isa.encoding import Inst

#: Spaces a symbol can name: the code (value = instruction index) or a memory space (byte address).
SYMBOL_SPACES = ("code", "dram", "envm", "sram")


@dataclass(frozen=True)
class Segment:
    """Initialized bytes placed at `address` of memory `space` before the program starts."""

    space: str
    address: int
    data: bytes
    name: str = ""


@dataclass(frozen=True)
class Symbol:
    """A label: `name` at `value` in `space` (instruction index for "code")."""

    name: str
    space: str
    value: int
    size: int = 0


@dataclass
class Program:
    code: list[Inst]
    segments: list[Segment] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    hw_fingerprint: bytes = b"\0" * 32

    def code_labels(self) -> dict[int, str]:
        """Instruction index -> first label naming it."""
        labels: dict[int, str] = {}
        for sym in self.symbols:
            if sym.space == "code":
                labels.setdefault(sym.value, sym.name)
        return labels
