"""Units in user-facing text: durations such as '50ms' read from flags, energies, times and sizes written scaled to
their magnitude (nJ/µJ/mJ, µs/ms/s, KiB/MiB)."""

from __future__ import annotations

import re

from edgebert.isa.errors import EdgebertError

_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float:
    """'50ms', '0.05s', '50000us', '100ns' -> seconds. A unit is required: a bare '50' is ambiguous."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|ns)\s*", text)
    if not m:
        raise EdgebertError(f"bad duration '{text}': give a number with a unit (examples: 50ms, 0.05s, 50000us)")
    value = float(m.group(1)) * _SCALE[m.group(2)]
    if not 0 < value < float("inf"):
        raise EdgebertError(f"duration '{text}' must be positive and finite")
    return value


#: (unit, factor) of the quantities reports scale, largest first.
ENERGY_UNITS = (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12))
TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
BYTE_UNITS = (("GiB", float(1 << 30)), ("MiB", float(1 << 20)), ("KiB", 1024.0), ("B", 1.0))


def pick_unit(values: float | list[float] | tuple[float, ...], units: tuple[tuple[str, float], ...]
              ) -> tuple[str, float]:
    """The (unit, factor) that writes the largest magnitude of `values` as a number >= 1 (the smallest unit when
    every value is 0 or below it): one unit for a whole table or axis."""
    seq = values if isinstance(values, (list, tuple)) else [values]
    top = max((abs(float(v)) for v in seq), default=0.0)
    for name, factor in units:
        if top >= factor:
            return name, factor
    return units[-1]


def format_scaled(value: float, units: tuple[tuple[str, float], ...], digits: int = 4,
                  unit: tuple[str, float] | None = None) -> str:
    """`value` in the unit that suits it (or `unit`), to `digits` significant digits: 11628e-6 J -> '11.63 mJ'."""
    name, factor = unit or pick_unit(value, units)
    scaled = value / factor
    if scaled == int(scaled) and abs(scaled) < 1e15:
        return f"{int(scaled):,} {name}"
    text = f"{scaled:,.{max(digits - len(str(int(abs(scaled)))), 0)}f}" if abs(scaled) >= 1 else f"{scaled:.{digits}g}"
    return f"{text} {name}"


def format_energy(joules: float, digits: int = 4) -> str:
    """Joules in J / mJ / µJ / nJ / pJ."""
    return format_scaled(joules, ENERGY_UNITS, digits)


def format_time(seconds: float, digits: int = 4) -> str:
    """Seconds in s / ms / µs / ns."""
    return format_scaled(seconds, TIME_UNITS, digits)


def format_bytes(count: float, digits: int = 4) -> str:
    """Bytes in B / KiB / MiB / GiB (exact below 1 KiB)."""
    if abs(count) < 1024:
        return f"{int(count):,} B"
    return format_scaled(count, BYTE_UNITS, digits)
