"""What the DVFS planner optimises for: calibration sentences as (class, predicted layer, exit layer) counts.

A sentence's exit under a policy: its natural exit e (the first layer 1 .. L-1 whose entropy passes the threshold,
else L), its predicted exit p (the predictor table's bin of its layer-1 entropy); `recover` exits at e, `forced`
at min(e, p) (EdgeBERT's predictor: entropy exits before p still happen, the exit is forced at p; the authors'
mean exit layer at 0.16 on SST-2 is 3.90, which this rule reproduces from their trace). The planner's class of a
sentence is p (table planner) or the artifact's DVFS bin of its layer-1 entropy (bins planner).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgebert.frontend.predictor import entropy_bin
from edgebert.isa.errors import CompileError
from edgebert.isa.exit_rule import natural_exits

#: Class and prediction of a sentence that leaves at layer 1 (no prediction is made).
LAYER1 = (-1, 0)


@dataclass(frozen=True)
class ExitSamples:
    """Sentences per (class, predicted exit p, exit e); layer-1 exits are (-1, 0, 1)."""

    counts: dict[tuple[int, int, int], int]
    source: str  # where they come from (program metadata)

    @property
    def sentences(self) -> int:
        return sum(self.counts.values())


def policy_exits(natural: np.ndarray, predicted: np.ndarray, policy: str) -> np.ndarray:
    """Exit layers under `policy`: recover = natural; forced = min(natural, predicted) past layer 1."""
    natural = np.asarray(natural, np.int64)
    if policy == "recover":
        return natural
    if policy == "forced":
        return np.where(natural == 1, 1, np.minimum(natural, np.asarray(predicted, np.int64)))
    raise CompileError(f"unknown exit policy '{policy}' (recover, forced)")


def predictions(layer1: np.ndarray, exit_table: np.ndarray) -> np.ndarray:
    """int [N]: the predicted exit layer of each layer-1 entropy (the table's nearest bin)."""
    return np.asarray(exit_table, np.int64)[entropy_bin(layer1)]


def calibration_samples(entropies: np.ndarray, threshold: float, compare: str, exit_table: np.ndarray, policy: str,
                        class_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ExitSamples:
    """Counts of the calibration sentences; `class_of(layer1 entropies, predictions)` gives each one's class."""
    ent = np.asarray(entropies, np.float64)
    if ent.ndim != 2 or ent.shape[0] == 0:
        raise CompileError(f"calibration entropies must be [sentences >= 1, layers], got shape {ent.shape}")
    nat = natural_exits(ent, threshold, compare)
    pred = predictions(ent[:, 0], exit_table)
    exits = policy_exits(nat, pred, policy)
    cls = class_of(ent[:, 0], pred)
    counts: Counter = Counter()
    for c, p, e in zip(cls.tolist(), pred.tolist(), exits.tolist(), strict=True):
        counts[(-1, 0, 1) if e == 1 else (int(c), int(p), int(e))] += 1
    return ExitSamples(dict(counts), f"calibration entropies ({ent.shape[0]} sentences)")


def table_samples(exit_table: np.ndarray, class_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ExitSamples:
    """Without calibration entropies: one sentence per predictor bin (layer-1 entropy b / 100) exiting at its
    prediction."""
    exits = np.asarray(exit_table, np.int64)
    cls = class_of(np.arange(exits.size) / exits.size, exits)
    counts = Counter((int(c), int(p), int(p)) for c, p in zip(cls.tolist(), exits.tolist(), strict=True))
    return ExitSamples(dict(counts), "one sentence per predictor bin, exiting at its prediction")
