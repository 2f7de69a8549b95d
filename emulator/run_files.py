"""What a run reads and writes: the program and the hardware config it runs on, inputs, per-sentence inputs, JSON."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.emulator.runner import EmulatorInputError
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program

#: Largest array (and archive total) an inputs file may hold: the inputs live in emulated memories of at most 4 GiB.
MAX_INPUT_BYTES = 1 << 32
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def _header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header (read without touching the data)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), np.dtype(dtype)


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    with zf.open(info) as f:
        shape, dtype = _header(f)
        header_bytes = f.tell()
    if dtype.hasobject:
        raise EmulatorInputError(f"{where}: holds Python objects (dtype {dtype}), not numbers")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > MAX_INPUT_BYTES:
        raise EmulatorInputError(f"{where}: shape {shape} of {dtype} is larger than the {MAX_INPUT_BYTES:,}-byte limit")
    if header_bytes + nbytes > info.file_size:
        raise EmulatorInputError(f"{where}: truncated (shape {shape} of {dtype} needs {nbytes:,} bytes of data, "
                                 f"the member holds {info.file_size - header_bytes:,})")
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def read_program(path: str | Path) -> Program:
    """A program from a `.ebin` file, or assembled from a `.s` file."""
    if Path(path).suffix.lower() == ".s":
        from edgebert.isa.assembler import assemble_file

        return assemble_file(path)
    from edgebert.isa.ebin import load_ebin

    return load_ebin(path)


def load_program(path: str | Path, hw_arg: str | None) -> tuple[Program, HardwareConfig, str]:
    """Load an `.ebin` (or assemble a `.s` file) and the hardware config to run it on
    (`isa.program_config.select_config`: the config the program embeds or was compiled for, or `--hw NAME|FILE`); the
    third value is a warning ("" if none)."""
    from edgebert.isa.program_config import select_config

    program = read_program(path)
    hw, warning = select_config(program.metadata, program.hw_fingerprint, str(path), hw_arg)
    return program, hw, warning


def load_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an `.npz` archive by name; any damage (not a zip, truncated, a member that is not .npy, too large,
    object arrays) is an EmulatorInputError naming the file and member."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise EmulatorInputError(f"{path}: cannot read inputs: {exc.strerror or exc}") from None
    if magic.startswith(_NPY_MAGIC):
        raise EmulatorInputError(f"{path}: a single .npy array; inputs are an .npz archive keyed by input names "
                                 "(numpy.savez(path, name=array, ...))")
    if not magic.startswith(_ZIP_MAGICS):
        what = "an empty file" if not magic else "not an .npz archive (no zip signature)"
        raise EmulatorInputError(f"{path}: {what}")
    out: dict[str, np.ndarray] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                where = f"{path}: member '{info.filename}'"
                if info.is_dir() or not info.filename.endswith(".npy"):
                    raise EmulatorInputError(f"{where} is not a .npy array")
                total += info.file_size
                if total > MAX_INPUT_BYTES:
                    raise EmulatorInputError(f"{path}: members add up to more than {MAX_INPUT_BYTES:,} bytes")
                out[info.filename[: -len(".npy")]] = _read_member(zf, info, where)
    except EmulatorInputError:
        raise
    except MemoryError:
        raise EmulatorInputError(f"{path}: an array is too large for this machine's memory") from None
    except Exception as exc:  # zipfile, zlib and numpy's .npy parser raise many types on damaged data
        raise EmulatorInputError(f"{path}: damaged inputs archive ({type(exc).__name__}: {exc})") from None
    return out


def stacked_sentences(path: str | Path, arrays: Mapping[str, np.ndarray],
                      declared: Sequence[Mapping[str, Any]]) -> int:
    """Number of sentences stacked on axis 0 of every declared input (an .npz in edgebert-bench's format)."""
    names = [e["name"] for e in declared]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise EmulatorInputError(f"{path}: no array for input '{missing[0]}' (has {sorted(arrays)})")
    counts = set()
    for n in names:
        if arrays[n].ndim == 0:
            raise EmulatorInputError(f"{path}: input '{n}' is a 0-d array: it holds no sentences to pick with --row")
        counts.add(len(arrays[n]))
    if len(counts) > 1:
        raise EmulatorInputError(f"{path}: inputs have different sentence counts {sorted(counts)}")
    return counts.pop() if counts else 0


def sentence(arrays: Mapping[str, np.ndarray], declared: Sequence[Mapping[str, Any]], row: int) -> dict[str, np.ndarray]:
    """Sentence `row` of stacked inputs, each reshaped to its declared shape when only a unit axis differs."""
    out = {}
    for e in declared:
        value = arrays[e["name"]][row]
        shape = tuple(e["shape"])
        if value.shape != shape and value.size == int(np.prod(shape, dtype=np.int64)):
            value = value.reshape(shape)
        out[e["name"]] = value
    return out


def load_sentence_inputs(path: str | Path, program_inputs: list[dict[str, Any]]) -> list[dict[str, np.ndarray]]:
    """Split an .npz of [sentences, ...] arrays (one per program input) into one input dict per sentence."""
    return split_sentences(load_inputs(path), program_inputs, path)


def split_sentences(arrays: Mapping[str, np.ndarray], program_inputs: Sequence[Mapping[str, Any]],
                    path: str | Path) -> list[dict[str, np.ndarray]]:
    """One input dict per sentence of [sentences, ...] arrays (`path`: where they came from, for errors)."""
    return [sentence(arrays, program_inputs, i) for i in range(stacked_sentences(path, arrays, program_inputs))]


def write_json(path: str | Path, data: Any, *, indent: int = 2) -> None:
    """`data` as strict JSON (numpy values converted, non-finite numbers as null), written atomically; an
    unwritable path is an EdgebertError naming it."""
    from edgebert.isa.safe_io import dumps_strict, write_atomic

    try:
        text = dumps_strict(data, indent=indent)
    except (TypeError, ValueError) as exc:
        raise EdgebertError(f"{path}: cannot write JSON: {exc}") from None
    write_atomic(path, text + "\n")


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Arrays as an .npz at exactly `path` (numpy.savez would append .npz to another suffix), written atomically."""
    import io

    from edgebert.isa.safe_io import write_atomic

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Rows as CSV with a header of `columns` (missing values empty), written atomically."""
    import csv
    import io

    from edgebert.isa.safe_io import write_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    write_atomic(path, buf.getvalue())


def exit_count(program: Program) -> int | None:
    """How many exits (entropy values per sentence) a compiled early-exit program consumes at most (None: unknown,
    e.g. hand-written assembly)."""
    early = program.metadata.get("early_exit")
    if isinstance(early, dict) and isinstance(early.get("num_layers"), int):
        return early["num_layers"]
    return None


def check_entropy_row(program: Program, values: int) -> str | None:
    """A warning when a recorded sentence holds more entropies than the program has exits (they go unused)."""
    exits = exit_count(program)
    if exits is not None and values > exits:
        return (f"the entropy trace holds {values} entropies per sentence, the program has {exits} exits: only the "
                f"first {exits} are replayed (was the trace recorded for another model?)")
    return None
