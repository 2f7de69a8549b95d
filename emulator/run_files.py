"""What a run reads and writes: the program and the hardware config it runs on, inputs, per-sentence inputs, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program


def load_program(path: str | Path, hw_arg: str | None) -> tuple[Program, HardwareConfig, str]:
    """Load an `.ebin` and the hardware config to run it on (`isa.program_config.select_config`: the config the
    program embeds or was compiled for, or `--hw NAME|FILE`); the third value is a warning ("" if none)."""
    from edgebert.isa.ebin import load_ebin
    from edgebert.isa.program_config import select_config

    program = load_ebin(path)
    hw, warning = select_config(program.metadata, program.hw_fingerprint, str(path), hw_arg)
    return program, hw, warning


def load_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an `.npz` (no pickles), keyed by name."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise EdgebertError(f"{path}: cannot read inputs: {exc}") from None


def load_sentence_inputs(path: str | Path, program_inputs: list[dict[str, Any]]) -> list[dict[str, np.ndarray]]:
    """Split an .npz of [sentences, ...] arrays (one per program input) into one input dict per sentence."""
    return split_sentences(load_inputs(path), program_inputs, path)


def split_sentences(arrays: dict[str, np.ndarray], program_inputs: list[dict[str, Any]],
                    path: str | Path) -> list[dict[str, np.ndarray]]:
    """One input dict per sentence of [sentences, ...] arrays (`path`: where they came from, for errors)."""
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
