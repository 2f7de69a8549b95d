"""Energy-breakdown plot of a run report (matplotlib, Agg backend; imported only when plotting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_energy(report: dict[str, Any], path: str | Path) -> None:
    """Bar chart of energy per component, stacked per DVFS segment, written to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    components = [k for k, v in report["energy_breakdown_j"].items() if v > 0] or list(report["energy_breakdown_j"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = [0.0] * len(components)
    for seg in report["dvfs"]:
        values = [seg["energy_breakdown_j"][c] * 1e9 for c in components]
        ax.bar(components, values, bottom=bottom, label=f"{seg['volts']:.2f} V / {seg['mhz']:.0f} MHz")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("energy (nJ)")
    ax.set_title(f"{report['hw']}: {report['energy_j'] * 1e9:.3g} nJ in {report['seconds'] * 1e6:.3g} us")
    ax.legend(title="operating point", fontsize="small")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
