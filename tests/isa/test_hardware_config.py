"""The hardware config: bundled names and files load, every invalid field is named (with the file), hostile
inputs end in one HardwareConfigError, the fingerprint tracks content, programs carry their config."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebert.emulator import run
from edgebert.isa.encoding import make
from edgebert.isa.errors import HardwareConfigError
from edgebert.isa.hardware import (
    DEFAULT_CONFIG,
    bundled_by_fingerprint,
    bundled_config_text,
    bundled_configs,
    default_config,
    load_config,
    parse_config,
    parse_config_text,
    to_toml,
)
from edgebert.isa.program import Program
from edgebert.isa.program_config import program_config, select_config
from edgebert.isa.table import FORMATS, SPACES

BUNDLED = ("edgebert-cmod", "ideal-256mac")


def _data(name: str = "ideal-256mac") -> dict:
    return tomllib.loads(bundled_config_text(name))


def _set(data: dict, path: tuple, value: object) -> dict:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def test_bundled_configs_load_by_name() -> None:
    assert set(BUNDLED) <= set(bundled_configs())
    for name in BUNDLED:
        hw = load_config(name)
        assert hw.name == name and hw.pu.vector_size == 16 and hw.pu.macs_per_cycle == 256  # VECTOR_SIZE=16 [A]
        assert bundled_by_fingerprint(hw.fingerprint) is hw
    assert default_config() is load_config(DEFAULT_CONFIG) is load_config(None)
    assert DEFAULT_CONFIG == "edgebert-cmod"  # the faithful machine (issue 12); ideal-256mac is kept for comparison
    cmod = load_config("edgebert-cmod")
    assert cmod.memory.sram.size_bytes == 2 * 65536 + 2 * 8192 + 4096 + 256  # the real buffer set [A]
    assert [(lo, b.name) for lo, _, b in cmod.memory.sram.regions("sram")] == [
        (0, "input"), (65536, "input"), (131072, "mask"), (139264, "mask"), (147456, "aux"), (151552, "dvfs")]


def test_load_config_takes_a_file_or_names_the_choices(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(bundled_config_text("edgebert-cmod").replace('name = "edgebert-cmod"', 'name = "mine"'))
    hw = load_config(str(path))
    assert hw.name == "mine" and hw.source == path.read_text()
    with pytest.raises(HardwareConfigError, match=r"unknown hardware config 'edgebert-fast' \(bundled: .*ideal-256mac"):
        load_config("edgebert-fast")
    with pytest.raises(HardwareConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    data = _data()
    assert parse_config(data).fingerprint == load_config("ideal-256mac").fingerprint
    changed = _set(copy.deepcopy(data), ("memory", "sram", "size_bytes"), 1 << 21)
    assert parse_config(changed).fingerprint != load_config("ideal-256mac").fingerprint
    assert parse_config(_data(DEFAULT_CONFIG)).fingerprint == default_config().fingerprint
    assert load_config("edgebert-cmod").fingerprint != load_config("ideal-256mac").fingerprint


@pytest.mark.parametrize("name", BUNDLED)
def test_generated_toml_round_trips(name: str) -> None:
    hw = load_config(name)
    again = parse_config_text(to_toml(hw))
    assert again == hw and again.fingerprint == hw.fingerprint
    assert hw.toml_text() == bundled_config_text(name)  # unchanged: the commented source itself
    derived = dataclasses.replace(hw, pu=dataclasses.replace(hw.pu, launch_cycles=0))
    assert parse_config_text(derived.toml_text()) == derived  # changed: generated


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("pu", "vector_size"), 0, r"pu\.vector_size': must be between 1 and 1024, got 0"),
        (("pu", "vector_size"), 2**64, r"pu\.vector_size': must be between 1 and 1024"),
        (("pu", "lanes"), 0, r"pu\.lanes'"),
        (("pu", "max_m"), 1, r"pu\.max_m': must be at least pu\.vector_size \(16\)"),
        (("pu", "max_k"), 15, r"pu\.max_k': must be at least pu\.vector_size"),
        (("pu", "operand_feed"), "psychic", r"pu\.operand_feed': must be one of serial, overlapped, free"),
        (("memory", "sram", "align_bytes"), 12, r"memory\.sram\.align_bytes': must be a power of two"),
        (("memory", "sram", "size_bytes"), 1 << 30, r"memory\.sram\.size_bytes': exceeds the 24-bit"),
        (("memory", "dram", "bandwidth"), "fast", r"memory\.dram\.bandwidth': expected an integer, got 'fast'"),
        (("memory", "dram", "read_pj_per_byte"), math.nan, r"memory\.dram\.read_pj_per_byte': must be a finite number"),
        (("energy", "mac_f32_pj"), math.inf, r"energy\.mac_f32_pj': must be a finite number"),
        (("energy", "mac_f32_pj"), -1.0, r"energy\.mac_f32_pj': must be between 0 and"),
        (("dvfs", "nominal"), 99, r"dvfs\.nominal': must index dvfs\.points"),
        (("dvfs", "points", 3, "mhz"), math.nan, r"dvfs\.points\[3\]\.mhz': must be a finite number"),
        (("dvfs", "points", 3, "volts"), math.inf, r"dvfs\.points\[3\]\.volts'"),
        (("dvfs", "points", 4, "mhz"), 450.0, r"dvfs\.points\[4\]': volts and mhz must both increase with the index"),
        (("dvfs", "points", 2, "volts"), 0.9, r"dvfs\.points\[3\]': volts and mhz must both increase"),
        (("sfu", "ops", "gelu", "passes"), 0, r"sfu\.ops\.gelu\.passes'"),
        (("sfu", "ops", "gelu", "reads"), {"l2": 1}, r"sfu\.ops\.gelu\.reads\.l2': not an SRAM buffer"),
        (("sfu", "ops", "warp"), {}, r"sfu\.ops\.warp': unknown \(known: vadd"),
        (("pu", "vector_size"), [[[[[[[[1]]]]]]]], r"pu\.vector_size': expected an integer, got \[\[\["),
    ],
)
def test_invalid_field_is_named(path: tuple, value: object, message: str) -> None:
    with pytest.raises(HardwareConfigError, match=message):
        parse_config(_set(_data(), path, value))


def test_matmul_limits_bound_the_instructions_a_compile_emits() -> None:
    data = _data()
    data["pu"].update(vector_size=4, lanes=4, max_m=4, max_k=4, max_n=4)
    with pytest.raises(HardwareConfigError, match=r"pu\.max_m': max_m x max_k x max_n must be at least 4096 MACs"):
        parse_config(data)
    data["pu"].update(max_m=8, max_k=24, max_n=40)  # a small PU that still tiles every dimension: accepted
    assert parse_config(data).pu.max_k == 24


def test_cmod_buffer_set_is_checked() -> None:
    data = _set(_data("edgebert-cmod"), ("memory", "sram", "size_bytes"), 131072)
    with pytest.raises(HardwareConfigError, match=r"memory\.sram\.buffers': buffers hold 151808 bytes"):
        parse_config(data)
    data = _set(_data("edgebert-cmod"), ("pu", "operand_buffer"), "l3")
    with pytest.raises(HardwareConfigError, match=r"pu\.operand_buffer': must name an SRAM buffer \(input, mask"):
        parse_config(data)


def test_unknown_and_missing_fields_are_named() -> None:
    data = _data()
    data["pu"]["warp_size"] = 32
    with pytest.raises(HardwareConfigError, match=r"pu\.warp_size.*unknown"):
        parse_config(data)
    data = _data()
    del data["memory"]["envm"]["latency_cycles"]
    with pytest.raises(HardwareConfigError, match=r"memory\.envm\.latency_cycles.*missing"):
        parse_config(data)
    data = _data()
    del data["sfu"]["ops"]["softmax"]
    with pytest.raises(HardwareConfigError, match=r"sfu\.ops\.softmax': missing"):
        parse_config(data)


def test_hostile_files_are_one_clear_error(tmp_path) -> None:
    cases = {
        "model.onnx": b"\x08\x07\x12\x07pytorch\x1a\x052.1.0\xff\xfe",  # what `--hw model.onnx` reads
        "nested.toml": b"x = " + b"[" * 100_000 + b"]" * 100_000,
        "deep.toml": ("[pu]\nvector_size = " + "[" * 400 + "]" * 400 + "\n").encode(),
        "bad.toml": b"name = [",
        "huge.toml": b"#" * (2 << 20),
    }
    expect = {
        "model.onnx": r"model\.onnx: not UTF-8 text \(byte 0xff at offset 18\)",
        "nested.toml": r"nested\.toml: invalid TOML",
        "deep.toml": r"deep\.toml: hardware config field",
        "bad.toml": r"bad\.toml: invalid TOML",
        "huge.toml": r"huge\.toml: larger than",
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(HardwareConfigError, match=expect[name]):
            load_config(str(tmp_path / name))
    with pytest.raises(HardwareConfigError, match="cannot read"):
        load_config(str(tmp_path))  # a directory


# ---- programs carry the config they were built for ---------------------------------------------------------------
def _custom() -> tuple[str, object]:
    text = bundled_config_text("edgebert-cmod").replace('name = "edgebert-cmod"', 'name = "cmod-slow-dram"')
    text = text.replace("latency_cycles = 0         # [M] zero-wait", "latency_cycles = 90        # [M] zero-wait")
    return text, parse_config_text(text)


def test_program_runs_on_its_embedded_config() -> None:
    text, hw = _custom()
    code = [make("ld", dst=0, src=0, src_space=SPACES.index("dram"), rows=1, cols=16), make("halt")]
    prog = Program(code, metadata={"hw_name": hw.name, "hw_config": text}, hw_fingerprint=hw.fingerprint)
    r = run(prog, {}).report
    assert r["hw"] == "cmod-slow-dram" and r["cycles"] == 8 + 90 + 64 // 8 + 5 + 1  # setup, latency, beats, burst, halt
    assert program_config({}, load_config("edgebert-cmod").fingerprint, "p") is load_config("edgebert-cmod")
    assert program_config({}, bytes(32), "p") is default_config()
    assert program_config({}, b"\x07" * 32, "p") is None


def test_embedded_config_is_validated() -> None:
    text, hw = _custom()
    with pytest.raises(HardwareConfigError, match=r"p\.ebin: metadata 'hw_config' \(cmod-slow-dram, fingerprint"):
        program_config({"hw_config": text}, load_config("ideal-256mac").fingerprint, "p.ebin")
    bad = text.replace("lanes = 16                 # [A] a 16x16", "lanes = 0                  # [A] a 16x16")
    with pytest.raises(HardwareConfigError, match=r"p\.ebin: metadata 'hw_config': hardware config field 'pu\.lanes'"):
        program_config({"hw_config": bad}, hw.fingerprint, "p.ebin")
    with pytest.raises(HardwareConfigError, match="must be the config's TOML text, not list"):
        program_config({"hw_config": [1]}, hw.fingerprint, "p.ebin")


def test_select_config_is_the_hw_rule_of_every_tool() -> None:
    text, hw = _custom()
    cmod = load_config("edgebert-cmod")
    assert select_config({"hw_config": text}, hw.fingerprint, "p.ebin", None) == (hw, "")
    assert select_config({}, cmod.fingerprint, "p.ebin", None) == (cmod, "")
    assert select_config({}, cmod.fingerprint, "p.ebin", "edgebert-cmod") == (cmod, "")
    chosen, warning = select_config({"hw_config": text}, hw.fingerprint, "p.ebin", "ideal-256mac")
    assert chosen is load_config("ideal-256mac")
    assert hw.fingerprint.hex()[:16] in warning and chosen.fingerprint.hex()[:16] in warning
    with pytest.raises(HardwareConfigError, match=r"p\.ebin was compiled for hardware config fingerprint 0707"):
        select_config({}, b"\x07" * 32, "p.ebin", None)


# ---- fuzz: mutated configs end in HardwareConfigError, or run a program with finite numbers ----------------------
def _leaves(node: object, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))] + ([path] if path else [])
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))] + [path]
    return [path]


BASES = {name: _data(name) for name in BUNDLED}
PATHS = {name: _leaves(data) for name, data in BASES.items()}
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, 15, 16, 17, 255, 256, 4096, 65535, 2**24, 2**32, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, 0.05, 1.0, 900.0]),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["serial", "overlapped", "free", "input", "aux", "sram"]),
    st.lists(st.integers(0, 3), max_size=3),
    st.recursive(st.integers(0, 3), lambda inner: st.lists(inner, max_size=2), max_leaves=6),
    st.dictionaries(st.sampled_from(["input", "aux", "x", "volts", "mhz"]), st.integers(-1, 300), max_size=2),
)
FUZZ_PROGRAM = [
    make("ld", dst=0, src=0, src_space=SPACES.index("dram"), rows=4, cols=16, dtype=1),
    make("matmul", dst=0x400, a=0, b=0, m=4, k=16, n=4, a_fmt=FORMATS.index("af8"), b_fmt=FORMATS.index("af8")),
    make("vadd", dst=0x600, a=0x400, b=0x400, rows=4, cols=4),
    make("layernorm", dst=0x700, src=0x400, gamma=0x600, beta=0x600, rows=4, cols=4),
    make("softmax", dst=0x800, src=0x400, rows=4, cols=4),
    make("entropy", fd=1, src=0x400, n=4),
    make("lut", rd=1, fs=1, table=0x900, nbins=2, scale=0x3F800000),
    make("dvfs", point=0),
    make("st", dst=0x1000, dst_space=SPACES.index("dram"), src=0x800, rows=4, cols=4),
    make("halt"),
]


def _finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BUNDLED), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 5), VALUES), min_size=1,
                                          max_size=3))
def test_fuzzed_configs_fail_cleanly_or_run_finitely(base: str, mutations: list) -> None:
    data = copy.deepcopy(BASES[base])
    for pick, action, value in mutations:
        path = PATHS[base][pick % len(PATHS[base])]
        try:
            node = data
            for key in path[:-1]:
                node = node[key]
            if action == 0 and isinstance(node, dict):
                node.pop(path[-1], None)
            elif action == 1 and isinstance(node, dict):
                node[f"extra{pick % 3}"] = value
            elif action >= 3 and type(node[path[-1]]) in (int, float):  # a plausible nearby value
                old = node[path[-1]]
                node[path[-1]] = type(old)(old * (pick % 7) / 3 + (pick % 5) - 1)
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced this path's parent
    try:
        hw = parse_config(data)
    except HardwareConfigError as exc:
        assert str(exc).startswith("hardware config")
        return
    r = run(Program(list(FUZZ_PROGRAM)), {}, hw, raise_on_trap=False, max_cycles=10**12).report
    assert _finite(r), r
    json.dumps(r, allow_nan=False)  # strict JSON


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(BUNDLED), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                                          max_size=4))
def test_byte_mutated_config_text_fails_cleanly(base: str, flips: list) -> None:
    raw = bytearray(bundled_config_text(base).encode())
    for at, byte in flips:
        raw[at % len(raw)] = byte
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        hw = parse_config_text(text, "mutant")
    except HardwareConfigError as exc:
        assert str(exc).startswith("mutant: ")
        return
    assert math.isfinite(hw.dvfs.nominal_point.mhz)
