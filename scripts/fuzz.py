"""Long fuzzing runs over every boundary edgebert reads: `.ebin` files, program metadata, assembly, ONNX models,
run inputs and command lines (the campaigns of tests/fuzz; the test suite runs each for a few seconds).

    python scripts/fuzz.py                          # the default counts (100,000 .ebin mutants, 20,000 sources, ...)
    python scripts/fuzz.py --minutes 30             # share 30 minutes between the campaigns
    python scripts/fuzz.py --ebin 100000 --asm 20000 --onnx 300 --inputs 500 --meta 0 --cli 0 --out escapes/

An escape is anything but a clean result or the package's error (`EdgebertError`): a traceback, a hang past 30 s,
a non-finite number in a report, a disassembly that does not re-assemble, an input file overwritten, external data
read from outside the model's folder. Escapes are listed (and saved with --out); the exit code is 1 if any.

Why hypothesis and not atheris: the mutators are structure-aware (sections, JSON paths, instruction fields, ONNX
nodes), which hypothesis strategies express directly and reproducibly (seeded chunks); it is already a test
dependency, runs in-process on CPython 3.11 with no compiler toolchain, and the same campaigns run under pytest in
CI. Atheris's coverage feedback matters less when the generator already knows the format, and it needs a
libFuzzer build. Campaigns come from tests/fuzz/campaigns.py: one entry there adds an option here (e.g. `--hw N`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

import fuzz_engine  # noqa: E402
from campaigns import CAMPAIGNS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, help="wall-time budget shared by the campaigns (counts become caps)")
    parser.add_argument("--seed", type=int, default=1, help="base seed (runs are reproducible per seed)")
    parser.add_argument("--out", type=Path, help="save each escape's mutant and traceback in this folder")
    for name, (_, default) in CAMPAIGNS.items():
        parser.add_argument(f"--{name}", type=int, metavar="N", help=f"{name} mutants (default {default:,})")
    args = parser.parse_args(argv)
    previous, fuzz_engine.PROGRESS = fuzz_engine.PROGRESS, lambda t: print(f"  ... {t.line()}", file=sys.stderr,
                                                                         flush=True)
    try:
        return _run(args)
    finally:
        fuzz_engine.PROGRESS = previous


def _run(args: argparse.Namespace) -> int:
    counts = {}
    for name, (_, default) in CAMPAIGNS.items():
        given = getattr(args, name)
        counts[name] = given if given is not None else (10**12 if args.minutes else default)
    selected = [n for n in CAMPAIGNS if counts[n] > 0]
    start = time.monotonic()
    end = start + args.minutes * 60 if args.minutes else None
    tallies = []
    for i, name in enumerate(selected):
        deadline = None
        if end is not None:  # an equal share of what is left (time a campaign does not use rolls over)
            deadline = time.monotonic() + (end - time.monotonic()) / (len(selected) - i)
        tally = CAMPAIGNS[name][0](counts[name], args.seed, deadline)
        print(tally.line(), flush=True)
        tallies.append(tally)
    escapes = [e for t in tallies for e in t.escapes]
    total = time.monotonic() - start
    print(f"total   {sum(t.runs for t in tallies):8,d} mutants  {len(escapes)} escapes  {total:.0f} s wall")
    for e in escapes[:20]:
        print(f"  {e.campaign} {e.kind}: {e.message[:200]}")
    if args.out and escapes:
        args.out.mkdir(parents=True, exist_ok=True)
        for k, e in enumerate(escapes):
            stem = args.out / f"{e.campaign}-{k:04d}-{e.kind}"
            stem.with_suffix(e.suffix).write_bytes(e.artifact)
            stem.with_suffix(".txt").write_text(f"{e.message}\n\n{e.trace}")
    return 1 if escapes else 0


if __name__ == "__main__":
    sys.exit(main())
