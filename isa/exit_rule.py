"""The early-exit rule the `bexit`/`bexitr` instructions implement, for tools that apply it to recorded entropies."""

from __future__ import annotations

import numpy as np

from edgebert.isa.errors import EdgebertError
from edgebert.isa.table import EXIT_COMPARES


def passes_threshold(entropy: float | np.ndarray, threshold: float, compare: str = "lt") -> np.ndarray:
    """The exit test: entropy < threshold (`compare="lt"`, EdgeBERT's software) or <= (`"le"`, its entropy unit),
    both rounded to fp32 as the exit branch compares them (`bexit` holds an fp32 threshold, F registers fp32)."""
    if compare not in EXIT_COMPARES:
        raise EdgebertError(f"unknown exit comparison '{compare}' ({', '.join(EXIT_COMPARES)})")
    e, t = np.asarray(entropy, dtype=np.float32), np.float32(threshold)
    return e <= t if compare == "le" else e < t


def natural_exits(entropies: np.ndarray, threshold: float, compare: str = "lt") -> np.ndarray:
    """int [N]: the first layer 1 .. L-1 whose entropy passes the threshold, else L (the exit branch's rule)."""
    ent = np.asarray(entropies, np.float64)
    passed = passes_threshold(ent[:, :-1], threshold, compare)
    return np.where(passed.any(axis=1), np.argmax(passed, axis=1) + 1, ent.shape[1]).astype(np.int64)
