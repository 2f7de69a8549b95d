"""The hardware config: default loads, every invalid field is named, fingerprint tracks content."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

import pytest

from edgebert.isa.errors import HardwareConfigError
from edgebert.isa.hardware import default_config, load_config, parse_config


def _default_data() -> dict:
    return tomllib.loads(resources.files("edgebert.isa").joinpath("hardware.toml").read_text())


def test_default_config_values_from_hardware_md() -> None:
    hw = default_config()
    assert hw.pu.vector_size == 16  # VECTOR_SIZE=16 in the artifact
    assert hw.pu.macs_per_cycle == 256
    assert hw.dvfs.nominal_point.volts == pytest.approx(0.8)
    assert len(hw.fingerprint) == 32


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    data = _default_data()
    assert parse_config(data).fingerprint == default_config().fingerprint
    changed = copy.deepcopy(data)
    changed["memory"]["sram"]["size_bytes"] *= 2
    assert parse_config(changed).fingerprint != default_config().fingerprint


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("pu", "vector_size"), 0, "pu.vector_size"),
        (("memory", "sram", "align_bytes"), 12, "memory.sram.align_bytes"),
        (("memory", "sram", "size_bytes"), 1 << 30, "memory.sram.size_bytes"),
        (("memory", "dram", "bandwidth"), "fast", "memory.dram.bandwidth"),
        (("dvfs", "nominal"), 99, "dvfs.nominal"),
        (("sfu", "passes", "gelu"), 0, "sfu.passes.gelu"),
        (("energy", "mac_f32_pj"), -1.0, "energy.mac_f32_pj"),
    ],
)
def test_invalid_field_is_named(path: tuple[str, ...], value: object, message: str) -> None:
    data = _default_data()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(HardwareConfigError, match=message.replace(".", r"\.")):
        parse_config(data)


def test_unknown_and_missing_fields_are_named(tmp_path) -> None:
    data = _default_data()
    data["pu"]["warp_size"] = 32
    with pytest.raises(HardwareConfigError, match=r"pu\.warp_size.*unknown"):
        parse_config(data)
    data = _default_data()
    del data["memory"]["envm"]["latency_cycles"]
    with pytest.raises(HardwareConfigError, match=r"memory\.envm\.latency_cycles.*missing"):
        parse_config(data)


def test_load_config_reports_file(tmp_path) -> None:
    bad = tmp_path / "hw.toml"
    bad.write_text("name = [")
    with pytest.raises(HardwareConfigError, match="hw.toml: invalid TOML"):
        load_config(bad)
    with pytest.raises(HardwareConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
