"""Savings statistics of a bench run: the mean (ratio of mean energies) and the best case ("up to": the largest
per-sentence ratio), against no exit, early exit without DVFS, and the oracle; the best mean over a sweep."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def ratio_stats(base: Sequence[float], ours: Sequence[float]) -> dict[str, float | int | None]:
    """How much less energy `ours` needs than `base`, sentence by sentence: `mean` = mean(base) / mean(ours) (the
    saving over the whole set), `up_to` = the largest base_i / ours_i and `up_to_sentence` its index."""
    b, o = np.asarray(base, np.float64), np.asarray(ours, np.float64)
    if b.size == 0 or o.size != b.size or not np.all(o > 0):
        return {"mean": None, "up_to": None, "up_to_sentence": None}
    per = b / o
    i = int(np.argmax(per))
    return {"mean": float(b.mean() / o.mean()), "up_to": float(per[i]), "up_to_sentence": i}


def savings(energy: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """`savings.{vs_no_exit,vs_early_exit}.{mean,up_to}`, `early_exit_vs_no_exit` (early exit alone) and, with an
    `oracle` mode, `vs_oracle.{mean,max}`: ee+dvfs energy / oracle energy (>= 1 unless the plan beats the single
    point per sentence), mean over the set and the worst sentence."""
    out: dict[str, dict[str, Any]] = {}
    dvfs = energy.get("ee+dvfs")
    if dvfs is not None:
        for key, mode in (("vs_no_exit", "no-exit"), ("vs_early_exit", "early-exit")):
            if mode in energy:
                out[key] = ratio_stats(energy[mode], dvfs)
        if "oracle" in energy:
            cost = ratio_stats(dvfs, energy["oracle"])
            worst = None if cost["mean"] is None else float(np.max(np.asarray(dvfs) / np.asarray(energy["oracle"])))
            out["vs_oracle"] = {"mean": cost["mean"], "max": worst}
    if "no-exit" in energy and "early-exit" in energy:
        out["early_exit_vs_no_exit"] = ratio_stats(energy["no-exit"], energy["early-exit"])
    return out


def best_means(runs: Iterable[Mapping[str, Any]], keys: Sequence[str] = ("vs_no_exit", "vs_early_exit")
               ) -> dict[str, dict[str, dict[str, Any]]]:
    """Per policy and saving: the (target, threshold) with the best mean saving, and the largest per-sentence saving
    of any run (`runs`: sweep entries with policy, target_s, threshold and savings)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        pol = out.setdefault(run["policy"], {})
        for key in keys:
            s = run["savings"].get(key) or {}
            if s.get("mean") is None:
                continue
            cur = pol.setdefault(key, {"mean": -np.inf, "up_to": -np.inf})
            if s["mean"] > cur["mean"]:
                cur.update(mean=s["mean"], mean_at={"target_s": run["target_s"], "threshold": run["threshold"]})
            if s["up_to"] > cur["up_to"]:
                cur.update(up_to=s["up_to"], up_to_at={"target_s": run["target_s"], "threshold": run["threshold"],
                                                       "sentence": s["up_to_sentence"]})
    return out
