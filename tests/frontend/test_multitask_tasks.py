"""The valence task (5 labels) added for the multi-task model: labels recomputed from the words."""

from __future__ import annotations

import numpy as np

from edgebert.frontend.models.synthetic_tasks import (
    NEGATIVE_WORDS,
    NEGATORS,
    POSITIVE_WORDS,
    TASKS,
    make_dataset,
    valence_label,
)


def _net_score(sentence: str) -> int:
    words = sentence.split()
    score, k = 0, 0
    while k < len(words):
        sign = 1
        if words[k] in NEGATORS:
            sign, k = -1, k + 1
        if words[k] in POSITIVE_WORDS:
            score += sign
        elif words[k] in NEGATIVE_WORDS:
            score -= sign
        k += 1
    return score


def test_valence_labels_follow_the_net_polarity():
    data = make_dataset("valence", 1500, 16, seed=7)
    scores = np.array([_net_score(s) for s in data.sentences])
    buckets = np.digitize(scores, [-2.5, -0.5, 0.5, 2.5])  # <= -3, -2..-1, 0, 1..2, >= 3
    np.testing.assert_array_equal(data.labels, buckets)
    assert [valence_label(s) for s in (-5, -3, -2, -1, 0, 1, 2, 3, 6)] == [0, 0, 1, 1, 2, 3, 3, 4, 4]
    assert np.bincount(data.labels, minlength=5).min() > 1500 / 5 / 2
    assert TASKS["valence"].num_labels == 5
    hard = data.difficulty == "hard"
    has_negation = np.array([any(w in NEGATORS for w in s.split()) for s in data.sentences])
    assert has_negation[hard].mean() > 0.7 and not has_negation[data.difficulty == "easy"].any()
