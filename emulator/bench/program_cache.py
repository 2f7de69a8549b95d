"""Compiled early-exit programs cached on disk, keyed by everything their bytes depend on: the model file, the
early-exit options (files by content), the hardware config's fingerprint and the compiler's own sources."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.isa.hardware import HardwareConfig


@functools.cache
def _sources_digest() -> str:
    """SHA-256 of the compiler, ISA and front-end sources (a change of code invalidates the cache)."""
    import edgebert.compiler
    import edgebert.frontend
    import edgebert.isa

    h = hashlib.sha256()
    for pkg in (edgebert.compiler, edgebert.frontend, edgebert.isa):
        root = Path(pkg.__file__).parent
        for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.toml")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(v).tobytes() + str(v.dtype).encode()).hexdigest()
    if isinstance(v, (str, Path)) and Path(v).is_file():
        return _file_digest(v)
    return v


def cache_key(model: str | Path, options: Any, hw: HardwareConfig) -> str:
    """Hex key of one compile (`options`: compiler.options.EarlyExitOptions)."""
    fields = {f.name: _value(getattr(options, f.name)) for f in dataclasses.fields(options)}
    blob = json.dumps({"model": _file_digest(model), "options": fields, "hw": hw.fingerprint.hex(),
                       "sources": _sources_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def compiled(model: str | Path, options: Any, hw: HardwareConfig, cache_dir: str | Path | None = None) -> Any:
    """The program `compile_onnx(model, hw=hw, early_exit=options)` makes, from `cache_dir` when it holds it."""
    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.isa.ebin import load_ebin, save_ebin

    path = Path(cache_dir) / f"{cache_key(model, options, hw)}.ebin" if cache_dir is not None else None
    if path is not None and path.exists():
        return load_ebin(path)
    program = compile_onnx(model, hw=hw, early_exit=options).program
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_ebin(program, tmp)
        tmp.replace(path)
    return program
