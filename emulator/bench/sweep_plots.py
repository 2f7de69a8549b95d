"""The paper's figure from a sweep (policy_sweep.run_sweep): energy per sentence vs latency target, one panel per
threshold, one curve per mode and exit policy (vector output when the path ends in .svg or .pdf)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgebert.emulator.plot import paper_style, save_figure

#: (mode, policy or None for policy-free) -> (label, colour, line style, marker)
_STYLE = {
    ("no-exit", None): ("no early exit", "0.35", "-", ""),
    ("early-exit", "recover"): ("early exit (entropy rule), no DVFS", "tab:blue", "--", ""),
    ("early-exit", "forced"): ("early exit forced at prediction, no DVFS", "tab:orange", "--", ""),
    ("ee+dvfs", "recover"): ("ee + DVFS, recover policy", "tab:blue", "-", "o"),
    ("ee+dvfs", "forced"): ("ee + DVFS, forced policy (authors')", "tab:orange", "-", "s"),
    ("oracle", "recover"): ("oracle (exit known), recover exits", "tab:blue", ":", "^"),
    ("oracle", "forced"): ("oracle (exit known), forced exits", "tab:orange", ":", "v"),
}


def _curves(runs: list[Mapping[str, Any]], threshold: float, scale: float, energy_scale: float
            ) -> dict[tuple[str, str | None], list[tuple[float, float]]]:
    out: dict[tuple[str, str | None], list[tuple[float, float]]] = {}
    for run in runs:
        if run["threshold"] != threshold:
            continue
        for mode, stats in run["modes"].items():
            key = (mode, None if mode == "no-exit" else run["policy"])
            if key == ("no-exit", None) and any(x == run["target_s"] * scale for x, _ in out.get(key, [])):
                continue  # the same with either policy
            out.setdefault(key, []).append((run["target_s"] * scale, stats["energy_j"]["mean"] * energy_scale))
    return {k: sorted(v) for k, v in out.items()}


def _oracle_panel(ax: Any, runs: list[Mapping[str, Any]], thresholds: list[float], scale: float, unit: str) -> None:
    """ee+dvfs energy / oracle energy per threshold (marker and line style) and policy (colour, as in the other
    panels), against the 1.15x bar."""
    markers, styles = "osD^vP*X", ("-", "--", "-.", ":")
    for i, thr in enumerate(thresholds):
        for policy in ("recover", "forced"):
            pts = sorted((r["target_s"] * scale, r["savings"]["vs_oracle"]["mean"]) for r in runs
                         if r["threshold"] == thr and r["policy"] == policy and "vs_oracle" in r["savings"])
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], ls=styles[i % len(styles)],
                        marker=markers[i % len(markers)], ms=3.5, lw=1.2, color=_STYLE[("ee+dvfs", policy)][1],
                        label=f"{thr:g} {policy}")
    ax.axhline(1.15, color="k", ls=":", lw=1)
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_title("ee+dvfs energy / oracle energy", fontsize=10)
    ax.set_xlabel(f"latency target ({unit})")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=6, ncol=2, title="threshold, policy", title_fontsize=6, loc="best")


def plot_sweep(result: Mapping[str, Any], path: str, *, title: str | None = None, columns: int = 3) -> None:
    """Energy per sentence vs latency target (units scaled to the data; a log energy axis when the curves span a
    decade or more): one panel per threshold of the sweep, and ee+dvfs / oracle."""
    thresholds = list(result["thresholds"])
    panels = len(thresholds) + 1  # + ee+dvfs / oracle
    cols = min(columns, panels)
    rows = -(-panels // cols)
    from matplotlib import ticker

    with paper_style() as plt:  # text stays text in SVG / PDF; fixed ids: the same result gives the same bytes
        _draw(plt, ticker, result, path, title, thresholds, panels, cols, rows)


def _draw(plt: Any, ticker: Any, result: Mapping[str, Any], path: str, title: str | None, thresholds: list[float],
          panels: int, cols: int, rows: int) -> None:
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows + 0.9), squeeze=False)
    handles: dict[str, Any] = {}
    from edgebert.isa.units import ENERGY_UNITS, TIME_UNITS, pick_unit

    unit, time_factor = pick_unit([max(r["target_s"] for r in result["runs"])], TIME_UNITS)
    scale = 1 / time_factor
    energies = [s["energy_j"]["mean"] for r in result["runs"] for s in r["modes"].values() if s["energy_j"]["mean"]]
    energy_unit, energy_factor = pick_unit(energies, ENERGY_UNITS)
    log = max(energies) >= 10 * min(energies)
    for k, thr in enumerate(thresholds):
        ax = axes[k // cols][k % cols]
        for key, points in _curves(result["runs"], thr, scale, 1 / energy_factor).items():
            if key not in _STYLE:
                continue
            label, colour, style, marker = _STYLE[key]
            (line,) = ax.plot([x for x, _ in points], [y for _, y in points], color=colour, ls=style, marker=marker,
                              ms=4, lw=1.6, label=label)
            handles.setdefault(label, line)
        ax.set_title(f"entropy threshold {thr:g}", fontsize=10)
        ax.set_xlabel(f"latency target ({unit})")
        if k % cols == 0:
            ax.set_ylabel(f"energy per sentence ({energy_unit})")
        if log:  # no exit can be 3-10x above the rest: a log axis keeps every curve readable
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "2358" else ""))
            ax.tick_params(axis="y", which="minor", labelsize=7)
        else:
            ax.set_ylim(0, max(energies) / energy_factor * 1.08)
        ax.grid(True, which="both", alpha=0.25)
    ax = axes[len(thresholds) // cols][len(thresholds) % cols]
    _oracle_panel(ax, result["runs"], thresholds, scale, unit)
    for k in range(panels, rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    order = [v[0] for v in _STYLE.values() if v[0] in handles]
    fig.suptitle(title or f"{result['sentences']} sentences on {result['hw']}: energy per sentence vs latency target",
                 fontsize=11)
    fig.tight_layout()
    # below the panels, outside the axes: the saved canvas grows to hold it (bbox_inches="tight")
    fig.legend([handles[label] for label in order], order, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(3, len(order)), fontsize=8, frameon=False)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    """`python -m edgebert.emulator.bench.sweep_plots sweep.json fig.svg [--title T]`: the figure of a saved sweep."""
    import argparse
    import json

    from edgebert.isa.cli_common import add_version
    from edgebert.isa.errors import EdgebertError, run_cli

    p = argparse.ArgumentParser(prog="python -m edgebert.emulator.bench.sweep_plots", description=__doc__.split("\n")[0])
    p.add_argument("json", help="a sweep's --json (edgebert-bench model.onnx, benchmarks/bench_sst2_compiled.py)")
    p.add_argument("output", help="the figure (.svg / .pdf: vector, .png)")
    p.add_argument("--title", help="the figure's title (default: sentences, config and what is plotted)")
    add_version(p)
    args = p.parse_args(argv)

    def go() -> int:
        try:
            result = json.loads(Path(args.json).read_text())
        except (OSError, ValueError) as exc:
            raise EdgebertError(f"{args.json}: cannot read a sweep: {exc}") from None
        if "runs" not in result:
            raise EdgebertError(f"{args.json}: not a sweep (no 'runs')")
        plot_sweep(result, args.output, title=args.title)
        return 0

    return run_cli("sweep_plots", go)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
