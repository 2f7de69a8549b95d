"""Every console script answers --version and --help with help for every option, and a flag two tools share means
the same there: one metavar and one help wording (isa/cli_common.py, compiler/options.py EARLY_EXIT_FLAGS)."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edgebert.compiler.options import EARLY_EXIT_FLAGS
from edgebert.isa.cli_common import HELP, METAVAR

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
#: Flags several tools take with a meaning of their own per tool: the metavars each may use.
OWN_MEANING = {"--output": {"FILE", "DIR"}, "--help": {None}}


def _parser(script: str) -> argparse.ArgumentParser:
    module = importlib.import_module(SCRIPTS[script].split(":")[0])
    return module.build_parser()


def _actions(p: argparse.ArgumentParser) -> list[argparse.Action]:
    out = []
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                out += _actions(sub)
        else:
            out.append(a)
    return out


def _deprecated(a: argparse.Action) -> bool:
    return (a.help or "").startswith("deprecated")


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_option_has_help(script: str) -> None:
    missing = [a.option_strings or a.dest for a in _actions(_parser(script)) if not (a.help or "").strip()]
    assert not missing, f"{script}: options without help: {missing}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_version_and_help(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = getattr(importlib.import_module(SCRIPTS[script].split(":")[0]), SCRIPTS[script].split(":")[1])
    for flag in ("--version", "--help"):
        with pytest.raises(SystemExit) as exc:
            main([flag])
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"{script} (edgebert " in out and "usage:" in out and "--version" in out


def test_installed_scripts_answer_version() -> None:
    """The entry points themselves (what a user types), not only their main()."""
    bindir = Path(sys.executable).parent
    for script in SCRIPTS:
        exe = bindir / script
        if not exe.exists():
            pytest.skip(f"{exe} not installed (run pip install -e .)")
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith(f"{script} (edgebert "), (script, out.stderr)


def test_shared_flags_mean_the_same() -> None:
    """Same flag in two tools: the shared metavar and help (a tool may only append its own default or detail)."""
    seen: dict[str, dict[str, argparse.Action]] = {}
    for script in SCRIPTS:
        for a in _actions(_parser(script)):
            for option in a.option_strings:
                seen.setdefault(option, {})[script] = a
    problems = []
    for option, tools in sorted(seen.items()):
        long = next((o for o in next(iter(tools.values())).option_strings if o.startswith("--")), option)
        live = {t: a for t, a in tools.items() if not _deprecated(a)}
        if len(tools) < 2 or option != long:
            continue
        if long in HELP:
            for tool, a in live.items():
                if long in METAVAR and a.metavar not in (METAVAR[long], f"{METAVAR[long]}|NAME={METAVAR[long]}"):
                    problems.append(f"{tool} {long}: metavar {a.metavar!r}, shared {METAVAR[long]!r}")
                if not a.help.startswith(HELP[long]):
                    problems.append(f"{tool} {long}: help {a.help!r} does not start with {HELP[long]!r}")
        elif long in EARLY_EXIT_FLAGS:
            metavar, text = EARLY_EXIT_FLAGS[long]
            for tool, a in live.items():
                if a.metavar != metavar or not a.help.startswith(text):
                    problems.append(f"{tool} {long}: ({a.metavar!r}, {a.help!r}) is not the shared {metavar!r}, "
                                    f"{text!r}")
        elif long in OWN_MEANING:
            problems += [f"{tool} {long}: metavar {a.metavar!r}" for tool, a in live.items()
                         if a.metavar not in OWN_MEANING[long]]
        elif len(live) > 1:
            problems.append(f"{long} is taken by {sorted(live)} without a shared meaning: add it to isa/cli_common.py")
    assert not problems, "\n".join(problems)


def test_task_means_one_task_of_a_program() -> None:
    """`--task NAME` selects a task of a multi-task program everywhere; edgebertc names task models NAME=MODEL."""
    assert _parser("edgebert-emu").parse_args(["p.ebin", "--task", "topic"]).task == "topic"
    args = _parser("edgebertc").parse_intermixed_args(["a.onnx", "topic=b.onnx"])
    from edgebert.compiler.cli import named_models

    named_models(args)
    assert args.model == ["a.onnx"] and args.task == ["topic=b.onnx"]


def test_report_is_a_deprecated_alias_of_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser("edgebert-emu").parse_args(["p.ebin", "--report", "r.json"])
    assert args.json == "r.json"
    assert "edgebert-emu: warning: --report is deprecated, use --json" in capsys.readouterr().err


def _add_argument_calls(path: Path) -> list[tuple[int, str, bool]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            name = next((a.value for a in node.args if isinstance(a, ast.Constant)), "?")
            helped = any(k.arg == "help" for k in node.keywords) or any(k.arg is None for k in node.keywords)
            out.append((node.lineno, str(name), helped))
    return out


def test_scripts_and_examples_document_every_option() -> None:
    """Benchmark scripts, examples and helper scripts too: no option without help (read from the source)."""
    missing = []
    for folder in ("benchmarks", "examples", "scripts", "isa", "emulator", "compiler", "frontend", "edgebert"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            missing += [f"{path.relative_to(ROOT)}:{line} {name}" for line, name, ok in _add_argument_calls(path)
                        if not ok]
    assert not missing, "options without help:\n" + "\n".join(missing)
