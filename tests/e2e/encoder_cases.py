"""Helpers for the encoder matrix test: the CI subset of scripts/encoder_matrix.py and one-case checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]


matrix = _load("encoder_matrix", REPO / "scripts" / "encoder_matrix.py")
repros = _load("generality_repros", REPO / "scripts" / "generality_repros.py")
zoo = matrix.zoo
SEQ_LEN = 12


class KnownFailure(Exception):
    """The case failed in exactly the failure class its xfail entry names."""


def ci_cases() -> list[Any]:
    """The matrix trimmed for CI (the full one: scripts/encoder_matrix.py, benchmarks/bench_encoders.py).

    The dynamo exporter takes 4-10 s per tiny model against 0.5 s for the legacy one, so: every family x head
    with the legacy exporter (opset 18, static and dynamic axes); every family's sequence classifier at legacy
    opsets 14, 17, 20 and with dynamo (static; dynamic and opset 18 for BERT and ALBERT); ALBERT with every
    transformers activation; float16 and onnxruntime-fused exports of BERT and ALBERT.
    """
    spec = zoo.EncoderSpec
    cls = "sequence-classification"
    cases = []
    for family in zoo.FAMILIES:
        for head in zoo.HEADS:
            for dynamic in (False, True):
                cases.append(spec(family, head, opset=18, dynamic=dynamic, seq_len=SEQ_LEN))
        for opset in (14, 17, 20):
            cases.append(spec(family, cls, opset=opset, seq_len=SEQ_LEN))
        cases.append(spec(family, cls, exporter="dynamo", seq_len=SEQ_LEN))
    for family in ("bert", "albert"):
        cases.append(spec(family, cls, exporter="dynamo", dynamic=True, seq_len=SEQ_LEN))
    cases.append(spec("bert", cls, exporter="dynamo", opset=18, seq_len=SEQ_LEN))
    for act in zoo.activations():
        cases.append(spec("albert", cls, hidden_act=act, opset=18, seq_len=SEQ_LEN))
    cases.append(spec("bert", cls, exporter="dynamo", fp16=True, seq_len=SEQ_LEN))
    for family in ("bert", "albert"):
        cases.append(spec(family, cls, opset=18, fp16=True, attn_implementation="eager", seq_len=SEQ_LEN))
        cases.append(spec(family, cls, opset=18, ort_optimize=True, seq_len=SEQ_LEN))
    return cases


def check_case(spec: Any, workdir: Path, expected_class: str | None) -> Any:
    """Run one case; a pass returns its Row, a failure in `expected_class` raises KnownFailure, anything else
    fails the test with the stage, class and error."""
    row = matrix.run_case(spec, workdir)
    if not row.passed:
        expect(spec.name, row.failure_class, f"{row.failure_class} at {row.stage}: {row.error}", expected_class)
    return row


def expect(name: str, failure_class: str, detail: str, expected_class: str | None) -> None:
    """Raise KnownFailure when a failure is in the class the xfail table expects, else fail the test."""
    if expected_class is not None and failure_class == expected_class:
        raise KnownFailure(detail)
    expected = f" (the xfail table expects {expected_class})" if expected_class else ""
    raise AssertionError(f"{name}: {detail}{expected}")
