"""What a run reads and writes: the program (checked against the hardware config), inputs, per-sentence inputs, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program


def load_program(path: str | Path, hw: HardwareConfig, *, hw_given: bool) -> tuple[Program, str | None]:
    """Load an `.ebin` and check it was compiled for `hw`. A mismatch is an error unless the user chose the config
    (`hw_given`, i.e. `--hw`); then the program loads and the second value is the warning to print."""
    from edgebert.isa.ebin import load_ebin

    program = load_ebin(path)
    if not any(program.hw_fingerprint) or program.hw_fingerprint == hw.fingerprint:
        return program, None
    msg = (f"{path} was compiled for a different hardware config "
           f"(fingerprint {program.hw_fingerprint.hex()[:16]}..., {hw.name} is {hw.fingerprint.hex()[:16]}...)")
    if not hw_given:
        raise EdgebertError(msg + "; pass --hw FILE to run it on a config of your choice anyway")
    return program, msg + "; running on --hw as requested"


def load_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz` (no pickles), keyed by name."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise EdgebertError(f"{path}: cannot read inputs: {exc}") from None


def load_sentence_inputs(path: str | Path, program_inputs: list[dict[str, Any]]) -> list[dict[str, np.ndarray]]:
    """Split an .npz of [sentences, ...] arrays (one per program input) into one input dict per sentence."""
    arrays = load_inputs(path)
    names = [e["name"] for e in program_inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise EdgebertError(f"{path}: no array for input '{missing[0]}' (has {sorted(arrays)})")
    counts = {len(arrays[n]) for n in names}
    if len(counts) != 1:
        raise EdgebertError(f"{path}: inputs have different sentence counts {sorted(counts)}")
    count = counts.pop() if counts else 0
    out = []
    for i in range(count):
        sentence = {}
        for e in program_inputs:
            value = arrays[e["name"]][i]
            shape = tuple(e.get("shape", value.shape))
            if value.shape != shape and value.size == int(np.prod(shape)):
                value = value.reshape(shape)
            sentence[e["name"]] = value
        out.append(sentence)
    return out


def write_json(path: str | Path, data: Any, *, indent: int = 2) -> None:
    """`data` as JSON (numpy scalars as floats); an unwritable path is an EdgebertError naming it."""
    try:
        Path(path).write_text(json.dumps(data, indent=indent, default=float) + "\n")
    except OSError as exc:
        raise EdgebertError(f"{path}: cannot write: {exc.strerror}") from None
