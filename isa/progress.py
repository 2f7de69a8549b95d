"""Progress of long work: library code reports to a `Progress` its caller passes (the base class does nothing);
command lines pass `terminal_progress(quiet)`, rich bars on a terminal and nothing when quiet or piped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ProgressTask:
    """One bar (or spinner when `total` is None); the base class ignores every call."""

    def advance(self, amount: float = 1, *, description: str | None = None) -> None:
        """`amount` more units of work done (and optionally a new description, e.g. the latest loss)."""

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        """Set how much is done, the total or the description."""

    def close(self) -> None:
        """The work is finished: the bar stops (and stays on screen, complete)."""

    def __enter__(self) -> ProgressTask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Where library code reports progress; this base class is silent (the default when none is given)."""

    def task(self, description: str, total: float | None = None) -> ProgressTask:
        """A new bar of `total` units (None: unknown, a spinner)."""
        return ProgressTask()

    def note(self, line: str) -> None:
        """A line worth keeping (an epoch's loss and accuracy, a phase's result); silent here."""


#: The silent default.
SILENT = Progress()


def progress_or_silent(progress: Progress | None) -> Progress:
    """`progress`, or the silent one when None (or anything else that is not a Progress, e.g. False)."""
    return progress if isinstance(progress, Progress) else SILENT


def _escape(text: str) -> str:
    """`text` shown as written (rich would read `[train]` as markup)."""
    from rich.markup import escape

    return escape(text)


class _RichTask(ProgressTask):
    def __init__(self, owner: RichProgress, task_id: Any) -> None:
        self._owner, self._id = owner, task_id

    def advance(self, amount: float = 1, *, description: str | None = None) -> None:
        kw = {"description": _escape(description)} if description is not None else {}
        self._owner.bars.update(self._id, advance=amount, **kw)

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        kw = {k: v for k, v in (("completed", completed), ("total", total),
                                ("description", None if description is None else _escape(description)))
              if v is not None}
        self._owner.bars.update(self._id, **kw)

    def close(self) -> None:
        bars = self._owner.bars
        task = bars.tasks[[t.id for t in bars.tasks].index(self._id)]
        if task.total is None:  # a spinner: show it as done
            bars.update(self._id, total=max(task.completed, 1), completed=max(task.completed, 1))
        else:
            bars.update(self._id, completed=task.total)
        bars.stop_task(self._id)


def _counts_column() -> Any:
    """`done/total`, blank for a spinner (unknown total)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Counts(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text("" if task.total is None else f"{int(task.completed)}/{int(task.total)}", style="green")

    return Counts()


def _eta_column() -> Any:
    """`ETA 0:01:23` while a bar with a total runs, blank otherwise."""
    from rich.progress import ProgressColumn, TimeRemainingColumn
    from rich.text import Text

    remaining = TimeRemainingColumn()

    class Eta(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.total is None or task.finished:
                return Text("")
            return Text("ETA ") + remaining.render(task)

    return Eta()


class RichProgress(Progress):
    """Rich bars on stderr (description, bar, done/total, elapsed, ETA); notes printed above them. `bars=False`: no
    bars (output not a terminal), notes printed as plain lines."""

    def __init__(self, bars: bool = True, notes: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars

        self.console = Console(stderr=True)
        self.bars = Bars(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _counts_column(),
                         TimeElapsedColumn(), _eta_column(), console=self.console, disable=not bars)
        self._notes = notes
        self._bars_on = bars

    def task(self, description: str, total: float | None = None) -> ProgressTask:
        return _RichTask(self, self.bars.add_task(_escape(description), total=total))

    def note(self, line: str) -> None:
        if not self._notes:
            return
        if self._bars_on:
            self.bars.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()


@contextmanager
def terminal_progress(quiet: bool = False, *, notes: bool | None = None) -> Iterator[Progress]:
    """The progress a command line shows: rich bars on stderr when it is a terminal and not `quiet`; `notes` (default:
    not quiet) are printed either way (plain lines when stderr is not a terminal)."""
    if quiet and not notes:
        yield SILENT
        return
    on_terminal = sys.stderr.isatty()
    with RichProgress(bars=on_terminal and not quiet, notes=not quiet if notes is None else notes) as progress:
        yield progress
