"""The area model: per-component figures in the hardware config (each cited or labelled ASSUMPTION), validated like
every field, multiplied out by `isa.area.area_mm2`, outside the fingerprint, and in the emulator's report."""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib
from pathlib import Path

import pytest

from edgebert.emulator.cli import main as emu_main
from edgebert.isa.area import area_mm2
from edgebert.isa.ebin import save_ebin
from edgebert.isa.encoding import make
from edgebert.isa.errors import HardwareConfigError
from edgebert.isa.hardware import bundled_config_text, load_config, parse_config, parse_config_text, to_toml
from edgebert.isa.program import Program
from edgebert.isa.table import SPACES

BUNDLED = ("edgebert-cmod", "ideal-256mac")
SOURCE = re.compile(r"\[(A|M|P|L)\]|ASSUMPTION")


def _area_lines(name: str) -> list[str]:
    """The `key = value  # comment` lines of a bundled config's [area] table."""
    lines = bundled_config_text(name).splitlines()
    start = lines.index("[area]") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    return [line for line in lines[start:end] if line and not line.lstrip().startswith("#")
            and "=" in line.split("#")[0]]


@pytest.mark.parametrize("name", BUNDLED)
def test_every_area_number_is_cited_or_an_assumption(name: str) -> None:
    lines = _area_lines(name)
    assert len(lines) == 9
    for line in lines:
        assert "#" in line and SOURCE.search(line.split("#", 1)[1]), f"{name}: uncited area figure: {line}"


def test_components_multiply_the_config_sizes() -> None:
    cmod = load_config("edgebert-cmod")
    a, got = cmod.area, area_mm2(cmod)
    assert got["pu.mac_af8"] == pytest.approx(256 * a.mac_af8_um2 * 1e-6)  # VECTOR_SIZE 16 x 16 lanes
    assert got["pu.mac_f32"] == 0.0  # no fp32 path
    assert got["sram.input"] == pytest.approx(2 * (a.sram_macro_mm2 + 64 * a.sram_mm2_per_kib))  # 2 x 64 KiB
    assert got["sram.mask"] == pytest.approx(2 * (a.sram_macro_mm2 + 8 * a.sram_mm2_per_kib))
    assert got["sram.dvfs"] == pytest.approx(a.sram_macro_mm2 + 0.25 * a.sram_mm2_per_kib)
    assert got["envm"] == pytest.approx(64 * a.envm_mm2_per_mib)  # 64 MiB of ReRAM
    assert got["total"] == pytest.approx(sum(v for k, v in got.items() if k != "total"))
    ideal = area_mm2(load_config("ideal-256mac"))
    assert "sram" in ideal and not any(k.startswith("sram.") for k in ideal)  # one buffer
    assert ideal["sram"] == pytest.approx(0.005 + 4096 * 0.0026)


def test_area_scales_with_what_a_sweep_varies() -> None:
    data = tomllib.loads(bundled_config_text("ideal-256mac"))
    base = area_mm2(parse_config(data))
    data["pu"]["lanes"] = 32
    data["memory"]["sram"]["size_bytes"] = 1 << 21
    got = area_mm2(parse_config(data))
    assert got["pu.mac_af8"] == pytest.approx(2 * base["pu.mac_af8"])
    assert got["sram"] - 0.005 == pytest.approx((base["sram"] - 0.005) / 2)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("sram_mm2_per_kib", -1.0, r"area\.sram_mm2_per_kib': must be between 0 and"),
    ("envm_mm2_per_mib", math.nan, r"area\.envm_mm2_per_mib': must be a finite number"),
    ("mac_af8_um2", math.inf, r"area\.mac_af8_um2': must be a finite number"),
    ("ldo_mm2", "small", r"area\.ldo_mm2': expected a number"),
    ("gates_um2", 1.0, r"area\.gates_um2': unknown field"),
])
def test_invalid_area_fields_are_named(field: str, value: object, message: str) -> None:
    data = tomllib.loads(bundled_config_text("edgebert-cmod"))
    data["area"][field] = value
    with pytest.raises(HardwareConfigError, match=message):
        parse_config(data)


def test_an_area_table_needs_every_field() -> None:
    data = tomllib.loads(bundled_config_text("edgebert-cmod"))
    del data["area"]["ldo_mm2"]
    with pytest.raises(HardwareConfigError, match=r"area\.ldo_mm2': missing"):
        parse_config(data)


def test_area_is_optional_and_outside_the_fingerprint() -> None:
    data = tomllib.loads(bundled_config_text("ideal-256mac"))
    hw = parse_config(data)
    bare = copy.deepcopy(data)
    del bare["area"]
    no_area = parse_config(bare)
    assert no_area.area is None and area_mm2(no_area) is None
    assert no_area.fingerprint == hw.fingerprint  # area changes no cycle, byte or joule
    assert no_area != hw
    assert "[area]" not in to_toml(no_area)
    again = parse_config_text(to_toml(hw))
    assert again == hw and again.area == hw.area  # the generated TOML keeps the area table


def test_edgebert_emu_report_has_area(tmp_path: Path) -> None:
    hw = load_config("edgebert-cmod")
    code = [make("ld", dst=0, src=0, src_space=SPACES.index("dram"), rows=1, cols=16), make("halt")]
    prog = Program(code, metadata={"hw_name": hw.name, "hw_config": hw.toml_text()}, hw_fingerprint=hw.fingerprint)
    ebin, report = tmp_path / "p.ebin", tmp_path / "r.json"
    save_ebin(prog, ebin)
    assert emu_main([str(ebin), "--json", str(report), "-q"]) == 0
    r = json.loads(report.read_text())
    assert r["area_mm2"] == pytest.approx(area_mm2(hw))
    assert r["area_mm2"]["total"] > r["area_mm2"]["envm"] > 0
