"""edgebertc: compile an ONNX model to an `.ebin` program (or assembly with -S)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebert.isa.errors import EdgebertError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgebertc", description="Compile an ONNX ALBERT model for the edgebert accelerator."
    )
    p.add_argument("model", help="ONNX model (external weight files next to it are read too)")
    p.add_argument("-o", "--output", help="output file (default: the model name with .ebin, or .s with -S)")
    p.add_argument("--seq-len", type=int, default=None, help="fix the sequence length of [batch, seq] inputs")
    p.add_argument("--hw", default=None, help="hardware config TOML (default: the shipped EdgeBERT config)")
    p.add_argument("-S", dest="assembly", action="store_true", help="write assembly instead of a binary")
    p.add_argument("--dump-ir", metavar="DIR", default=None, help="write the IR after each pass into DIR")
    p.add_argument("-v", "--verbose", action="store_true", help="print each pass's wall time")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from edgebert.compiler.pipeline import compile_onnx
        from edgebert.isa.hardware import load_config

        hw = load_config(args.hw)
        if args.seq_len is not None and args.seq_len <= 0:
            raise EdgebertError(f"--seq-len must be positive, got {args.seq_len}")
        if not Path(args.model).is_file():
            raise EdgebertError(f"{args.model}: no such file")
        timings: dict[str, float] = {}
        result = compile_onnx(args.model, args.seq_len, hw, dump_dir=args.dump_ir, timings=timings)
        out = args.output or str(Path(args.model).with_suffix(".s" if args.assembly else ".ebin"))
        if args.assembly:
            from edgebert.isa.disassembler import disassemble

            Path(out).write_text(disassemble(result.program))
        else:
            from edgebert.isa.ebin import save_ebin

            save_ebin(result.program, out)
    except EdgebertError as exc:
        print(f"edgebertc: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"edgebertc: error: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        total = sum(timings.values())
        for name, secs in timings.items():
            print(f"{name:40s} {secs * 1000:9.1f} ms", file=sys.stderr)
        print(f"{'total':40s} {total * 1000:9.1f} ms", file=sys.stderr)
        print(
            f"{len(result.program.code)} instructions, SRAM peak {result.sram_peak_bytes} bytes, "
            f"{result.token_pairs} token pairs -> {out}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
