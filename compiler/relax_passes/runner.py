"""Run a list of Relax passes one at a time, timing each and optionally dumping the IR after each."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import tvm

from edgebert.isa.errors import CompileError

log = logging.getLogger(__name__)


def pass_name(p) -> str:
    """A pass's registered name (e.g. `FoldConstant`, `edgebert.OutlineLayerLoops`)."""
    info = getattr(p, "info", None)
    return str(info.name) if info is not None else getattr(p, "__name__", type(p).__name__)


def run_passes(
    mod: tvm.IRModule,
    passes: list,
    dump_dir: str | Path | None = None,
    timings: list[tuple[str, float]] | dict[str, float] | None = None,
) -> tvm.IRModule:
    """Apply `passes` in order. With `dump_dir`, write `mod.script()` after each to `NN_<pass>.py` (00 is the
    input). Wall time per pass: appended as (name, seconds) to a list `timings`, or added to a dict `timings`
    under "relax:<name>". A pass may be a tvm Pass or a plain callable. A pass that raises becomes a
    CompileError naming the pass."""
    dump = Path(dump_dir) if dump_dir is not None else None
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        (dump / "00_input.py").write_text(mod.script(show_meta=False))
    for index, p in enumerate(passes, start=1):
        name = pass_name(p)
        start = time.perf_counter()
        try:
            mod = p(mod)
        except CompileError:
            raise
        except Exception as e:  # TVM errors carry pages of context; keep the last line
            lines = str(e).strip().splitlines()
            raise CompileError(f"pass {name} failed: {lines[-1] if lines else type(e).__name__}") from e
        elapsed = time.perf_counter() - start
        log.debug("pass %s: %.3f s", name, elapsed)
        if isinstance(timings, dict):
            timings[f"relax:{name}"] = timings.get(f"relax:{name}", 0.0) + elapsed
        elif timings is not None:
            timings.append((name, elapsed))
        if dump is not None:
            safe = re.sub(r"[^A-Za-z0-9_]+", "_", name)
            (dump / f"{index:02d}_{safe}.py").write_text(mod.script(show_meta=False))
    return mod
