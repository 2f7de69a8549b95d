"""Points of a sweep: one value per parameter, a stable id, and the grid and random strategies that list them."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgebert.emulator.sweep.spec import Domain, Spec, range_values


@dataclass(frozen=True)
class Point:
    """One design point: `values` by qualified parameter name ("workload" always among them), `labels` the same
    as text (the choice's label for labelled hardware groups). `index`: its place in the sweep (rows are sorted by
    it); `id`: a hash of the workload and the values, the key `--resume` matches rows by."""

    index: int
    values: dict[str, Any]
    labels: dict[str, str]

    @property
    def id(self) -> str:
        return point_id(self.values)

    @property
    def workload(self) -> str:
        return self.values["workload"]

    def group(self, prefix: str) -> dict[str, Any]:
        """The values of one parameter group ("hw.", "compiler.", "run.") without the prefix."""
        return {k.removeprefix(prefix): v for k, v in self.values.items() if k.startswith(prefix)}


def point_id(values: dict[str, Any]) -> str:
    """12 hex digits of SHA-256 over the canonical JSON of the values."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def make_point(spec: Spec, index: int, chosen: dict[str, tuple[Any, str]]) -> Point:
    """A point from {parameter: (value, label)}; the workload defaults to the only one."""
    values = {"workload": spec.workloads[0].name} | {k: v for k, (v, _) in chosen.items()}
    labels = {"workload": values["workload"]} | {k: lab for k, (_, lab) in chosen.items()}
    return Point(index, values, labels)


def grid_points(spec: Spec) -> list[Point]:
    """The cartesian product of every parameter's values: workloads outermost, run parameters innermost (points
    that share a program are adjacent)."""
    domains = spec.domains
    axes = [[(d.name, vl) for vl in d.grid_values()] for d in domains]
    return [make_point(spec, i, dict(combo)) for i, combo in enumerate(itertools.product(*axes))]


def sample_value(d: Domain, rng: np.random.Generator) -> tuple[Any, str]:
    """One value of a domain: a uniform choice, or uniform (log-uniform) over a range."""
    if not d.is_range:
        i = int(rng.integers(len(d.choices)))
        return d.choices[i], d.labels[i]
    if d.steps is not None:
        values = range_values(d, d.steps)
        v = values[int(rng.integers(len(values)))]
    elif d.log:
        v = math.exp(rng.uniform(math.log(d.low), math.log(d.high)))
    else:
        v = rng.uniform(d.low, d.high)
    v = int(round(v)) if d.integer else float(v)
    return v, f"{v:g}" if isinstance(v, float) else str(v)


def random_points(spec: Spec) -> list[Point]:
    """`spec.samples` distinct points drawn with `spec.seed` (fewer when the space is smaller)."""
    rng = np.random.default_rng(spec.seed)
    domains = spec.domains
    finite = all(not d.is_range or d.steps is not None for d in domains)
    size = math.prod(len(d.grid_values()) for d in domains) if finite else None
    want = min(spec.samples or 0, size) if size is not None else spec.samples or 0
    out: list[Point] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < want and attempts < 100 * want + 100:
        attempts += 1
        p = make_point(spec, len(out), {d.name: sample_value(d, rng) for d in domains})
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out
