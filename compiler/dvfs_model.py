"""The additive latency and energy model of one sentence under latency-aware DVFS (what the planner optimises).

A sentence that exits after layer e runs: the prologue and layer 1 at the layer-1 point s; if e > 1, layers 2 .. p at
q (p its predicted exit layer); `recover`: past a low prediction (e > p), layers p+1 .. e at the recovery point r;
`forced`: e <= p always. The epilogue runs at the last point. Each change of point (the first from the reset point
`hw.dvfs.initial` to s) costs `dvfs.switch_ns` at the new point and `dvfs.switch_nj`. Cycles do not depend on the
point (every level's bandwidth is per core cycle). Energy per part at point x, as the emulator charges it
(emulator/energy.py): dynamic x (Vx / Vnom)^2 + fixed (levels that do not scale with voltage) + leakage x (Vx / Vnom)
x time.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebert.isa.hardware import HardwareConfig


@dataclass(frozen=True)
class LayerCycles:
    """Core cycles of the program's parts (at any clock: cycles do not depend on the operating point)."""

    prologue: int  # before layer 1 (embedding)
    layer: int  # one layer and its exit head
    epilogue: int  # after the loop (final store, exit word)
    spread: int = 0  # the longest layer minus the shortest: where the model puts a layer boundary, up to this early
    layers: int = 0  # the program's layers (0: unknown)
    last_epilogue: int = 0  # after the last layer when no exit is taken (its way out of the loop); 0: `epilogue`

    def epilogue_after(self, exit_layer: int) -> int:
        """The epilogue of a sentence that exits after `exit_layer` (runs every layer when it is the last)."""
        return self.last_epilogue if self.layers and exit_layer >= self.layers and self.last_epilogue else self.epilogue


@dataclass(frozen=True)
class PartEnergy:
    """Energy of the program's parts at the nominal point, J: `*_dyn` scales with V^2, `*_fixed` does not (e.g.
    DRAM); leakage is charged from the time spent when `leakage` (hw.energy.leakage_mw x V / Vnom)."""

    first_dyn: float  # prologue + layer 1 with its exit head
    layer_dyn: float  # one more layer with its exit head
    epilogue_dyn: float
    first_fixed: float = 0.0
    layer_fixed: float = 0.0
    epilogue_fixed: float = 0.0
    leakage: bool = True

    @classmethod
    def dynamic_only(cls, cycles: LayerCycles) -> PartEnergy:
        """No measurement: 1 pJ of dynamic energy per cycle and no leakage (the slowest admissible point is then
        the cheapest)."""
        return cls((cycles.prologue + cycles.layer) * 1e-12, cycles.layer * 1e-12, cycles.epilogue * 1e-12,
                   leakage=False)

    def to_json(self) -> dict[str, float | bool]:
        return {"first_dyn_j": self.first_dyn, "layer_dyn_j": self.layer_dyn, "epilogue_dyn_j": self.epilogue_dyn,
                "first_fixed_j": self.first_fixed, "layer_fixed_j": self.layer_fixed,
                "epilogue_fixed_j": self.epilogue_fixed, "leakage": self.leakage}


def fastest_point(hw: HardwareConfig) -> int:
    """Index of the fastest operating point (highest MHz, then lowest volts)."""
    pts = hw.dvfs.points
    return max(range(len(pts)), key=lambda i: (pts[i].mhz, -pts[i].volts))


def by_speed(hw: HardwareConfig) -> list[int]:
    """Operating points from slowest (lowest MHz, then lowest volts) to fastest."""
    pts = hw.dvfs.points
    return sorted(range(len(pts)), key=lambda i: (pts[i].mhz, pts[i].volts))


@dataclass(frozen=True)
class Path:
    """Where a sentence spends its cycles: per point (cycles, dynamic J, fixed J), and the points switched into."""

    parts: dict[int, tuple[int, float, float]]
    switches: tuple[int, ...]


