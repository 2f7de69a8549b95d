"""Write an ALBERT-base-shaped EdgeBERT program skeleton (.ebin, optionally its assembly) with a DVFS plan.

    python examples/asm/make_albert_skeleton.py -o albert_t023.ebin --threshold 0.23 \
        --table ../shared/data/edgebert-sst2/sst2_lookup_table.csv --latency-target 50ms [-S albert.s]

Structure, tokens and costs are real (see `edgebert.emulator.albert_skeleton`); weights are zeros, so run it with
recorded entropies: `edgebert-bench albert_t023.ebin --entropy-trace .../sst2_eval_entropy.txt`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebert.emulator.albert_skeleton import SkeletonConfig, build_planned_skeleton, build_skeleton
from edgebert.frontend.predictor import predicted_exit_layers
from edgebert.isa.ebin import save_ebin
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import default_config
from edgebert.isa.traces import read_lookup_table
from edgebert.isa.units import parse_duration


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--output", required=True, help=".ebin to write")
    p.add_argument("-S", "--assembly", help="also write the disassembly here")
    p.add_argument("--threshold", type=float, default=0.23, help="entropy threshold of the exits")
    p.add_argument("--table", help="lookup-table CSV (sst2_lookup_table.csv format); without it no DVFS plan")
    p.add_argument("--latency-target", default="50ms", help="per-sentence latency target for the DVFS plan")
    p.add_argument("--margin", type=float, default=0.0, help="planning margin (fraction of the target)")
    p.add_argument("--density", type=float, default=0.5, help="kept encoder weights (1.0: dense, no masks)")
    p.add_argument("--layers", type=int, default=12)
    args = p.parse_args(argv)
    try:
        cfg = SkeletonConfig(layers=args.layers, density=args.density, threshold=args.threshold)
        if args.table:
            exits = predicted_exit_layers(read_lookup_table(args.table), args.threshold, args.layers)
            program, plan = build_planned_skeleton(cfg, exits, parse_duration(args.latency_target), margin=args.margin)
            print(plan.describe(default_config()))
        else:
            program = build_skeleton(cfg)
        save_ebin(program, args.output)
        if args.assembly:
            from edgebert.isa.disassembler import disassemble

            Path(args.assembly).write_text(disassemble(program))
    except EdgebertError as exc:
        print(f"make_albert_skeleton: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.output}: {len(program.code)} instructions, {Path(args.output).stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
