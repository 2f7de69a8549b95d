"""A point's hardware configs: the one it runs on (the base config with its overrides, re-validated) and the one its
program is compiled for (the same with the run-only fields of the base: points that differ only in energies or
area share one program)."""

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

#: Fields the compiler never reads (it reads sizes, bandwidths, cycle costs and DVFS points; energies and area only
#: price what runs): varying them does not change a program's code or data (tests/sweep/test_point_configs.py).
RUN_ONLY_FIELDS = ("energy", "area", "dvfs.switch_nj", *(f"memory.{lv}.{f}" for lv in LEVELS
                                                         for f in ("read_pj_per_byte", "write_pj_per_byte",
                                                                   "scales_with_voltage")))


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


def compile_view(data: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """`data` with every run-only field as in `base` (absent when the base has none)."""
    out = copy.deepcopy(data)
    for path in RUN_ONLY_FIELDS:
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


def point_configs(spec: Spec, point: Point) -> PointConfigs:
    """Both configs of a point; HardwareConfigError (naming the field) when an override makes the config invalid."""
    base = tomllib.loads(spec.base_hw_text)
    data = apply_overrides(base, hardware_overrides(spec, point))

    def build(d: dict[str, Any]) -> HardwareConfig:  # the base keeps its commented text (what edgebertc embeds)
        return parse_config(base, spec.base_hw_text) if d == base else parse_config(_named(d, base))

    run = build(data)
    view = compile_view(data, base)
    return PointConfigs(run, run if view == data else build(view))
