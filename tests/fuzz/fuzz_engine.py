"""The fuzzing harness: run mutants under a hang guard, classify each outcome, drive hypothesis in bounded chunks.

An outcome is *clean* (a result), an *error* (the package's one error root, `EdgebertError`), or an *escape*:
anything else — an exception of another type (a traceback), a hang past `HANG_SECONDS`, a non-finite number in a
report, a disassembly that does not re-assemble to the same bytes, or a file read the tool must refuse.
The hang alarm fires between Python bytecodes: one unbounded C call (reading a device to the end) is not
interrupted but shows as the campaign running out of memory, which is why every read has a size bound.
"""

from __future__ import annotations

import math
import re
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition

from edgebert.isa.errors import EdgebertError

HANG_SECONDS = 30.0
#: Called with the tally after every chunk of a campaign (scripts/fuzz.py prints progress); None: silent.
PROGRESS: Callable[[Tally], None] | None = None
SEEDS = Path(__file__).resolve().parent / "seeds"


class Hang(BaseException):  # noqa: N818 - a BaseException so that no `except Exception` in the target swallows it
    """Raised by the alarm when one mutant runs past HANG_SECONDS."""


class Escape(Exception):  # noqa: N818 - the name of the outcome, not an error of the harness
    """A property the target broke without raising (non-finite report, round trip, unsafe read)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass
class Finding:
    """One escape: its kind, message, traceback and the mutant that caused it (bytes, for a regression test)."""

    campaign: str
    kind: str
    message: str
    trace: str
    artifact: bytes
    suffix: str


@dataclass
class Tally:
    """Counts of one campaign."""

    name: str
    runs: int = 0
    clean: int = 0
    errors: int = 0
    escapes: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    slowest: tuple[float, bytes] = (0.0, b"")  # seconds and artifact of the slowest mutant
    error_samples: Counter[str] = field(default_factory=Counter)  # error classes seen (type and message start)
    skipped: int = 0  # mutants the mutator itself could not build (not run, not counted)

    def line(self) -> str:
        return (f"{self.name:7s} {self.runs:8,d} mutants  {self.clean:7,d} clean  {self.errors:7,d} errors  "
                f"{len(self.escapes):4d} escapes  {self.seconds:8.1f} s (slowest mutant {self.slowest[0]:.2f} s)"
                + (f"  [{self.skipped} unbuildable mutants skipped]" if self.skipped else ""))


@contextmanager
def time_limit(seconds: float):
    """Raise Hang in the main thread when the block runs longer than `seconds`."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def guarded(tally: Tally, artifact: bytes, suffix: str, target: Callable[[], Any]) -> None:
    """Run one mutant's target and count its outcome in `tally`."""
    tally.runs += 1
    start = time.monotonic()
    try:
        with time_limit(HANG_SECONDS):
            target()
    except EdgebertError as exc:
        tally.errors += 1
        tally.error_samples[f"{type(exc).__name__}: {re.sub(r'[0-9]+', 'N', str(exc).split(': ', 1)[-1])[:70]}"] += 1
        return
    except Escape as exc:
        tally.escapes.append(Finding(tally.name, exc.kind, str(exc), traceback.format_exc(), artifact, suffix))
        return
    except Hang as exc:
        tally.escapes.append(Finding(tally.name, "hang", str(exc), traceback.format_exc(), artifact, suffix))
        return
    except Exception as exc:  # noqa: BLE001 - anything else is exactly what the fuzzer looks for
        tally.escapes.append(Finding(tally.name, "crash", f"{type(exc).__name__}: {exc}"[:500],
                                     traceback.format_exc(), artifact, suffix))
        return
    finally:
        took = time.monotonic() - start
        if took > tally.slowest[0]:
            tally.slowest = (took, artifact)
    tally.clean += 1


def check_finite(value: Any, where: str = "report") -> None:
    """Escape when a report holds NaN or an infinity anywhere."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Escape("nonfinite", f"{where} = {value}")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_finite(v, f"{where}[{i}]")


def drive(tally: Tally, body: Callable[[Any], None], count: int, seed: int, deadline: float | None,
          chunk: int = 500, progress: Callable[[Tally], None] | None = None) -> Tally:
    """Call `body(data)` (hypothesis `st.data()`) `count` times, in chunks of fresh seeds, until `deadline`;
    `progress(tally)` after each chunk (default: the module's PROGRESS hook, None in tests)."""
    start = time.monotonic()
    round_ = 0
    while tally.runs < count and (deadline is None or time.monotonic() < deadline):
        before = tally.runs
        n = min(chunk, count - tally.runs)

        @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @hypothesis_seed(seed * 1_000_003 + round_)
        @given(st.data())
        def run(data: Any) -> None:
            if tally.runs < count and (deadline is None or time.monotonic() < deadline):
                try:
                    body(data)
                except Exception:  # noqa: BLE001 - a mutator that cannot build its mutant; targets run in guarded()
                    tally.skipped += 1

        try:
            run()
        except FlakyStrategyDefinition:
            # the deadline passed between two runs of one example (the second drew nothing): the budget is spent
            if deadline is not None and time.monotonic() >= deadline:
                break
            raise
        round_ += 1
        if (progress or PROGRESS) is not None:
            (progress or PROGRESS)(tally)
        if tally.runs == before:
            break
    tally.seconds += time.monotonic() - start
    return tally
