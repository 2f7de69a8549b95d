"""The schema of a program's metadata (the contract in `isa/program.py`), checked when a `.ebin` is read or written.

Only keys the tools read are checked; any other key is provenance and passes as-is. Every message names the
field (`metadata: outputs[0].shape[1]: ...`), so a damaged or hand-edited file fails at load time, not after a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from edgebert.isa.errors import MetadataError
from edgebert.isa.table import SPACES

#: Metadata dtype -> bytes of one element as stored in memory (int64 token ids are stored as int32).
IO_DTYPES = {"float32": 4, "int32": 4, "int64": 4, "uint8": 1}
MAX_IO_ENTRIES = 4096
MAX_RANK = 32
ADDRESS_LIMIT = 1 << 32  # addresses and sizes live in a 32-bit byte space


def _fail(where: str, message: str) -> MetadataError:
    return MetadataError(f"metadata: {where}: {message}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _int(where: str, value: Any, lo: int = 0, hi: int = ADDRESS_LIMIT - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, f"expected an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        shown = value if abs(value) < 10**30 else f"a {value.bit_length()}-bit integer"
        raise _fail(where, f"{shown} is outside {lo}..{hi}")
    return value


def _number(where: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(where, f"expected a number, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, f"non-finite number {value}")


def _str(where: str, value: Any, optional: bool = False, nonempty: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {_kind(value)}")
    if nonempty and not value:
        raise _fail(where, "empty string")


def _object(where: str, value: Any, required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object, got {_kind(value)}")
    for key in required:
        if key not in value:
            raise _fail(where, f"missing key '{key}'")
    return value


def _list(where: str, value: Any, limit: int = MAX_IO_ENTRIES) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {_kind(value)}")
    if len(value) > limit:
        raise _fail(where, f"{len(value)} entries (at most {limit})")
    return value


def _location(where: str, value: Any, sized: bool = False) -> None:
    """`{"space", "address"}` (and `"bytes"` when `sized`) of a memory region."""
    entry = _object(where, value, ("space", "address", "bytes") if sized else ("space", "address"))
    if entry["space"] not in SPACES:
        raise _fail(f"{where}.space", f"unknown memory space {entry['space']!r:.40} (one of {', '.join(SPACES)})")
    _int(f"{where}.address", entry["address"])
    if sized:
        _int(f"{where}.bytes", entry["bytes"])


def check_io_entry(where: str, value: Any) -> None:
    """One `inputs`/`outputs` entry: name, space, address, shape (non-negative dims) and dtype."""
    entry = _object(where, value, ("name", "space", "address", "shape"))
    _str(f"{where}.name", entry["name"], nonempty=True)
    _location(where, entry)
    dtype = entry.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in IO_DTYPES:
        raise _fail(f"{where}.dtype", f"unsupported dtype {dtype!r:.40} (one of {', '.join(IO_DTYPES)})")
    shape = _list(f"{where}.shape", entry["shape"], MAX_RANK)
    nbytes = IO_DTYPES[dtype]
    for i, dim in enumerate(shape):
        nbytes *= _int(f"{where}.shape[{i}]", dim)
        if nbytes >= ADDRESS_LIMIT:
            raise _fail(f"{where}.shape", f"{shape} does not fit the 32-bit address space")
    if entry["address"] + nbytes > ADDRESS_LIMIT:
        raise _fail(where, "runs past the 32-bit address space")


def _io_list(key: str, value: Any) -> None:
    names: set[str] = set()
    for i, entry in enumerate(_list(key, value)):
        check_io_entry(f"{key}[{i}]", entry)
        if entry["name"] in names:
            raise _fail(f"{key}[{i}].name", f"duplicate name {entry['name']!r:.60}")
        names.add(entry["name"])


def _multitask(key: str, value: Any) -> None:
    if value is None:
        return
    mt = _object(key, value, ("tasks", "task_select"))
    tasks = _list(f"{key}.tasks", mt["tasks"])
    if not tasks:
        raise _fail(f"{key}.tasks", "no tasks")
    names: set[str] = set()
    for i, task in enumerate(tasks):
        where = f"{key}.tasks[{i}]"
        t = _object(where, task, ("name", "index", "num_labels", "block"))
        _str(f"{where}.name", t["name"], nonempty=True)
        if t["name"] in names:
            raise _fail(f"{where}.name", f"duplicate task {t['name']!r:.60}")
        names.add(t["name"])
        _int(f"{where}.index", t["index"], 0, (1 << 31) - 1)
        _int(f"{where}.num_labels", t["num_labels"])
        _location(f"{where}.block", t["block"], sized=True)
        if "weight_bytes" in t:
            _int(f"{where}.weight_bytes", t["weight_bytes"])
        if t.get("dvfs_table") is not None:
            _dvfs_table(f"{where}.dvfs_table", t["dvfs_table"])
    _location(f"{key}.task_select", mt["task_select"])
    for name, sized in (("task_region", True), ("loaded_word", False)):
        if mt.get(name) is not None:
            _location(f"{key}.{name}", mt[name], sized)
    if (mt.get("task_region") is None) != (mt.get("loaded_word") is None):
        raise _fail(key, "task_region and loaded_word come together (the SRAM placement needs both)")
    if "padded_labels" in mt:
        _int(f"{key}.padded_labels", mt["padded_labels"])
    if "placement" in mt:
        _str(f"{key}.placement", mt["placement"], optional=True)
    if "shared_bytes" in mt:
        for level, n in _object(f"{key}.shared_bytes", mt["shared_bytes"]).items():
            _int(f"{key}.shared_bytes.{level}", n)


def _dvfs_table(key: str, value: Any) -> None:
    if value is None:
        return
    table = _object(key, value)
    if "target_s" in table:
        _number(f"{key}.target_s", table["target_s"], optional=True)


def _str_list(key: str, value: Any) -> None:
    for i, item in enumerate(_list(key, value)):
        _str(f"{key}[{i}]", item)


def _number_list(key: str, value: Any) -> None:
    for i, item in enumerate(_list(key, value)):
        _number(f"{key}[{i}]", item, optional=True)


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "inputs": _io_list,
    "outputs": _io_list,
    "exit_layer": lambda k, v: v is None or _location(k, v),
    "multitask": _multitask,
    "dvfs_table": _dvfs_table,
    "tasks": _str_list,
    "thresholds": _number_list,
    "dvfs_plan": _str_list,
    "latency_target_s": lambda k, v: _number(k, v, optional=True),
    "sram_peak_bytes": lambda k, v: v is None or _int(k, v),
    "early_exit": lambda k, v: v is None or isinstance(v, bool) or _object(k, v),
    "compiler": lambda k, v: _str(k, v, optional=True),
    "hw_name": lambda k, v: _str(k, v, optional=True),
    "hw_fingerprint": lambda k, v: _str(k, v, optional=True),
    "source_model_sha256": lambda k, v: _str(k, v, optional=True),
}


def check_metadata(metadata: Any) -> None:
    """Raise MetadataError naming the field when `metadata` breaks the contract of `isa/program.py`."""
    if not isinstance(metadata, dict):
        raise MetadataError(f"metadata: expected a JSON object, got {_kind(metadata)}")
    for key, check in _CHECKS.items():
        if key in metadata:
            check(key, metadata[key])
