"""The sweep spec and its points without Ray: validation errors name the key, grid and random points are stable,
hardware overrides re-validate (a bad value is an infeasible point), run-only fields share a program."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sweep_cases import TINY_BUILD, write_spec

from edgebert.emulator.sweep import SweepSpecError, load_spec
from edgebert.emulator.sweep.evaluate import compile_key, compile_program, compile_settings
from edgebert.emulator.sweep.point_configs import compile_view, point_configs
from edgebert.emulator.sweep.space import grid_points, random_points
from edgebert.emulator.sweep.sweep_cli import main
from edgebert.emulator.sweep.workloads import resolve
from edgebert.isa.errors import HardwareConfigError
from edgebert.isa.hardware import bundled_config_text, load_config

GRID = """
[sweep]
strategy = "grid"
[hardware.params]
"pu.lanes" = [8, 16]
"energy.leakage_mw" = [5.0, 1.0]
[hardware.params.dvfs.narrow]
"dvfs.points" = [{ volts = 0.6, mhz = 400.0 }, { volts = 0.8, mhz = 800.0 }]
"dvfs.nominal" = 1
"dvfs.initial" = 1
[hardware.params.dvfs.base]
"dvfs.nominal" = 6
[compiler.params]
latency_target = ["40us", "none"]
[run.params]
mode = ["ee+dvfs", "no-exit"]
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spec")


def test_grid_points_cover_the_product_in_order(folder: Path) -> None:
    spec = load_spec(write_spec(folder, GRID))
    points = grid_points(spec)
    assert len(points) == 2 * 2 * 2 * 2 * 2
    assert [p.index for p in points] == list(range(32))
    assert len({p.id for p in points}) == 32 and points[0].id == grid_points(spec)[0].id  # stable ids
    assert points[0].values == {"workload": "tiny", "hw.pu.lanes": 8, "hw.energy.leakage_mw": 5.0,
                                "hw.dvfs": points[0].values["hw.dvfs"], "compiler.latency_target": "40us",
                                "run.mode": "ee+dvfs"}
    assert points[0].labels["hw.dvfs"] == "narrow" and points[1].values["run.mode"] == "no-exit"  # run innermost


def test_random_points_are_seeded_and_distinct(folder: Path) -> None:
    body = GRID.replace('strategy = "grid"', 'strategy = "random"\nseed = 3\nsamples = 5')
    body = body.replace('"energy.leakage_mw" = [5.0, 1.0]', '"energy.leakage_mw" = { low = 0.5, high = 8.0, log = true }')
    spec = load_spec(write_spec(folder, body, name="random.toml"))
    a, b = random_points(spec), random_points(spec)
    assert [p.values for p in a] == [p.values for p in b] and len({p.id for p in a}) == 5
    assert all(0.5 <= p.values["hw.energy.leakage_mw"] <= 8.0 for p in a)
    small = load_spec(write_spec(folder, '[sweep]\nstrategy = "random"\nsamples = 50\n[hardware.params]\n'
                                 '"pu.lanes" = [8, 16]', name="small.toml"))
    assert len(random_points(small)) == 2  # the whole space is smaller than the samples asked for


@pytest.mark.parametrize(("body", "message"), [
    ('[sweep]\nstrategy = "exhaustive"', r"sweep\.strategy: 'exhaustive' is not one of grid, random, optuna"),
    ('[sweep]\nstrategy = "random"', r"sweep\.samples: the random strategy needs samples"),
    ('[hardware.params]\n"pu.lanz" = [8]', r"\[hardware\.params\] 'pu\.lanz': not a field of the base config"),
    ('[hardware.params]\n"pu.lanes" = { low = 1, high = 8 }', r"hw\.pu\.lanes: a grid over a range needs steps"),
    ('[hardware.params]\n"pu.lanes" = []', r"'pu\.lanes': needs at least one value"),
    ('[compiler.params]\nlatency_target = ["fast"]', r"latency_target'\[0\]: bad duration 'fast'"),
    ('[compiler.params]\nunroll = [true]', r"compiler\.params\.unroll: unknown key"),
    ('[run.params]\nmode = ["turbo"]', r"\[run\.params\] 'mode': values must be among no-exit, early-exit, ee\+dvfs"),
    ('[sweep]\nobjectives = ["joy"]', r"sweep\.objectives: unknown objective 'joy'"),
    ('[hardware]\nbase = "nope.toml"', r"hardware\.base: .*nope\.toml: no such file"),
    ("[extra]\nx = 1", r"extra: unknown table"),
])
def test_spec_errors_name_the_key(folder: Path, body: str, message: str) -> None:
    with pytest.raises(SweepSpecError, match=message):
        load_spec(write_spec(folder, body, name="bad.toml"))


