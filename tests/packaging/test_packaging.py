"""Packaging: every Python package folder is declared in pyproject.toml (a wheel would drop it otherwise)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE_FOLDERS = ("isa", "emulator", "compiler", "frontend")


def test_every_package_folder_is_declared() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    mapping = config["package-dir"]
    for folder in CODE_FOLDERS:
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT)
            name = "edgebert." + ".".join(rel.parts)
            assert name in declared, f"{rel} is a package but pyproject.toml does not list {name}"
            assert mapping.get(name) == rel.as_posix(), f"package-dir does not map {name} to {rel}"


def test_the_public_api_package_is_declared() -> None:
    """`edgebert/` (the public API, `import edgebert`) is a real package the wheel ships, not a namespace."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "edgebert" in config["packages"] and config["package-dir"].get("edgebert") == "edgebert"
    assert (ROOT / "edgebert" / "__init__.py").is_file()
    assert not [p for p in (ROOT / "edgebert").rglob("__init__.py") if p.parent != ROOT / "edgebert"]


def test_console_scripts_point_at_existing_mains() -> None:
    import importlib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"edgebertc", "edgebert-emu", "edgebert-as", "edgebert-dis"} <= set(scripts)
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
