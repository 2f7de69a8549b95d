"""Plots of run reports (matplotlib, Agg backend; imported only when plotting): the house style every figure uses
(`paper_style`), saving (`save_figure`: .png, or .svg / .pdf vector with text kept as text), and the figure of one
run (`plot_energy`: energy per component, per op class with its roofline bound, per layer)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgebert.isa.errors import EdgebertError
from edgebert.isa.safe_io import write_atomic
from edgebert.isa.units import ENERGY_UNITS, TIME_UNITS, format_energy, format_time, pick_unit

#: Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale by lightness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: rc settings of every edgebert figure: sizes that survive a one-column reduction, no chart junk, text kept as text
#: in SVG/PDF (TrueType in PDF, as publishers ask), reproducible vector bytes.
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "figure.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6, "axes.axisbelow": True, "lines.linewidth": 1.6,
    "legend.frameon": False, "savefig.dpi": 200, "figure.dpi": 100, "pdf.fonttype": 42, "ps.fonttype": 42,
    "svg.fonttype": "none", "svg.hashsalt": "edgebert",
}


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def paper_style() -> Iterator[Any]:
    """pyplot with the house style (STYLE, PALETTE as the colour cycle) for the figures drawn inside."""
    plt = pyplot()
    from cycler import cycler

    with plt.rc_context(STYLE | {"axes.prop_cycle": cycler(color=PALETTE)}):
        yield plt


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> None:
    """Write `fig` (atomically; the format from the suffix; vector formats without a timestamp, so the same figure
    gives the same bytes) and close it; an unwritable path or an unknown format is an EdgebertError naming it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    stamp = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(suffix)
    if stamp and "metadata" not in kwargs:
        kwargs["metadata"] = stamp
    try:
        fig.savefig(buf, format=suffix, bbox_inches="tight", **kwargs)
    except ValueError as exc:  # an image format matplotlib does not know
        raise EdgebertError(f"{path}: cannot draw the plot: {exc}") from None
    finally:
        plt.close(fig)
    write_atomic(path, buf.getvalue())


def label_bars(ax: Any, bars: Any, texts: Sequence[str], horizontal: bool = True) -> None:
    """Write each bar's value beside its end (outside the bar, so short bars stay readable)."""
    for bar, text in zip(bars, texts, strict=True):
        if horizontal:
            ax.annotate(text, (bar.get_x() + bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                        textcoords="offset points", va="center", ha="left", fontsize=7)
        else:
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height()), xytext=(0, 2),
                        textcoords="offset points", va="bottom", ha="center", fontsize=7)


def run_title(report: Mapping[str, Any], program: str | None = None) -> str:
    """`program on CONFIG at 0.80 V / 800 MHz (what-if switches)`: what a figure of one run shows."""
    from edgebert.emulator.report_view import operating_points, what_if_text

    name = program or report.get("program") or "program"
    text = f"{Path(str(name)).name} on {report['hw']} at {operating_points(report)}"
    extra = what_if_text(report)
    return text + (f" ({extra})" if extra else "")


def plot_energy(report: Mapping[str, Any], path: str | Path, *, title: str | None = None) -> None:
    """The figure of one run: energy per component stacked per operating point, and with the report's `breakdown`
    (run(..., profile=True)) energy and unit time per op class (with the bound each hits) and energy per layer."""
    from edgebert.emulator.report_view import component_name

    b = report.get("breakdown")
    with paper_style() as plt:
        if b:
            fig, axes = plt.subplots(2, 2, figsize=(10, 6.6))
            ax_c, ax_o, ax_t, ax_l = axes.ravel()
        else:
            fig, ax_c = plt.subplots(figsize=(6, 3.4))
        _components(ax_c, report, component_name)
        if b:
            _op_classes(ax_o, ax_t, report)
            _layers(ax_l, report)
        summary = f"{format_energy(report['energy_j'])} in {format_time(report['seconds'])}, {report['cycles']:,} cycles"
        if report.get("exit_layer") is not None:
            summary += f", exit after layer {report['exit_layer']}"
        fig.suptitle(f"{title or run_title(report)}\n{summary}")
        fig.tight_layout()
        save_figure(fig, path)


def _components(ax: Any, report: Mapping[str, Any], name: Any) -> None:
    """Horizontal bars of energy per component (largest at the top), one colour per operating point."""
    breakdown = report["energy_breakdown_j"]
    keys = sorted((k for k, v in breakdown.items() if v > 0), key=lambda k: breakdown[k]) or list(breakdown)
    unit, factor = pick_unit([breakdown[k] for k in keys], ENERGY_UNITS)
    left = [0.0] * len(keys)
    points: dict[tuple[float, float], list[float]] = {}
    for seg in report["dvfs"]:
        acc = points.setdefault((seg["volts"], seg["mhz"]), [0.0] * len(keys))
        for i, k in enumerate(keys):
            acc[i] += seg["energy_breakdown_j"][k] / factor
    bars = None
    for j, ((volts, mhz), values) in enumerate(sorted(points.items(), reverse=True)):
        bars = ax.barh([name(k) for k in keys], values, left=left, color=f"C{j}",
                       label=f"{volts:.2f} V / {mhz:.0f} MHz")
        left = [a + v for a, v in zip(left, values, strict=True)]
    total = report["energy_j"] or 1.0
    label_bars(ax, [_span(bars, i, left) for i in range(len(keys))], [_share(breakdown[k], total) for k in keys])
    ax.set_xlabel(f"energy ({unit})")
    ax.set_title("energy per component")
    ax.set_xlim(0, max(left) * 1.35 if left and max(left) > 0 else 1)
    ax.grid(axis="y", visible=False)
    if len(points) > 1:
        ax.legend(title="operating point", loc="lower right")


