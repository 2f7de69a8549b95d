"""Workloads resolved on the driver (models built, files read and hashed) into payloads a worker needs nothing else
for: the model's bytes travel through Ray's object store when the worker cannot read the driver's path."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.emulator.run_files import load_inputs
from edgebert.emulator.sweep.model_builder import BuildOptions, build
from edgebert.emulator.sweep.spec import GENERATED, Spec, Workload
from edgebert.isa.errors import EdgebertError
from edgebert.isa.traces import read_entropy_array, read_entropy_trace, read_lookup_table


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


@dataclass
class WorkloadPayload:
    """One workload as a worker uses it (picklable)."""

    name: str
    model_path: str
    model_sha256: str
    seq_len: int | None
    trace: list[list[float]] | None  # entropy rows (timing-only replay), the limit applied
    inputs: dict[str, np.ndarray] | None  # .npz arrays, sentence axis first, the limit applied
    predictor_table: np.ndarray | None
    calibration: np.ndarray | None
    compiler_defaults: dict[str, Any]
    digests: dict[str, str]  # predictor / calibration content hashes (part of the compile key)
    model_blob: list[Any] = field(default_factory=list)  # [bytes or an ObjectRef of them] when shipped

    @property
    def sentences(self) -> int:
        return len(self.trace) if self.trace is not None else len(next(iter(self.inputs.values())))


def resolve(spec: Spec, cache: Path) -> dict[str, WorkloadPayload]:
    """Every workload of the spec; models with `build` are built into `cache/models` (once per options)."""
    return {w.name: _resolve(w, cache / "models") for w in spec.workloads}


def _resolve(w: Workload, models: Path) -> WorkloadPayload:
    built = build(BuildOptions.from_table(w.build), models) if w.build is not None else None
    model = built.onnx if built is not None else w.model

    def generated(value: Any, path_of_built: Path | None) -> Path | None:
        if value == GENERATED:
            if built is None:  # pragma: no cover - the spec reader rejects it
                raise EdgebertError(f"workload '{w.name}': 'generated' needs a built model")
            return path_of_built
        return value

    trace_path = generated(w.entropy_trace, built.trace if built else None)
    inputs_path = generated(w.inputs, built.inputs if built else None)
    calib_path = generated(w.calibration_entropies, built.trace if built else None)
    trace = read_entropy_trace(trace_path)[: w.limit] if trace_path is not None else None
    inputs = None
    if inputs_path is not None:
        inputs = {k: v[: w.limit] for k, v in load_inputs(inputs_path).items()}
        if not inputs or len({len(v) for v in inputs.values()}) != 1 or not len(next(iter(inputs.values()))):
            raise EdgebertError(f"{inputs_path}: needs one array per program input with the same number (> 0) of "
                                "sentences")
    if trace is not None and not trace:
        raise EdgebertError(f"{trace_path}: no sentences")
    table = read_lookup_table(w.predictor_table) if w.predictor_table is not None else None
    calib = read_entropy_array(calib_path) if calib_path is not None else None
    digests = {k: sha256_array(v) for k, v in (("predictor_table", table), ("calibration", calib)) if v is not None}
    seq_len = w.seq_len if w.seq_len is not None else (BuildOptions.from_table(w.build).seq_len if w.build else None)
    return WorkloadPayload(w.name, str(model), sha256_file(model), seq_len, trace, inputs, table, calib,
                           dict(w.compiler), digests)


_VERIFIED: dict[str, Path] = {}


def model_file(payload: WorkloadPayload) -> Path:
    """A local file with the model's bytes: the driver's path when it holds them, else a copy in the temp dir."""
    if payload.model_sha256 in _VERIFIED:
        return _VERIFIED[payload.model_sha256]
    path = Path(payload.model_path)
    if not (path.is_file() and sha256_file(path) == payload.model_sha256):
        if not payload.model_blob:
            raise EdgebertError(f"{path}: not readable on this node and not shipped (run the driver with --address)")
        blob = payload.model_blob[0]
        if not isinstance(blob, bytes):
            import ray

            blob = ray.get(blob)
        folder = Path(tempfile.gettempdir()) / "edgebert-sweep-models" / payload.model_sha256
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(payload.model_path).name
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(blob)
            tmp.replace(path)
    _VERIFIED[payload.model_sha256] = path
    return path
