"""Cycle fidelity: every job of a SystemC cycle table run on the emulator, error per row and per unit.

    python benchmarks/bench_fidelity.py --csv ../shared/data/edgebert-cmod/cycles.csv [--hw NAME|FILE]
    python benchmarks/bench_fidelity.py --closed-forms 2000 [--seed 1] [--hw NAME|FILE]

Each row of the table (the format of `cycles.csv`: unit, job, n0, m, n1, nv, nt, sparse_density, cycles,
testbench) becomes the smallest program that does that job, built with the instruction encoder; its instruction's
duration on the emulator is compared with the measured cycles. Rows measured through the integrated accelerator
(`TopAccel*`) run under the config as it is; `PUModule*` rows without the controller's launch overhead;
`SFU_param(LAT=L)` rows with the unit alone and every SFU memory read L cycles late (`emulator/fidelity.py`).
`encode` rows are skipped (the encoder is inside the PU path). `--closed-forms N` instead checks N random shapes
the table does not hold against the closed forms fitted to the SystemC model (the README next to `cycles.csv`).
The last line is `max error: pu X %, layernorm X %, softmax X %, entropy X %, elemadd X %, dma X %, dvfs X %`;
`--check` exits 1 when a matrix job is off by more than 5 % or any other job by more than 10 %.
"""

from __future__ import annotations

import argparse
import sys

from edgebert.emulator.fidelity import closed_form_jobs, compare, max_errors, read_jobs, summary_line, within_bounds
from edgebert.isa.errors import run_cli
from edgebert.isa.hardware import load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="job table in the cycles.csv format")
    src.add_argument("--closed-forms", type=int, metavar="N", help="N random shapes from the fitted closed forms")
    p.add_argument("--seed", type=int, default=1, help="seed of --closed-forms (default 1)")
    p.add_argument("--hw", default="edgebert-cmod", metavar="NAME|FILE", help="hardware config (default edgebert-cmod)")
    p.add_argument("--check", action="store_true", help="exit 1 when a unit exceeds its bound (pu 5 %%, others 10 %%)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    args = p.parse_args(argv)

    def body() -> int:
        hw = load_config(args.hw)
        jobs = read_jobs(args.csv) if args.csv else closed_form_jobs(args.closed_forms, args.seed)
        outcomes = compare(hw, jobs)
        if not args.quiet:
            print(f"{'unit':<10} {'shape':<22} {'testbench':<18} {'reference':>9} {'emulator':>9} {'error %':>8}")
            for o in outcomes:
                j = o.job
                print(f"{j.unit:<10} {j.shape:<22} {j.testbench:<18} {j.cycles:>9} {o.emulated:>9} {o.error_pct:>8.1f}")
        worst = max_errors(outcomes)
        print(summary_line(worst))
        return 1 if args.check and not within_bounds(worst) else 0

    return run_cli("bench_fidelity", body)


if __name__ == "__main__":
    sys.exit(main())