def test_workload_errors(folder: Path) -> None:
    with pytest.raises(SweepSpecError, match=r"'w': give exactly one of entropy_trace .* and inputs"):
        load_spec(write_spec(folder, "", f'[[workloads]]\nname = "w"\n{TINY_BUILD}\n', name="w.toml"))
    with pytest.raises(SweepSpecError, match=r"'w'\.build: 'layer' is not a build option"):
        load_spec(write_spec(folder, "", '[[workloads]]\nname = "w"\nbuild = { layer = 3 }\n'
                                         'entropy_trace = "generated"\n', name="w.toml"))
    with pytest.raises(SweepSpecError, match=r"'w'\.model: .*missing\.onnx: no such file"):
        load_spec(write_spec(folder, "", '[[workloads]]\nname = "w"\nmodel = "missing.onnx"\n'
                                         'entropy_trace = "t.txt"\n', name="w.toml"))


def test_cli_reports_a_bad_spec_in_one_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_spec(folder, '[sweep]\nstrategy = "exhaustive"', name="cli.toml")
    assert main([str(bad), "-o", str(folder / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgebert-sweep: error: ") and "sweep.strategy" in err[0]


def test_overrides_revalidate_and_run_only_fields_share_a_program(folder: Path) -> None:
    body = GRID.replace('"pu.lanes" = [8, 16]', '"pu.lanes" = [0, 16]')
    spec = load_spec(write_spec(folder, body, name="over.toml"))
    points = grid_points(spec)
    with pytest.raises(HardwareConfigError, match=r"pu\.lanes': must be between 1 and 4096, got 0"):
        point_configs(spec, points[0])  # an infeasible row, not a spec error
    payloads = resolve(spec, folder / "cache")
    p = payloads["tiny"]
    by_leak = {}
    for point in points:
        if point.values["hw.pu.lanes"] == 16 and point.labels["hw.dvfs"] == "base":
            settings = compile_settings(p, point)
            cfg = point_configs(spec, point, plans_dvfs=settings["latency_target_s"] is not None)
            key = compile_key(p, settings, cfg.compile)
            by_leak.setdefault(point.values["compiler.latency_target"], set()).add((key, cfg.run.energy.leakage_mw))
    assert set(by_leak) == {"40us", "none"}
    # leakage 5.0 and 1.0: two run configs; one program without a DVFS plan, two with one (the plan weighs energies)
    assert len(by_leak["none"]) == 2 and len({k for k, _ in by_leak["none"]}) == 1
    assert len(by_leak["40us"]) == 2 and len({k for k, _ in by_leak["40us"]}) == 2
    base = tomllib.loads(bundled_config_text("ideal-256mac"))
    changed = tomllib.loads(bundled_config_text("ideal-256mac"))
    changed["energy"]["mac_af8_pj"] = 9.0
    changed["memory"]["sram"]["read_pj_per_byte"] = 3.0
    changed["pu"]["lanes"] = 32
    view = compile_view(changed, base)
    assert view["energy"] == base["energy"] and view["memory"]["sram"]["read_pj_per_byte"] == 0.5
    assert view["pu"]["lanes"] == 32


def test_the_compiler_ignores_run_only_fields(folder: Path) -> None:
    """What RUN_ONLY_FIELDS and ENERGY_FIELDS claim: without a DVFS plan, energies and area change neither the code
    nor the data of a program."""
    spec = load_spec(write_spec(folder, "[sweep]\nstrategy = \"grid\"", name="plain.toml"))
    payload = resolve(spec, folder / "cache")["tiny"]
    point = grid_points(spec)[0]
    settings = compile_settings(payload, point) | {"latency_target_s": None, "predictor": None}
    data = tomllib.loads(bundled_config_text("ideal-256mac"))
    for section in ("energy", "area"):
        data[section] = {k: v * 3 + 1 for k, v in data[section].items()}
    data["dvfs"]["switch_nj"] = 99.0
    for level in ("sram", "envm", "dram"):
        data["memory"][level]["read_pj_per_byte"] = 7.5
        data["memory"][level]["scales_with_voltage"] = not data["memory"][level]["scales_with_voltage"]
    data["name"] = "energies-changed"
    from edgebert.isa.hardware import parse_config

    a = compile_program(payload, settings, load_config("ideal-256mac"))
    b = compile_program(payload, settings, parse_config(data))
    assert a.code == b.code
    assert [(s.name, s.space, s.address, s.data) for s in a.segments] == [
        (s.name, s.space, s.address, s.data) for s in b.segments]
    assert a.metadata["hw_config"] != b.metadata["hw_config"]  # only the embedded config differs
