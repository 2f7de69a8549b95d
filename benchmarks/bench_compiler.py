"""Compiler benchmark on ALBERT-base (seq 128): compile time, cycles vs roofline, emulator vs onnxruntime.

    python benchmarks/bench_compiler.py [--model base.onnx --inputs in.npz] [--seq-len 128] [--repeat 3]

Prints, each measured side by side in the same run:
  (a) edgebertc wall time vs `tvm.compile(mod, "llvm")` of the same imported Relax module;
  (b) emulated cycles vs the roofline lower bound of the same hardware config (`emulator.roofline`, as
      bench_memory.py: the PU's MACs at its peak rate, DRAM / eNVM bytes / bandwidth, the SRAM DMA port's bytes,
      the SFU's work), bytes as the program moves them;
  (c) emulator wall time per sentence vs onnxruntime on the same model and input.
Without --model, builds a re-randomised ALBERT-base (no download) into a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The emulator's matmuls are numpy/OpenBLAS calls of a few MFLOP each; with OpenBLAS's default threading on a
# shared 2-core machine the threads spin against each other and run ~10x slower than one thread. Pin BLAS to one
# thread unless the caller chose otherwise (onnxruntime keeps its own default thread pool).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="ONNX model (default: build ALBERT-base)")
    p.add_argument("--inputs", type=Path, help=".npz of inputs matching --model")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length of the built model (default 128)")
    p.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    args = p.parse_args(argv)

    import onnxruntime as ort
    import tvm
    from tvm import relax

    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.emulator import run
    from edgebert.emulator.roofline import program_roofline
    from edgebert.frontend import load_onnx, to_relax
    from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export, make_inputs
    from edgebert.isa.hardware import default_config

    hw = default_config()
    tmp = tempfile.TemporaryDirectory()
    if args.model is None:
        spec = ExportSpec(seq_len=args.seq_len, outputs=("logits", "last_hidden_state", "pooler_output"))
        model, cfg = build_and_export(Path(tmp.name) / "albert-base.onnx", preset="albert-base", spec=spec, seed=0)
        inputs = make_inputs(args.seq_len, cfg.vocab_size, pad=5, seed=0)
    else:
        model = args.model
        inputs = dict(np.load(args.inputs)) if args.inputs else None
        if inputs is None:
            return print("--inputs is required with --model", file=sys.stderr) or 2

    # (a) compile time, each side from the ONNX file
    compiled = None

    def edgebertc():
        nonlocal compiled
        compiled = compile_onnx(model, args.seq_len, hw)

    def tvm_llvm():
        mod = to_relax(load_onnx(model, args.seq_len))
        return tvm.compile(mod, "llvm")

    edgebertc()  # warm-up: first TVM use pays one-off initialisation
    t_ebc = _median_time(edgebertc, args.repeat)
    ex = tvm_llvm()
    t_tvm = _median_time(tvm_llvm, args.repeat)
    del ex, relax

    # (b) cycles vs roofline
    result = run(compiled.program, inputs, hw)
    report = result.report
    bound, by, bounds = program_roofline(report, hw)

    # (c) emulator vs onnxruntime per sentence (same model, same input)
    t_emu = _median_time(lambda: run(compiled.program, inputs, hw), args.repeat)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    sess.run(None, inputs)
    t_ort = _median_time(lambda: sess.run(None, inputs), max(args.repeat, 5))
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs), strict=True))
    err = max(float(np.max(np.abs(result.outputs[k] - v))) for k, v in want.items())

    print(
        f"model: {model} (seq {args.seq_len}), hw {hw.name}; {len(compiled.program.code)} instructions, "
        f"SRAM peak {compiled.sram_peak_bytes} B, max abs err vs onnxruntime {err:.2e}, races {report['race_count']}"
    )
    print(
        f"(a) compile wall time   edgebertc {t_ebc:8.2f} s   tvm.compile(llvm) {t_tvm:8.2f} s   "
        f"ratio {t_ebc / t_tvm:.2f}x"
    )
    stage = ", ".join(f"{k} {v:.2f}" for k, v in compiled.timings.items() if v >= 0.05)
    print(f"    edgebertc stages (s): {stage}")
    print(
        f"(b) cycles              program {report['cycles']:>12,d}   roofline {bound:>14,.0f}   "
        f"ratio {report['cycles'] / bound:.3f}x (bound: {by}; target <= 1.25x)"
    )
    print("    bounds (cycles): " + ", ".join(f"{k} {v:,.0f}" for k, v in bounds.items()))
    print(
        f"(c) per sentence        emulator {t_emu:8.3f} s   onnxruntime {t_ort:8.3f} s   "
        f"ratio {t_emu / t_ort:.2f}x (target <= 3x; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']})"
    )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
