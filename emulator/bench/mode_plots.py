"""Charts of an edgebert-bench result: latency CDFs with the target, mean energy and exit layers per mode (the oracle
included when the result has it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgebert.emulator.bench.modes import MODE_TITLES
from edgebert.emulator.plot import pyplot, save_figure


def plot_bench(result: Mapping[str, Any], path: str) -> None:
    """Latency CDFs with the target, mean energy per sentence and exit-layer histograms of the modes."""
    fig, (ax_lat, ax_en, ax_ex) = pyplot().subplots(1, 3, figsize=(15, 4.5))
    per = result["per_sentence"]
    modes = list(result["modes"])
    for mode in modes:
        lat = np.sort(np.array(per[mode]["latency_s"])) * 1e3
        ax_lat.step(lat, np.arange(1, len(lat) + 1) / len(lat), where="post", label=MODE_TITLES[mode])
    if result["latency_target_s"] is not None:
        ax_lat.axvline(result["latency_target_s"] * 1e3, color="k", ls="--", lw=1, label="target")
    ax_lat.set_xlabel("latency (ms)")
    ax_lat.set_ylabel("share of sentences")
    ax_lat.legend(fontsize=8)
    ax_lat.set_title("latency CDF")
    energies = [result["modes"][m]["energy_j"]["mean"] * 1e6 for m in modes]
    ax_en.bar(range(len(modes)), energies, color=[f"C{i}" for i in range(len(modes))])
    ax_en.set_xticks(range(len(modes)), modes)
    ax_en.set_ylabel("mean energy per sentence (uJ)")
    ax_en.set_title("energy")
    width = 0.8 / len(modes)
    for j, mode in enumerate(modes):
        hist = result["modes"][mode]["exit_layer"]["histogram"]
        keys = [k for k in hist if k != "None"]
        ax_ex.bar([int(k) + (j - (len(modes) - 1) / 2) * width for k in keys], [hist[k] for k in keys], width,
                  label=mode)
    ax_ex.set_xlabel("exit layer")
    ax_ex.set_ylabel("sentences")
    ax_ex.legend(fontsize=8)
    ax_ex.set_title("exit layers")
    save_figure(fig, path)
