"""A point's hardware configs: the one it runs on (the base config with its overrides, re-validated) and the one its
program is compiled for (the same with the fields the compile does not read taken from the base: points that differ
only in area, or only in energies when no DVFS plan is compiled, share one program)."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass
from typing import Any

from edgebert.emulator.sweep.space import Point
from edgebert.emulator.sweep.spec import Spec, apply_overrides, resolve_path
from edgebert.isa.hardware import LEVELS, HardwareConfig, parse_config

#: Fields no compile reads: area only prices the silicon.
RUN_ONLY_FIELDS = ("area",)
#: Fields only the DVFS planner reads (it picks the least-energy operating points, compiler/dvfs_model.py); a program
#: without a latency target is the same whatever they hold (tests/sweep/test_sweep_spec.py).
ENERGY_FIELDS = ("energy", "dvfs.switch_nj", *(f"memory.{lv}.{f}" for lv in LEVELS
                                               for f in ("read_pj_per_byte", "write_pj_per_byte", "scales_with_voltage")))


@dataclass(frozen=True)
class PointConfigs:
    run: HardwareConfig
    compile: HardwareConfig


def hardware_overrides(spec: Spec, point: Point) -> dict[str, Any]:
    """{dotted path: value} the point sets, in spec order (a labelled group sets several)."""
    out: dict[str, Any] = {}
    for d in spec.hardware:
        value = point.values[d.name]
        out.update(value if d.grouped else {d.name.removeprefix("hw."): value})
    return out


def _named(data: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """`data` named after the base config, plus a digest of its content when it differs from the base."""
    if data == base:
        return data
    body = {k: v for k, v in data.items() if k != "name"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return {**data, "name": f"{base['name']}+{digest}"}


def compile_view(data: dict[str, Any], base: dict[str, Any], plans_dvfs: bool = False) -> dict[str, Any]:
    """`data` with every field the compile does not read as in `base` (absent when the base has none): area, and
    the energies too unless the compile plans DVFS (`plans_dvfs`: a latency target)."""
    out = copy.deepcopy(data)
    for path in RUN_ONLY_FIELDS + (() if plans_dvfs else ENERGY_FIELDS):
        try:
            container, key = resolve_path(out, path)
        except KeyError:
            container = key = None
        try:
            base_container, base_key = resolve_path(base, path)
            value = copy.deepcopy(base_container[base_key])
        except KeyError:
            if container is not None:
                del container[key]
            continue
        if container is not None:
            container[key] = value
    return out


def point_configs(spec: Spec, point: Point, plans_dvfs: bool = False) -> PointConfigs:
    """Both configs of a point; HardwareConfigError (naming the field) when an override makes the config invalid.
    `plans_dvfs`: the point's compile has a latency target (its DVFS plan depends on the energies)."""
    base = tomllib.loads(spec.base_hw_text)
    data = apply_overrides(base, hardware_overrides(spec, point))

    def build(d: dict[str, Any]) -> HardwareConfig:  # the base keeps its commented text (what edgebertc embeds)
        return parse_config(base, spec.base_hw_text) if d == base else parse_config(_named(d, base))

    run = build(data)
    view = compile_view(data, base, plans_dvfs)
    return PointConfigs(run, run if view == data else build(view))
