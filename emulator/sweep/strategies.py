"""How a sweep picks its points: a fixed list (grid, random with a seed) or Optuna's multi-objective samplers
(NSGA-II or TPE) asking for points as results come in. Both resume from the rows already written."""

from __future__ import annotations

import math
from typing import Any

from edgebert.emulator.sweep.space import Point, grid_points, make_point, random_points
from edgebert.emulator.sweep.spec import Domain, Spec, range_values

MAX_REPEATS = 50  # proposals of already-measured points in a row before the strategy counts one as a sample


class ListStrategy:
    """A precomputed list of points; those with a row already are skipped (`--resume`)."""

    def __init__(self, points: list[Point], done: set[str]) -> None:
        self.total = len(points)
        self._todo = [p for p in points if p.id not in done]
        self.done_count = self.total - len(self._todo)

    def next_points(self, n: int) -> list[Point]:
        out, self._todo = self._todo[:n], self._todo[n:]
        return out

    def observe(self, point: Point, row: dict[str, Any]) -> None:
        """Nothing to learn."""

    @property
    def exhausted(self) -> bool:
        return not self._todo


class OptunaStrategy:
    """Optuna's ask/tell loop over the spec's parameters, minimising `spec.objectives`; failed and infeasible points
    are told as FAIL. Resuming replays the rows already written as finished trials (in point order)."""

    def __init__(self, spec: Spec, rows: list[dict[str, Any]]) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.spec = optuna, spec
        # A resumed study must not replay the sampler's random stream from the start (it would propose the measured
        # points again): its seed moves on with the rows already written.
        seed = spec.seed + len(rows)
        sampler = (optuna.samplers.NSGAIISampler(seed=seed) if spec.sampler == "nsga2"
                   else optuna.samplers.TPESampler(seed=seed, multivariate=True))
        self.study = optuna.create_study(directions=["minimize"] * len(spec.objectives), sampler=sampler)
        self.domains = spec.domains
        self.distributions = {d.name: _distribution(optuna, d) for d in self.domains}
        self.total = spec.samples or 0
        self._trials: dict[str, Any] = {}  # point id -> trial in flight
        self._rows = {r["point_id"]: r for r in rows}
        self.asked = 0
        for r in sorted(rows, key=lambda r: r["point"]):
            params = {d.name: _encode(d, r.get(d.name)) for d in self.domains}
            if any(v is None for v in params.values()):
                continue  # a row of another parameter set (the spec digest check makes this rare)
            self.study.add_trial(self._frozen(params, r))
            self.asked += 1
        self.done_count = self.asked

    def _frozen(self, params: dict[str, Any], row: dict[str, Any]) -> Any:
        state, values = self._outcome(row)
        return self.optuna.trial.create_trial(params=params, distributions=self.distributions, values=values,
                                              state=state)

    def _outcome(self, row: dict[str, Any]) -> tuple[Any, list[float] | None]:
        values = [row.get(o) for o in self.spec.objectives]
        if row.get("status") == "ok" and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return self.optuna.trial.TrialState.COMPLETE, [float(v) for v in values]
        return self.optuna.trial.TrialState.FAIL, None

    def next_points(self, n: int) -> list[Point]:
        out: list[Point] = []
        repeats = 0
        while len(out) < n and self.asked < self.total:
            trial = self.study.ask(self.distributions)
            chosen = {d.name: _decode(d, trial.params[d.name]) for d in self.domains}
            point = make_point(self.spec, self.asked, chosen)
            if point.id in self._rows or point.id in self._trials:
                # a point already measured (or in flight): tell the sampler its result and ask again; it counts
                # towards `samples` only when the sampler keeps repeating itself (a space smaller than `samples`)
                row = self._rows.get(point.id)
                if row is not None:
                    self._tell(trial, row)
                else:
                    self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                repeats += 1
                if repeats >= MAX_REPEATS:
                    self.asked += 1
                    repeats = 0
                continue
            self.asked += 1
            self._trials[point.id] = trial
            out.append(point)
        return out

    def _tell(self, trial: Any, row: dict[str, Any]) -> None:
        state, values = self._outcome(row)
        self.study.tell(trial, values=values, state=state)

    def observe(self, point: Point, row: dict[str, Any]) -> None:
        self._rows[point.id] = row
        trial = self._trials.pop(point.id, None)
        if trial is not None:
            self._tell(trial, row)

    @property
    def exhausted(self) -> bool:
        return self.asked >= self.total


def _distribution(optuna: Any, d: Domain) -> Any:
    if not d.is_range:
        return optuna.distributions.CategoricalDistribution(list(d.labels))
    if d.steps is not None:
        return optuna.distributions.CategoricalDistribution([f"{v:g}" if isinstance(v, float) else str(v)
                                                             for v in range_values(d, d.steps)])
    if d.integer:
        return optuna.distributions.IntDistribution(int(d.low), int(d.high), log=d.log)
    return optuna.distributions.FloatDistribution(d.low, d.high, log=d.log)


def _decode(d: Domain, raw: Any) -> tuple[Any, str]:
    """(value, label) of an Optuna parameter value."""
    if not d.is_range:
        i = d.labels.index(raw)
        return d.choices[i], d.labels[i]
    if d.steps is not None:
        value: Any = int(raw) if d.integer else float(raw)
        return value, raw
    value = int(raw) if d.integer else float(raw)
    return value, f"{value:g}" if isinstance(value, float) else str(value)


def _encode(d: Domain, column: Any) -> Any:
    """The Optuna parameter value of a row's column (None when the column does not fit the domain)."""
    if column is None:
        return None
    if not d.is_range:
        label = column if isinstance(column, str) and column in d.labels else None
        if label is None:
            matches = [lab for v, lab in zip(d.choices, d.labels, strict=True) if v == column]
            label = matches[0] if matches else None
        return label
    if d.steps is not None:
        return f"{column:g}" if isinstance(column, float) else str(column)
    return int(column) if d.integer else float(column)


def make_strategy(spec: Spec, rows: list[dict[str, Any]]) -> ListStrategy | OptunaStrategy:
    """The spec's strategy, resuming after `rows`."""
    done = {r["point_id"] for r in rows}
    if spec.strategy == "grid":
        return ListStrategy(grid_points(spec), done)
    if spec.strategy == "random":
        return ListStrategy(random_points(spec), done)
    return OptunaStrategy(spec, rows)
