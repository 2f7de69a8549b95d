"""Helpers for end-to-end tests: export an ALBERT, compile it, emulate it, and compare with references."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert.compiler.pipeline import CompileResult, compile_onnx
from edgebert.emulator import RunResult, run
from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export, make_inputs

OUTPUTS = ("logits", "last_hidden_state", "pooler_output")


def export_albert(
    directory: Path, name: str, preset: str, seq_len: int, pad: int = 0, exporter: str = "legacy", **overrides
) -> tuple[Path, dict[str, np.ndarray]]:
    """Export a re-randomised ALBERT with every output kind; returns (onnx path, inputs)."""
    spec = ExportSpec(seq_len=seq_len, exporter=exporter, outputs=OUTPUTS)
    path, cfg = build_and_export(directory / f"{name}.onnx", preset=preset, spec=spec, seed=1, **overrides)
    return path, make_inputs(seq_len, cfg.vocab_size, pad=pad, seed=2)


def onnxruntime_outputs(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, inputs), strict=True))


def compile_and_run(path: Path, inputs: dict[str, np.ndarray], seq_len: int) -> tuple[CompileResult, RunResult]:
    compiled = compile_onnx(path, seq_len)
    return compiled, run(compiled.program, inputs)


def max_abs_errors(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-output max |got - want| (shapes must match)."""
    errs = {}
    for name, ref in want.items():
        assert name in got, f"output {name} missing from the emulator's outputs {sorted(got)}"
        assert got[name].shape == ref.shape, f"{name}: shape {got[name].shape} != {ref.shape}"
        errs[name] = float(np.max(np.abs(got[name].astype(np.float64) - ref.astype(np.float64))))
    return errs
