"""The README's command blocks (scripts/check_readme.py reads them; running them all is that script's slow job): every
command line parses with its tool's own parser, writes only under out/, and the blocks marked fast run as pasted."""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from check_readme import README, blocks, commands, output_paths, run_block, tool_argv  # noqa: E402

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
#: Commands that are not ours to parse.
FOREIGN = ("bash", "cmp", ".venv/bin/python", "ray")


class _Parsed(Exception):
    """Raised by the patched parser once the command line parsed: nothing else of the tool runs."""


def _commands() -> list[tuple[int, list[str]]]:
    return [(b.index, argv) for b in blocks(README.read_text()) for argv in commands(b)]


def _parse(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the tool's own entry point until its parser returned (SystemExit on a command line it rejects)."""
    for name in ("parse_args", "parse_intermixed_args"):
        original = getattr(argparse.ArgumentParser, name)

        def parsed(self, args=None, namespace=None, _original=original):  # noqa: ANN001, ANN202
            _original(self, args, namespace)
            raise _Parsed

        monkeypatch.setattr(argparse.ArgumentParser, name, parsed)
    if argv[0] in SCRIPTS:
        module, func = SCRIPTS[argv[0]].split(":")
        target = getattr(importlib.import_module(module), func)
        call = lambda: target(argv[1:])  # noqa: E731
    else:
        assert argv[0] == "python" and argv[1].endswith(".py"), argv
        monkeypatch.setattr(sys, "argv", argv[1:])
        call = lambda: runpy.run_path(str(ROOT / argv[1]), run_name="__main__")  # noqa: E731
    with pytest.raises(_Parsed):
        call()


def test_the_readme_has_blocks_to_check() -> None:
    langs = [b.lang for b in blocks(README.read_text())]
    assert "" not in langs, "a fence without a language: sh (run), python (run) or text (a synopsis)"
    assert langs.count("sh") >= 10 and "python" in langs and any(b.fast for b in blocks(README.read_text()))


@pytest.mark.parametrize("index, argv", [c for c in _commands() if c[1][0] not in FOREIGN and c[1][:2] != ["python",
                                                                                                           "-c"]],
                         ids=lambda v: v if isinstance(v, int) else " ".join(v[:3]))
def test_command_parses(index: int, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _parse(tool_argv(argv), monkeypatch)


@pytest.mark.parametrize("index, argv", _commands(), ids=lambda v: v if isinstance(v, int) else " ".join(v[:3]))
def test_command_writes_under_out(index: int, argv: list[str]) -> None:
    bad = [p for p in output_paths(argv) if not p.startswith("out/")]
    assert not bad, f"block {index}: {' '.join(argv)} writes {bad} outside out/"


def test_fast_blocks_run_as_pasted(tmp_path: Path) -> None:
    """In a copy of the checkout's layout (examples/ and ../shared linked), from its root, as a user would."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "examples").symlink_to(ROOT / "examples")
    shared = (ROOT / ".." / "shared").resolve()
    if not shared.exists():
        pytest.skip("../shared absent")
    (tmp_path / "shared").symlink_to(shared)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    fast = [b for b in blocks(README.read_text()) if b.fast]
    assert fast
    (repo / "out").mkdir()
    for b in fast:
        code, _, tail = run_block(b, cwd=repo, env=env)
        assert code == 0, f"block {b.index} (README line {b.line}) failed:\n{tail}"
    written = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()
                     and not p.relative_to(repo).as_posix().startswith("examples/"))
    assert written and all(p.startswith("out/") for p in written), written
    shutil.rmtree(repo / "out")