def sentence_path(cycles: LayerCycles, energy: PartEnergy | None, first: int, q: int, r: int, predicted: int,
                  exit_layer: int, *, policy: str = "recover", initial: int | None = None) -> Path:
    """The module docstring's execution of one sentence (energy None: cycles only)."""
    P, C, E = cycles.prologue, cycles.layer, cycles.epilogue_after(exit_layer)
    en = energy or PartEnergy(0.0, 0.0, 0.0)
    parts: dict[int, list] = {}

    def add(x: int, c: int, dyn: float, fixed: float) -> None:
        acc = parts.setdefault(x, [0, 0.0, 0.0])
        acc[0] += c
        acc[1] += dyn
        acc[2] += fixed

    switches = [first] if initial is not None and first != initial else []
    e, p = exit_layer, predicted
    add(first, P + C, en.first_dyn, en.first_fixed)
    last = first
    if e > 1:
        if q != first:
            switches.append(q)
        if policy == "forced" or e <= p:
            add(q, (e - 1) * C, (e - 1) * en.layer_dyn, (e - 1) * en.layer_fixed)
            last = q
        else:
            add(q, (p - 1) * C, (p - 1) * en.layer_dyn, (p - 1) * en.layer_fixed)
            if r != q:
                switches.append(r)
            add(r, (e - p) * C, (e - p) * en.layer_dyn, (e - p) * en.layer_fixed)
            last = r
    extra = (E - cycles.epilogue) / C if C else 0.0  # a longer way out: charged as that share of a layer
    add(last, E, en.epilogue_dyn + extra * en.layer_dyn, en.epilogue_fixed + extra * en.layer_fixed)
    return Path({x: (v[0], v[1], v[2]) for x, v in parts.items()}, tuple(switches))


def path_seconds(hw: HardwareConfig, path: Path) -> float:
    """Latency of a path: cycles summed per point, then divided by its clock (an all-fastest path is exactly
    `all_fastest_s`), plus the switching latency."""
    pts = hw.dvfs.points
    return sum(c / (pts[x].mhz * 1e6) for x, (c, _, _) in path.parts.items()) + len(path.switches) * hw.dvfs.switch_ns * 1e-9


def path_joules(hw: HardwareConfig, path: Path, leakage: bool = True) -> float:
    """Energy of a path as the emulator charges it (module docstring), switches included."""
    pts, vn = hw.dvfs.points, hw.dvfs.nominal_point.volts
    leak = hw.energy.leakage_mw * 1e-3 if leakage else 0.0
    total = 0.0
    for x, (c, dyn, fixed) in path.parts.items():
        ratio = pts[x].volts / vn
        total += dyn * ratio * ratio + fixed + leak * ratio * c / (pts[x].mhz * 1e6)
    for x in path.switches:
        total += hw.dvfs.switch_nj * 1e-9 + leak * pts[x].volts / vn * hw.dvfs.switch_ns * 1e-9
    return total


def sentence_latency_s(hw: HardwareConfig, cycles: LayerCycles, first: int, q: int, r: int, predicted: int,
                       exit_layer: int, *, policy: str = "recover") -> float:
    """Modelled latency of one sentence (layer 1 at `first`, the reset point `hw.dvfs.initial`)."""
    return path_seconds(hw, sentence_path(cycles, None, first, q, r, predicted, exit_layer, policy=policy,
                                          initial=hw.dvfs.initial))


def sentence_energy_j(hw: HardwareConfig, cycles: LayerCycles, energy: PartEnergy, first: int, q: int, r: int,
                      predicted: int, exit_layer: int, *, policy: str = "recover") -> float:
    """Modelled energy of one sentence (layer 1 at `first`, the reset point `hw.dvfs.initial`)."""
    path = sentence_path(cycles, energy, first, q, r, predicted, exit_layer, policy=policy, initial=hw.dvfs.initial)
    return path_joules(hw, path, energy.leakage)


def all_fastest_s(hw: HardwareConfig, cycles: LayerCycles, fastest: int, exit_layer: int) -> float:
    """Latency of a sentence exiting after `exit_layer` with every layer at the fastest point."""
    return (cycles.prologue + exit_layer * cycles.layer + cycles.epilogue_after(exit_layer)) / \
        (hw.dvfs.points[fastest].mhz * 1e6)
