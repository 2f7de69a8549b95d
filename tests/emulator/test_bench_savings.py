"""The savings statistics of edgebert-bench: the mean (ratio of mean energies), up to (the best sentence), the oracle
ratio, and the best (target, threshold) mean of a sweep."""

from __future__ import annotations

import pytest

from edgebert.emulator.bench.savings import best_means, ratio_stats, savings


def test_mean_is_the_ratio_of_means_and_up_to_the_best_sentence() -> None:
    base, ours = [12.0, 12.0, 12.0], [1.0, 4.0, 7.0]
    s = ratio_stats(base, ours)
    assert s["mean"] == pytest.approx(36.0 / 12.0)  # not the mean of the ratios (12 + 3 + 1.71) / 3
    assert s["up_to"] == pytest.approx(12.0) and s["up_to_sentence"] == 0
    assert ratio_stats([], []) == {"mean": None, "up_to": None, "up_to_sentence": None}
    assert ratio_stats([1.0], [0.0])["mean"] is None  # no division by a zero energy


def test_savings_against_each_mode_and_the_oracle() -> None:
    e = {"no-exit": [10.0, 10.0], "early-exit": [4.0, 6.0], "ee+dvfs": [2.0, 5.0], "oracle": [2.0, 4.0]}
    s = savings(e)
    assert s["vs_no_exit"]["mean"] == pytest.approx(20 / 7) and s["vs_no_exit"]["up_to"] == pytest.approx(5.0)
    assert s["vs_early_exit"]["mean"] == pytest.approx(10 / 7) and s["vs_early_exit"]["up_to"] == pytest.approx(2.0)
    assert s["vs_oracle"] == {"mean": pytest.approx(7 / 6), "max": pytest.approx(1.25)}
    assert s["early_exit_vs_no_exit"]["mean"] == pytest.approx(2.0)
    assert "vs_oracle" not in savings({k: v for k, v in e.items() if k != "oracle"})


def test_best_means_per_policy() -> None:
    def run(policy, target, thr, mean, up_to):
        stat = {"mean": mean, "up_to": up_to, "up_to_sentence": 3}
        return {"policy": policy, "target_s": target, "threshold": thr,
                "savings": {"vs_no_exit": stat, "vs_early_exit": stat}}

    runs = [run("recover", 0.05, 0.23, 3.0, 9.0), run("recover", 0.1, 0.46, 4.0, 8.0), run("forced", 0.05, 0.16, 5.0, 7.0)]
    best = best_means(runs)
    assert best["recover"]["vs_no_exit"]["mean"] == 4.0
    assert best["recover"]["vs_no_exit"]["mean_at"] == {"target_s": 0.1, "threshold": 0.46}
    assert best["recover"]["vs_no_exit"]["up_to"] == 9.0
    assert best["recover"]["vs_no_exit"]["up_to_at"] == {"target_s": 0.05, "threshold": 0.23, "sentence": 3}
    assert best["forced"]["vs_early_exit"]["mean"] == 5.0
