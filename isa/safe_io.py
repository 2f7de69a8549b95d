"""File boundaries every tool shares: bounded reads, atomic writes, no overwriting an input, strict JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgebert.isa.errors import FileAccessError

#: Largest text source a tool reads (assembly, traces): far beyond any real file, small enough to fail fast.
MAX_TEXT_BYTES = 256 << 20


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def read_limited(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of `path`, refusing more than `limit` bytes without reading them all (devices, FIFOs too)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot read {what}: {_reason(exc)}") from None
    if len(data) > limit:
        raise FileAccessError(f"{path}: {what} is larger than the {limit:,}-byte limit")
    return data


def read_text_limited(path: str | Path, limit: int = MAX_TEXT_BYTES, what: str = "text") -> str:
    """UTF-8 text of `path` (bounded like `read_limited`); invalid UTF-8 names the byte offset."""
    raw = read_limited(path, limit, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileAccessError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_overwrite(inputs: Iterable[str | Path | None], output: str | Path | None) -> None:
    """Raise FileAccessError when `output` names the same file as one of `inputs` (path, symlink or hard link)."""
    if output is None:
        return
    out = Path(output)
    for item in inputs:
        if item is not None and _same_file(Path(item), out):
            raise FileAccessError(f"{output}: refusing to overwrite the input file {item}")


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file in the same folder moved into place (never half-written).

    A path that exists and is not a regular file (a device such as /dev/null, a FIFO) is written in place: it
    must not be replaced by a file. A directory is refused.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot write: {_reason(exc)}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise FileAccessError(f"{path}: cannot write: is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        try:
            with open(target, "wb") as f:
                f.write(payload)
        except OSError as exc:
            raise FileAccessError(f"{path}: cannot write: {_reason(exc)}") from None
        return
    folder = target.parent
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, stat.S_IMODE(mode) if mode is not None else 0o666 & ~umask)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot write: {_reason(exc)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def strict_json_value(value: Any) -> Any:
    """`value` with every non-finite float (NaN, +-inf; numpy too) replaced by None and numpy scalars made Python.

    JSON has no NaN or Infinity: strict parsers reject Python's `NaN` extension, so the tools write null.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): strict_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json_value(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return strict_json_value(item())
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return strict_json_value(tolist())
    return value


def dumps_strict(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of `value` (non-finite numbers become null; see `strict_json_value`)."""
    return json.dumps(strict_json_value(value), indent=indent, allow_nan=False)


def write_json(path: str | Path, value: Any) -> None:
    """Write `value` as strict JSON (plus a newline) to `path`, atomically."""
    try:
        text = dumps_strict(value)
    except (TypeError, ValueError) as exc:
        raise FileAccessError(f"{path}: cannot write JSON: {exc}") from None
    write_atomic(path, text + "\n")
