"""Units in user-facing text: durations such as '50ms'."""

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
