"""`sweep.json`: what reproduces a sweep: the spec (text and digest), the base config, package versions, seeds, the
git commit of the edgebert sources when they are a git checkout, the command, the Ray setup and the counts."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgebert.emulator.sweep.spec import Spec

SWEEP_JSON = "sweep.json"
PACKAGES = ("edgebert", "apache-tvm", "numpy", "onnx", "onnxruntime", "torch", "transformers", "ray", "optuna",
            "pyarrow", "matplotlib", "rich")


def spec_digest(spec: Spec) -> str:
    """SHA-256 of the spec text and the base config text (a resumed sweep must have the same)."""
    return hashlib.sha256(spec.text.encode() + b"\0" + spec.base_hw_text.encode()).hexdigest()


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> dict[str, Any] | None:
    """The commit of the edgebert source tree and whether it has uncommitted changes (None outside a checkout)."""
    import edgebert.isa

    root = Path(edgebert.isa.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def describe(spec: Spec, *, workers: int, address: str | None, started: float, **extra: Any) -> dict[str, Any]:
    """The sweep.json document."""
    return {
        "name": spec.name,
        "spec_path": str(spec.path),
        "spec_sha256": spec_digest(spec),
        "spec_text": spec.text,
        "spec": spec.raw,
        "base_hw": spec.base_hw,
        "base_hw_text": spec.base_hw_text,
        "strategy": spec.strategy,
        "seed": spec.seed,
        "samples": spec.samples,
        "sampler": spec.sampler if spec.strategy == "optuna" else None,
        "objectives": list(spec.objectives),
        "versions": versions(),
        "git": git_commit(),
        "command": sys.argv,
        "platform": platform.platform(),
        "ray": {"address": address or "local", "workers": workers},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        **extra,
    }


def write(out_dir: Path, doc: dict[str, Any]) -> None:
    tmp = out_dir / f".{SWEEP_JSON}.part"
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(out_dir / SWEEP_JSON)


def read(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / SWEEP_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