class _Span:
    """A bar-like box from 0 to the stacked total (where a stacked bar's label goes)."""

    def __init__(self, y: float, height: float, width: float) -> None:
        self._y, self._h, self._w = y, height, width

    def get_x(self) -> float:
        return 0.0

    def get_width(self) -> float:
        return self._w

    def get_y(self) -> float:
        return self._y

    def get_height(self) -> float:
        return self._h


def _span(bars: Any, i: int, totals: Sequence[float]) -> _Span:
    bar = bars[i]
    return _Span(bar.get_y(), bar.get_height(), totals[i])


def _op_classes(ax_e: Any, ax_t: Any, report: Mapping[str, Any]) -> None:
    """Dynamic energy per op class, and unit cycles per op class against its roof (the bound written beside)."""
    b = report["breakdown"]
    rows = b["op_classes"]
    classes = sorted(rows, key=lambda c: rows[c]["energy_j"])
    unit, factor = pick_unit([rows[c]["energy_j"] for c in classes], ENERGY_UNITS)
    total = report["energy_j"] or 1.0
    bars = ax_e.barh(classes, [rows[c]["energy_j"] / factor for c in classes], color="C0")
    label_bars(ax_e, bars, [_share(rows[c]["energy_j"], total) for c in classes])
    ax_e.set_xlabel(f"dynamic energy ({unit})")
    ax_e.set_title("energy per op class (leakage excluded)")
    ax_e.set_xlim(0, max(rows[c]["energy_j"] / factor for c in classes) * 1.35 or 1)
    ax_e.grid(axis="y", visible=False)
    roof = b["roofline"]["op_classes"]
    timed = [c for c in sorted(rows, key=lambda c: rows[c]["unit_cycles"]) if rows[c]["unit_cycles"]]
    cycles = [rows[c]["unit_cycles"] for c in timed]
    bars = ax_t.barh(timed, cycles, color="C1", label="cycles taken on its unit")
    ax_t.barh(timed, [roof[c]["roof_cycles"] if c in roof else 0 for c in timed], height=0.3, color="C2",
              label="roof: fewest cycles the work allows")
    label_bars(ax_t, bars, [_bound_text(roof.get(c)) for c in timed])
    ax_t.set_xscale("log" if max(cycles) > 100 * max(min(cycles), 1) else "linear")
    lo = 0.5 if ax_t.get_xscale() == "log" else 0
    ax_t.set_xlim(lo, max(cycles) * (30 if ax_t.get_xscale() == "log" else 1.8))
    ax_t.set_xlabel("cycles on the op class's unit" + (" (log scale)" if lo else ""))
    ax_t.set_title("time per op class and the bound it hits")
    ax_t.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax_t.grid(axis="y", visible=False)


def _share(joules: float, total: float) -> str:
    """`1.571 µJ (54.2 %)`: a bar's energy in its own unit and its share of the run."""
    pct = 100 * joules / total if total else 0.0
    return f"{format_energy(joules, 3)} ({'<0.1' if 0 < pct < 0.05 else f'{pct:.1f}'} %)"


def _bound_text(r: Mapping[str, Any] | None) -> str:
    if not r:
        return ""
    return f"{r['bound']}, {100 * r['attained']:.0f} % of roof"


def _layers(ax: Any, report: Mapping[str, Any]) -> None:
    """Energy per layer region (dynamic, then its share of leakage and switching) as bars, its time as points on a
    second axis."""
    layers = report["breakdown"]["layers"]
    if len(layers) <= 1:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no layer loop: one region", ha="center", va="center", transform=ax.transAxes)
        return
    unit, factor = pick_unit([r["energy_j"] for r in layers], ENERGY_UNITS)
    tu, tf = pick_unit([r["seconds"] for r in layers], TIME_UNITS)
    names = [_short_region(r["region"]) for r in layers]
    static = [(r["energy_breakdown_j"].get("leakage", 0.0) + r["energy_breakdown_j"].get("dvfs_switch", 0.0)) / factor
              for r in layers]
    dynamic = [r["energy_j"] / factor - s for r, s in zip(layers, static, strict=True)]
    x = list(range(len(layers)))
    handles = [ax.bar(x, dynamic, color="C0", label="dynamic energy"),
               ax.bar(x, static, bottom=dynamic, color="C5", label="leakage and DVFS switching")]
    top = max(d + s for d, s in zip(dynamic, static, strict=True))
    ax.set_ylim(0, top * 1.15)
    twin = ax.twinx()
    handles += twin.plot(x, [r["seconds"] / tf for r in layers], "o", color="C1", ms=4, label=f"time ({tu})")
    twin.set_ylim(0, max(r["seconds"] for r in layers) / tf * 1.15)
    twin.set_ylabel(f"time ({tu})")
    twin.grid(False)
    twin.spines["right"].set_visible(True)
    rotate = len(layers) > 8
    ax.set_xticks(x, names, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlabel("layer (before, after: code outside the layer loop)")
    ax.set_ylabel(f"energy ({unit})")
    ax.set_title("energy and time per layer")
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.3 if rotate else -0.2), ncol=3)
    ax.grid(axis="x", visible=False)


def _short_region(name: str) -> str:
    """`before layer 1` -> `before`, `layer 3` -> `3`, `after layer 12` -> `after`."""
    if name.startswith("layer "):
        return name.split()[1]
    return name.split()[0]
