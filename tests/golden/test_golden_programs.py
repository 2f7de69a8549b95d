"""Byte identity of compiled and assembled programs: the cheap subset of scripts/golden_programs.py (tiny ALBERTs,
num_hidden_groups=2, seq 13, the bundled assembly examples) against tests/golden/programs.json. The full set
(ALBERT-base, compressed with early exit and DVFS, multi-task, ...) is `python scripts/golden_programs.py check`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "golden_programs.py"


def _script():
    spec = importlib.util.spec_from_file_location("golden_programs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


GOLDEN = _script()


@pytest.mark.parametrize("name", GOLDEN.selected(None, fast=True))
def test_program_is_byte_identical(name, tmp_path):
    assert GOLDEN.check([name], tmp_path) == [], f"{name}: the .ebin differs from tests/golden/programs.json"


def test_manifest_names_every_program():
    import json

    recorded = json.loads(GOLDEN.MANIFEST.read_text())["programs"]
    assert sorted(recorded) == sorted(g.name for g in GOLDEN.PROGRAMS)
