"""Small sweep specs on a tiny built model (4 layers, hidden 32, seq 16) for the sweep tests."""

from __future__ import annotations

from pathlib import Path

TINY_BUILD = 'build = { preset = "tiny", encoder_sparsity = 0.5, af8 = true, sentences = 6 }'


def write_spec(folder: Path, body: str, workloads: str | None = None, name: str = "spec.toml") -> Path:
    """A spec file: `body` (the [sweep]/[hardware]/[compiler]/[run] tables) and workloads (default: the tiny model
    replaying its own entropy trace, DVFS planned from the same trace, threshold 0.3)."""
    if workloads is None:
        workloads = f"""
[[workloads]]
name = "tiny"
{TINY_BUILD}
entropy_trace = "generated"
calibration_entropies = "generated"
threshold = 0.3
"""
    path = folder / name
    path.write_text(body.strip() + "\n" + workloads)
    return path
