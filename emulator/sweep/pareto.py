"""Pareto fronts of a sweep (energy per sentence vs p90 latency, and vs area; all minimised) and `pareto.png`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENERGY, LATENCY, AREA = "energy_per_sentence_j", "latency_p90_s", "area_mm2.total"
#: (row flag, x column, x axis label, x scale to the plotted unit)
FRONTS = (("pareto.latency", LATENCY, "p90 latency per sentence (ms)", 1e3),
          ("pareto.area", AREA, "area (mm$^2$)", 1.0))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which points no other point dominates (<= in both coordinates, < in one); equal points are all kept."""
    out = []
    for i, (x, y) in enumerate(points):
        out.append(not any((a <= x and b <= y) and (a < x or b < y) for j, (a, b) in enumerate(points) if j != i))
    return out


def _finite(row: dict[str, Any], *cols: str) -> bool:
    return all(isinstance(row.get(c), (int, float)) and math.isfinite(row[c]) for c in cols)


def mark_fronts(rows: list[dict[str, Any]]) -> None:
    """Set `pareto.latency` and `pareto.area` on every row: True on the front of the ok rows."""
    for flag, x, _, _ in FRONTS:
        ok = [r for r in rows if r.get("status") == "ok" and _finite(r, x, ENERGY)]
        for r in rows:
            r[flag] = False
        for r, on in zip(ok, pareto_front([(r[x], r[ENERGY]) for r in ok]), strict=True):
            r[flag] = on


def varying_parameters(rows: list[dict[str, Any]]) -> list[str]:
    """The parameter columns whose value differs between rows."""
    params = [c for c in rows[0] if c == "workload" or c.startswith(("hw.", "compiler.", "run."))] if rows else []
    return [c for c in params if len({str(r.get(c)) for r in rows}) > 1]


def _time_unit(seconds: list[float]) -> tuple[float, str]:
    """A scale and unit name that keeps latencies readable (ms, or us for tiny models)."""
    return (1e3, "ms") if not seconds or max(seconds) >= 1e-3 else (1e6, "$\\mu$s")


def _front_groups(front: list[dict[str, Any]], x: str) -> list[list[dict[str, Any]]]:
    """Front points with equal coordinates grouped (one label each)."""
    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for r in front:
        groups.setdefault((r[x], r[ENERGY]), []).append(r)
    return list(groups.values())


def plot_fronts(rows: list[dict[str, Any]], path: Path, title: str, max_lines: int = 10) -> None:
    """Energy per sentence vs p90 latency and vs area: ok points, infeasible points that were measured (hollow), the
    Pareto front of the ok ones in red, each labelled #point (points with equal coordinates share a label); the
    parameters of the front's points are listed underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varying = varying_parameters(rows)
    lat_scale, lat_unit = _time_unit([r[LATENCY] for r in rows if _finite(r, LATENCY)])
    listed: dict[int, list[int]] = {}  # first point of a front group -> the others
    plots = []
    for flag, x, xlabel, scale in FRONTS:
        if x == LATENCY:
            scale, xlabel = lat_scale, f"p90 latency per sentence ({lat_unit})"
        ok = [r for r in rows if r.get("status") == "ok" and _finite(r, x, ENERGY)]
        measured = [r for r in rows if r.get("status") == "infeasible" and _finite(r, x, ENERGY)]
        groups = _front_groups(sorted((r for r in ok if r.get(flag)), key=lambda r: (r[x], r[ENERGY])), x)
        for g in groups:
            listed.setdefault(g[0]["point"], [r["point"] for r in g[1:]])
        plots.append((x, xlabel, scale, ok, measured, groups))
    lines = [f"#{i}" + (f" (= {' '.join(f'#{j}' for j in same[:6])}{' ...' if len(same) > 6 else ''})" if same else "")
             + ": " + ", ".join(f"{c.split('.', 1)[-1] if c != 'workload' else c}={_row(rows, i).get(c)}"
                                for c in varying)
             for i, same in sorted(listed.items())]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"... and {len(lines) - max_lines + 1} more (results.csv: pareto.*)"]
    text_in = 0.125 * len(lines) + 0.1 if lines else 0.0
    height = 4.2 + text_in
    fig, axes = plt.subplots(1, 2, figsize=(11, height))
    for ax, (x, xlabel, scale, ok, measured, groups) in zip(axes, plots, strict=True):
        ax.scatter([r[x] * scale for r in measured], [r[ENERGY] * 1e6 for r in measured], s=22, facecolors="none",
                   edgecolors="0.6", label="infeasible (measured)")
        ax.scatter([r[x] * scale for r in ok], [r[ENERGY] * 1e6 for r in ok], s=18, color="0.45", label="ok")
        ax.plot([g[0][x] * scale for g in groups], [g[0][ENERGY] * 1e6 for g in groups], "-o", color="tab:red",
                ms=5, label="Pareto front")
        for g in groups:
            ax.annotate(f"#{g[0]['point']}", (g[0][x] * scale, g[0][ENERGY] * 1e6), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color="tab:red")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("energy per sentence ($\\mu$J)")
        ax.grid(alpha=0.3)
        if not ok:
            ax.text(0.5, 0.5, "no feasible point", transform=ax.transAxes, ha="center")
    axes[0].legend(fontsize=7, loc="best")
    counts = {s: sum(1 for r in rows if r.get("status") == s) for s in ("ok", "infeasible", "error")}
    fig.suptitle(f"{title}: {len(rows)} points ({counts['ok']} ok, {counts['infeasible']} infeasible, "
                 f"{counts['error']} errors)", fontsize=10)
    if lines:
        fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, family="monospace", va="bottom")
    fig.tight_layout(rect=(0, text_in / height, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _row(rows: list[dict[str, Any]], point: int) -> dict[str, Any]:
    return next(r for r in rows if r["point"] == point)
