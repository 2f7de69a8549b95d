"""The figure of an edgebert-bench result: latency CDFs against the target, mean energy per sentence and the exit
layers of EdgeBERT's modes (the oracle included when the result has it), titled with program, config and settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.emulator.bench.modes import MODE_SHORT as _SHORT
from edgebert.emulator.bench.modes import MODE_TITLES
from edgebert.emulator.plot import label_bars, paper_style, save_figure
from edgebert.isa.units import ENERGY_UNITS, TIME_UNITS, format_energy, format_time, pick_unit

#: Mode names on the energy axis (MODE_TITLES in full in the legend).
MODE_SHORT = _SHORT | {"ee+dvfs": "early exit\n+ DVFS"}
_STYLE = {"no-exit": ("C7", "-"), "early-exit": ("C0", "--"), "ee+dvfs": ("C1", "-"), "oracle": ("C2", ":")}


def bench_title(result: Mapping[str, Any]) -> str:
    """`program on CONFIG: N sentences, threshold T (policy), target X (replay of recorded entropies)`."""
    program = Path(str(result.get("program") or "program")).name
    parts = [f"{result['sentences']} sentences"]
    early = result.get("early_exit") or {}
    if early.get("threshold") is not None:
        parts.append(f"exit when entropy {'<' if early.get('compare', 'lt') == 'lt' else '<='} "
                     f"{early['threshold']:g} ({early.get('policy', 'recover')} policy)")
    if result.get("latency_target_s") is not None:
        parts.append(f"target {format_time(result['latency_target_s'], 3)}")
    if result.get("task"):
        parts.append(f"task {result['task']}")
    kind = "timing-only replay of recorded entropies" if result.get("timing_only") else "full runs"
    return f"{program} on {result['hw']}: " + ", ".join(parts) + f" ({kind})"


def plot_bench(result: Mapping[str, Any], path: str, *, title: str | None = None) -> None:
    """Latency CDFs (the target marked, the axis fitted to the data), mean energy per sentence (its savings written
    on the bars) and the exit-layer histogram (integer layers; modes with the same exits drawn once)."""
    modes = list(result["modes"])
    with paper_style() as plt:
        fig, (ax_lat, ax_en, ax_ex) = plt.subplots(1, 3, figsize=(12, 3.9), gridspec_kw={"width_ratios": [1.3, 1, 1]})
        handles = _latency(ax_lat, result, modes)
        _energy(ax_en, result, modes)
        _exits(ax_ex, result, modes)
        fig.suptitle(title or bench_title(result))
        fig.tight_layout()
        fig.legend(handles, [MODE_TITLES[m] for m in modes], loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=len(modes))
        notes = result.get("notes") or []
        if notes:
            fig.text(0.5, -0.08, "note: " + "; ".join(notes), ha="center", va="top", fontsize=7, wrap=True)
        save_figure(fig, path)


def _latency(ax: Any, result: Mapping[str, Any], modes: list[str]) -> list[Any]:
    """Step CDFs on an axis fitted to the latencies; a target outside it is an arrow at the edge, not a stretch."""
    per = result["per_sentence"]
    values = np.concatenate([np.asarray(per[m]["latency_s"], np.float64) for m in modes])
    target = result.get("latency_target_s")
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * 0.06 or hi * 0.05 or 1e-9
    x0, x1 = max(lo - pad, 0.0), hi + pad
    if target is not None and x0 <= target <= x1 + 3 * pad:
        x1 = max(x1, target + pad)
    unit, factor = pick_unit([x1], TIME_UNITS)
    handles = []
    for mode in modes:
        lat = np.sort(np.asarray(per[mode]["latency_s"], np.float64)) / factor
        share = np.arange(1, len(lat) + 1) / len(lat)
        colour, style = _STYLE.get(mode, ("C4", "-"))
        (line,) = ax.step(np.r_[x0 / factor, lat], np.r_[0.0, share], where="post", color=colour, ls=style)
        handles.append(line)
    if target is not None and target <= x1:
        ax.axvline(target / factor, color="k", ls="--", lw=1)
        ax.annotate(f"target {format_time(target, 3)}", (target / factor, 0.02), xytext=(-3, 0),
                    textcoords="offset points", rotation=90, ha="right", va="bottom", fontsize=7)
    ax.set_xlim(x0 / factor, x1 / factor)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"latency per sentence ({unit})")
    ax.set_ylabel("share of sentences")
    off_scale = target is not None and target > x1
    ax.set_title("latency CDF" + (f" (target {format_time(target, 3)}: off scale →)" if off_scale else ""))
    return handles


def _energy(ax: Any, result: Mapping[str, Any], modes: list[str]) -> None:
    """Mean energy per sentence per mode, each bar labelled with its value and its saving against no exit."""
    energies = [result["modes"][m]["energy_j"]["mean"] for m in modes]
    unit, factor = pick_unit(energies, ENERGY_UNITS)
    bars = ax.bar(range(len(modes)), [e / factor for e in energies], color=[_STYLE.get(m, ("C4",))[0] for m in modes])
    base = result["modes"].get("no-exit", {}).get("energy_j", {}).get("mean")
    label_bars(ax, bars, [format_energy(e, 3) + (f"\n{base / e:.2f}x less" if base and m != "no-exit" and e else "")
                          for m, e in zip(modes, energies, strict=True)], horizontal=False)
    ax.set_xticks(range(len(modes)), [MODE_SHORT.get(m, m) for m in modes])
    ax.set_ylim(0, max(energies) / factor * 1.25 if max(energies) > 0 else 1)
    ax.set_ylabel(f"mean energy per sentence ({unit})")
    ax.set_title("energy per sentence")
    ax.grid(axis="x", visible=False)


def _exits(ax: Any, result: Mapping[str, Any], modes: list[str]) -> None:
    """Sentences per exit layer; modes whose exits are identical share one group of bars, and a mode that runs every
    sentence through the last layer (no exit) is a note rather than a bar that would flatten the others."""
    groups: list[tuple[list[str], dict[str, int]]] = []
    notes = []
    hists = {m: {k: v for k, v in result["modes"][m]["exit_layer"]["histogram"].items() if k != "None"} for m in modes}
    last = max((int(k) for h in hists.values() for k in h), default=0)
    for mode in modes:
        hist = hists[mode]
        if list(hist) == [str(last)] and len(modes) > 1:
            notes.append(f"{MODE_SHORT.get(mode, mode)}: all {hist[str(last)]} at layer {last}")
            continue
        for names, h in groups:
            if h == hist:
                names.append(mode)
                break
        else:
            groups.append(([mode], hist))
    layers = sorted({int(k) for _, h in groups for k in h} | ({last} if last else set()))
    width = 0.8 / max(len(groups), 1)
    for j, (names, hist) in enumerate(groups):
        colour = _STYLE.get(names[0], ("C4",))[0]
        xs = [int(k) + (j - (len(groups) - 1) / 2) * width for k in hist]
        ax.bar(xs, list(hist.values()), width, color=colour,
               label=" = ".join(MODE_SHORT.get(m, m).replace("\n", " ") for m in names))
    from matplotlib.ticker import MaxNLocator

    if layers:
        ax.set_xticks(range(min(layers), max(layers) + 1))
        ax.set_xlim(min(layers) - 0.6, max(layers) + 0.6)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("exit layer" + "".join(f"\n({note})" for note in notes))
    ax.set_ylabel("sentences")
    ax.set_title("exit layers")
    if groups:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2 - 0.08 * len(notes)), fontsize=7)
    ax.grid(axis="x", visible=False)
