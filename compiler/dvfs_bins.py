"""The EdgeBERT artifact's DVFS unit mapping: layer-1 entropy / scale -> one of 16 bins -> an operating point.

The artifact's Dvfs module (hw/cmod/Dvfs, ../shared/HARDWARE.md) divides the entropy (Q6.10 fixed point) by an
8-bit `enpy_scale` and compares the quotient with 15 edges, 256 ... 28672 in Q6.10 (0.25 ... 28.0); each of the 16
bins selects an oscillator and a regulator code that software loads, i.e. one operating point per bin.

Here: bin(H) = number of edges <= H / scale. Every edge is a multiple of 0.25, so the bin is a function of the
"fine" index j = floor(H / (0.25 scale)) clamped to 0 .. 112 (28 / 0.25): the program computes j with one
`lut fs, nbins=113, scale=4/scale, mode=floor` over a 113-entry table whose entry j is the operating point of
bin(j). Differences from the artifact (documented in docs/compiler.md): the scale is a real number (the artifact's
is an 8-bit integer divisor >= 1, which leaves a binary task's entropies, <= ln 2, in bins 0..2), and the quotient
is an fp32 product, not a Q6.10 division.
"""

from __future__ import annotations

import numpy as np

from edgebert.isa.errors import CompileError

#: The 15 bin edges of the artifact's Dvfs unit, in Q6.10 (value x 1024).
EDGES_Q10 = (256, 512, 1024, 2048, 3072, 4096, 5120, 6144, 8192, 10240, 12288, 16384, 20480, 24576, 28672)
NUM_BINS = len(EDGES_Q10) + 1
#: The edges in units of 0.25 (= 256 in Q6.10): fine index j belongs to bin sum(j >= e for e in EDGE_STEPS).
EDGE_STEPS = tuple(e // 256 for e in EDGES_Q10)
#: Fine indices the program's `lut` distinguishes: 0 .. 112 (the last edge, 28.0, is index 112).
FINE_BINS = EDGE_STEPS[-1] + 1


def bin_of_fine(j: int | np.ndarray) -> np.ndarray:
    """The artifact's bin (0 .. 15) of fine index j (floor(H / (0.25 scale)), clamped to 0 .. 112)."""
    return np.searchsorted(np.asarray(EDGE_STEPS), np.asarray(j), side="right").astype(np.int32)


def fine_index(entropy: float | np.ndarray, scale: float) -> np.ndarray:
    """What the program's `lut` computes: clamp(floor(fp32(H) * fp32(4 / scale)), 0, 112)."""
    x = np.asarray(entropy, np.float32) * np.float32(lut_scale(scale))
    return np.clip(np.floor(x.astype(np.float64)), 0, FINE_BINS - 1).astype(np.int64)


def dvfs_bin(entropy: float | np.ndarray, scale: float) -> np.ndarray:
    """The artifact's DVFS bin (0 .. 15) of a layer-1 entropy."""
    return bin_of_fine(fine_index(entropy, scale))


def lut_scale(scale: float) -> float:
    """The `lut` scale field: H * 4 / scale gives the fine index."""
    return 4.0 / scale


def check_scale(scale: float) -> float:
    """A positive, finite entropy scale, or CompileError."""
    if not (np.isfinite(scale) and scale > 0):
        raise CompileError(f"DVFS bins: the entropy scale must be positive and finite, got {scale}")
    return float(scale)


def calibrate_scale(layer1_entropies: np.ndarray) -> float:
    """The scale that maps the largest calibration layer-1 entropy onto the top edge (28.0), so the calibration
    range spans the 16 bins."""
    h = np.asarray(layer1_entropies, np.float64)
    h = h[np.isfinite(h)]
    if h.size == 0 or h.max() <= 0:
        raise CompileError("DVFS bins: cannot calibrate the entropy scale: no positive layer-1 entropy in the "
                           "calibration entropies (give --dvfs-bins-scale)")
    return float(h.max() / (EDGES_Q10[-1] / 1024))


def bin_interval(b: int, scale: float) -> tuple[float, float]:
    """Layer-1 entropies [lo, hi) that fall in bin b (widened by 1e-6 relative for the fp32 arithmetic)."""
    lo = -np.inf if b == 0 else EDGE_STEPS[b - 1] * 0.25 * scale
    hi = np.inf if b == NUM_BINS - 1 else EDGE_STEPS[b] * 0.25 * scale
    return lo * (1 - 1e-6) if np.isfinite(lo) else lo, hi * (1 + 1e-6) if np.isfinite(hi) else hi


def fine_table(bin_points: np.ndarray) -> np.ndarray:
    """int32 [113]: fine index -> the operating point of its bin (what the program's `lut` reads)."""
    return np.asarray(bin_points, np.int32)[bin_of_fine(np.arange(FINE_BINS))]
