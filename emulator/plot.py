"""Plots of run reports (matplotlib, Agg backend; imported only when plotting): the figure helpers and the energy
breakdown of one run."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from edgebert.isa.errors import EdgebertError
from edgebert.isa.safe_io import write_atomic


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> None:
    """Lay out, write (atomically; the format from the suffix) and close `fig`; an unwritable path or an unknown
    format is an EdgebertError naming it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buf, format=Path(path).suffix.lstrip(".").lower() or "png", **kwargs)
    except ValueError as exc:  # an image format matplotlib does not know
        raise EdgebertError(f"{path}: cannot draw the plot: {exc}") from None
    finally:
        plt.close(fig)
    write_atomic(path, buf.getvalue())


def plot_energy(report: dict[str, Any], path: str | Path) -> None:
    """Bar chart of energy per component, stacked per DVFS segment, written to `path`."""
    components = [k for k, v in report["energy_breakdown_j"].items() if v > 0] or list(report["energy_breakdown_j"])
    fig, ax = pyplot().subplots(figsize=(8, 4.5))
    bottom = [0.0] * len(components)
    for seg in report["dvfs"]:
        values = [seg["energy_breakdown_j"][c] * 1e9 for c in components]
        ax.bar(components, values, bottom=bottom, label=f"{seg['volts']:.2f} V / {seg['mhz']:.0f} MHz")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("energy (nJ)")
    ax.set_title(f"{report['hw']}: {report['energy_j'] * 1e9:.3g} nJ in {report['seconds'] * 1e6:.3g} us")
    ax.legend(title="operating point", fontsize="small")
    ax.tick_params(axis="x", rotation=30)
    save_figure(fig, path, dpi=120)
