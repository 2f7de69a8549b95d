"""The package boundaries DESIGN.md draws: which imports are allowed where, and module names that do not collide."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The emulator core: every module of emulator/ but the harnesses on top (emulator/bench/, emulator/sweep/).
EMULATOR_CORE = sorted(p for p in (ROOT / "emulator").glob("*.py"))
#: What the core may not import: the compiler, the frontend and the harnesses.
NOT_IN_CORE = ("edgebert.compiler", "edgebert.frontend", "edgebert.emulator.bench", "edgebert.emulator.sweep")


def _loaded_after(statement: str) -> list[str]:
    """Names in sys.modules after running `statement` in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", ["edgebert.frontend.loader", "edgebert.isa.assembler", "edgebert.emulator.runner"])
def test_light_modules_do_not_import_torch(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded
    assert "torch" not in loaded, f"importing {module} imports torch"


def test_emulator_core_does_not_load_the_compiler() -> None:
    names = [f"edgebert.emulator.{p.stem}" for p in EMULATOR_CORE if p.stem != "__init__"]
    loaded = _loaded_after("\n".join(f"import {n}" for n in names))
    leaks = [m for m in loaded if m.startswith(NOT_IN_CORE)]
    assert not leaks, f"importing the emulator core loads {leaks}"


def _imported_modules(path: Path) -> set[str]:
    """Every module an import statement in `path` names, at any depth (lazy imports inside functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


@pytest.mark.parametrize("path", EMULATOR_CORE, ids=lambda p: p.name)
def test_emulator_core_module_imports_no_compiler_frontend_or_harness(path: Path) -> None:
    bad = sorted(m for m in _imported_modules(path) if m.startswith(NOT_IN_CORE))
    assert not bad, f"emulator/{path.name} imports {bad}"


def test_the_bench_harness_does_not_import_the_sweep_or_the_compiler() -> None:
    """edgebert-bench runs programs: it needs neither the compiler nor the sweep (which sits on top of both)."""
    loaded = _loaded_after("import edgebert.emulator.bench")
    leaks = [m for m in loaded if m.startswith(("edgebert.compiler", "edgebert.emulator.sweep", "edgebert.frontend"))]
    assert not leaks, f"importing edgebert.emulator.bench loads {leaks}"


def test_sweep_imports_torch_and_ray_only_when_it_runs() -> None:
    """The sweep's spec reader and CLI load without torch, TVM or Ray (they come with building, compiling, running)."""
    loaded = _loaded_after("import edgebert.emulator.sweep, edgebert.emulator.sweep.sweep_cli")
    heavy = [m for m in ("torch", "ray", "tvm", "optuna") if m in loaded]
    assert not heavy, f"importing edgebert.emulator.sweep loads {heavy}"


@pytest.mark.parametrize("folder", ["isa", "emulator", "frontend", "compiler"])
def test_no_two_modules_share_a_basename(folder: str) -> None:
    stems = Counter(p.stem for p in (ROOT / folder).rglob("*.py") if p.stem not in ("__init__", "__main__"))
    assert not [s for s, n in stems.items() if n > 1], f"{folder}/: modules sharing a name: {stems}"


@pytest.mark.parametrize("folder", ["compiler"])
def test_no_module_over_800_lines(folder: str) -> None:
    long = {p.relative_to(ROOT).as_posix(): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 800}
    assert not long, f"modules over 800 lines: {long}"
