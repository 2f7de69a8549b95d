"""Encoder zoo at BERT-base size (768/12/3072, 12 layers, seq 128): does each compile, how long, how fast it runs.

    python benchmarks/bench_encoders.py                          # BERT-base-shaped BERT (opsets 18, 20) and ALBERT
    python benchmarks/bench_encoders.py --family bert --family roberta --export legacy18 --export dynamo
    python benchmarks/bench_encoders.py --family bert --export legacy20 --no-emulate --json out/bench.json
    python benchmarks/bench_encoders.py --family bert --unrolled     # + the same model with its layers unrolled

For each model (examples/build_encoder.py, `--size base`, sequence classification, re-randomised weights): export,
then edgebertc's wall time (per stage) next to onnxruntime's session creation for the same file, then the emulator's
wall time per sentence next to onnxruntime's (both warm: the emulator's one-time setup, decoding the program and
loading its weights into the memory image, is printed apart), the emulated cycles, whether the layers became one loop body
(ALBERT's shared layer; BERT's 12 distinct layers with their weights read from a per-layer table) or were unrolled,
and the max abs error against onnxruntime. `--unrolled` also compiles the model with layers that differ kept
unrolled (the compiler before per-layer weight tables) and prints its instructions, compile time and cycles. A model
that does not compile prints its failure class (scripts/encoder_matrix.py) and how long it took to fail.
Wall times on a shared machine are noisy: the ratios, measured in the same run, are the numbers to read.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see bench_compiler.py: BLAS threads fight on 2 cores

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CASES = (("bert", "legacy18"), ("bert", "dynamo"), ("roberta", "legacy14"), ("albert", "legacy18"))


def _matrix():
    if "encoder_matrix" not in sys.modules:
        spec = importlib.util.spec_from_file_location("encoder_matrix", REPO / "scripts" / "encoder_matrix.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["encoder_matrix"] = module
        spec.loader.exec_module(module)
    return sys.modules["encoder_matrix"]


@dataclasses.dataclass
class BenchRow:
    name: str
    status: str = "pass"
    failure_class: str = ""
    error: str = ""
    export_s: float = 0.0
    compile_s: float = 0.0
    compile_stages: dict[str, float] = dataclasses.field(default_factory=dict)
    ort_session_s: float = 0.0
    emulate_s: float | None = None  # one sentence, steady state (the Runner built and warmed up)
    emulator_setup_s: float | None = None  # Runner(program): decode, memory image with the weights
    ort_run_s: float | None = None
    cycles: int | None = None
    instructions: int | None = None
    layer_loops: int | None = None
    max_abs_error: float | None = None
    unrolled: dict[str, float] | None = None  # --unrolled: instructions, compile_s, cycles of the unrolled program


def _spec(family: str, export: str, seq_len: int, size: str):
    zoo = _matrix().zoo
    exporter = "dynamo" if export.startswith("dynamo") else "legacy"
    opset = int(export[len(exporter):]) if export[len(exporter):] else None
    return zoo.EncoderSpec(family, "sequence-classification", size=size, exporter=exporter, opset=opset,
                           seq_len=seq_len, pad=7)


def compile_unrolled(path: Path, seq_len: int):
    """The model compiled with layers that differ unrolled (no per-layer weight table): every stage as compile_onnx,
    with OutlineLayerLoops(per_layer_weights=False)."""
    from edgebert.compiler.pipeline import compile_relax, relax_passes
    from edgebert.compiler.relax_passes import OutlineLayerLoops, run_passes
    from edgebert.frontend import load_onnx, to_relax

    loaded = load_onnx(path, seq_len)
    mod = run_passes(to_relax(loaded), [*relax_passes(layer_loops=False), OutlineLayerLoops(per_layer_weights=False)])
    return compile_relax(mod, output_names=list(loaded.output_names), output_shapes=[t.shape for t in loaded.outputs])


def bench_one(spec, workdir: Path, emulate: bool = True, unrolled: bool = False) -> BenchRow:
    """Export, compile, (emulate), compare one model; failures are recorded, not raised."""
    import onnxruntime as ort

    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.emulator import run
    from edgebert.emulator.runner import Runner

    m = _matrix()
    row = BenchRow(spec.name)
    t0 = time.perf_counter()
    done = m.zoo.build_encoder(**{**dataclasses.asdict(spec), "path": workdir / f"{spec.name}.onnx"})
    row.export_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
    row.ort_session_s = time.perf_counter() - t0
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            compiled = compile_onnx(done.path, spec.seq_len, timings=timings)
    except Exception as e:  # a benchmark reports what does not compile yet
        row.status, row.error = "fail", m.one_line(e)
        row.failure_class = m.classify("compile", row.error, spec.dynamic)
        return row
    finally:
        row.compile_s = time.perf_counter() - t0
        row.compile_stages = {k: round(v, 2) for k, v in timings.items() if v >= 0.1}
    row.instructions = len(compiled.program.code)
    row.layer_loops = len(compiled.tile_program.loops)
    if not emulate:
        return row
    t0 = time.perf_counter()
    runner = Runner(compiled.program)
    row.emulator_setup_s = time.perf_counter() - t0
    runner.run(done.inputs)  # warm-up, as onnxruntime's first run below
    t0 = time.perf_counter()
    result = runner.run(done.inputs)
    row.emulate_s = time.perf_counter() - t0
    row.cycles = int(result.report["cycles"])
    feeds = {i.name: done.inputs[i.name] for i in sess.get_inputs()}
    sess.run(None, feeds)
    t0 = time.perf_counter()
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))
    row.ort_run_s = time.perf_counter() - t0
    row.max_abs_error = max(m.compare(result.outputs, want).values())
    if row.max_abs_error > m.TOL:
        row.status, row.failure_class = "fail", "mismatch"
    if unrolled:
        t0 = time.perf_counter()
        flat = compile_unrolled(done.path, spec.seq_len)
        compile_s = time.perf_counter() - t0
        flat_run = run(flat.program, done.inputs)
        row.unrolled = {"instructions": len(flat.program.code), "compile_s": round(compile_s, 2),
                        "cycles": int(flat_run.report["cycles"]),
                        "max_abs_error": max(m.compare(flat_run.outputs, want).values())}
    return row


def report(row: BenchRow) -> str:
    if row.error:
        return (f"{row.name}: FAILS ({row.failure_class}) after {row.compile_s:.1f} s of compiling "
                f"(export {row.export_s:.1f} s): {row.error[:160]}")
    layout = (f"{row.layer_loops} layer loop(s)" if row.layer_loops else "layers unrolled")
    lines = [f"{row.name}: compiles, {row.instructions} instructions, {layout}",
             f"  compile wall time  edgebertc {row.compile_s:7.1f} s   onnxruntime session {row.ort_session_s:6.2f} s"
             f"   ratio {row.compile_s / max(row.ort_session_s, 1e-9):.0f}x   (export {row.export_s:.1f} s)",
             "  edgebertc stages (s): " + ", ".join(f"{k} {v}" for k, v in row.compile_stages.items())]
    if row.emulate_s is not None:
        lines.append(f"  per sentence       emulator {row.emulate_s:7.1f} s   onnxruntime {row.ort_run_s:8.3f} s"
                     f"   ratio {row.emulate_s / max(row.ort_run_s, 1e-9):.0f}x;  {row.cycles:,} emulated cycles; "
                     f"max abs err vs onnxruntime {row.max_abs_error:.2e} ({row.status}); emulator setup "
                     f"{row.emulator_setup_s:.1f} s once per program")
    if row.unrolled:
        u = row.unrolled
        lines.append(f"  unrolled           {u['instructions']} instructions, compiles in {u['compile_s']:.1f} s, "
                     f"{u['cycles']:,} cycles (loop / unrolled: {row.cycles / u['cycles']:.4f}), "
                     f"max abs err {u['max_abs_error']:.2e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_encoders", description=__doc__.splitlines()[0])
    p.add_argument("--family", action="append",
                   help="families (default DEFAULT_CASES: BERT legacy 18 and dynamo, RoBERTa legacy 14, ALBERT legacy 18)")
    p.add_argument("--export", action="append", help="legacy14 .. legacy20, dynamo, dynamo18 (default legacy18)")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length (default 128)")
    p.add_argument("--size", default="base", choices=("tiny", "base"), help="model size (default base: BERT-base shapes)")
    p.add_argument("--no-emulate", action="store_true", help="compile only (the emulator takes ~1 min per model)")
    p.add_argument("--unrolled", action="store_true", help="also compile and run with layers that differ unrolled")
    p.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = p.parse_args(argv)
    if args.family or args.export:
        cases = [(f, e) for f in (args.family or ["bert"]) for e in (args.export or ["legacy18"])]
    else:
        cases = list(DEFAULT_CASES)
    from tvm.relax.frontend import onnx as _warm_up  # noqa: F401  (TVM's ~4 s first import is not compile time)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_encoders.") as tmp:
        for family, export in cases:
            row = bench_one(_spec(family, export, args.seq_len, args.size), Path(tmp), not args.no_emulate,
                            args.unrolled and not args.no_emulate)
            print(report(row), flush=True)
            rows.append(row)
            for leftover in Path(tmp).iterdir():  # base models are ~0.4 GB each
                leftover.unlink()
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
