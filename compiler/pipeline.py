"""The compiler's table of contents: ONNX -> Relax -> Relax passes -> tile program -> plan -> schedule -> Program.

compile_onnx(model)                       stage                         module
  1. load + check + fix shapes            frontend.load_onnx            edgebert.frontend.loader
  2. import into Relax                    frontend.to_relax             edgebert.frontend.loader
  3. Relax passes (cleanup, fusion,       relax_pipeline                edgebert.compiler.relax_passes
     layer loop)
  4. lowering to a tile program           lower_module                  backend, lowering, matmul, emitters
  5. memory planning                      place_constants_and_io,       memory_plan
                                          plan_sram
  6. scheduling                           hoist_loads, insert_tokens    schedule
  7. emission                             emit_program                  emit
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebert.compiler.abi import EXIT_WORD
from edgebert.compiler.compression import CompressionOptions, options_from_model
from edgebert.compiler.emit import emit_program
from edgebert.compiler.errors import SramOverflow, StagingTooSmall
from edgebert.compiler.lower.program import lower_program
from edgebert.compiler.memory_plan import place_constants_and_io, plan_sram
from edgebert.compiler.schedule import hoist_loads, insert_tokens
from edgebert.compiler.tile_ir import TileProgram
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig, default_config
from edgebert.isa.program import Program

log = logging.getLogger(__name__)

#: Each weight staging buffer takes 1/fraction of the SRAM; the planner tries the largest first.
STAGING_FRACTIONS = (6, 8, 12, 16, 32, 64)


@dataclass
class CompileResult:
    """The program plus what the stages learned (for tests, -v and benchmarks)."""

    program: Program
    tile_program: TileProgram
    sram_peak_bytes: int
    token_pairs: int
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _timed(timings: dict[str, float], name: str):
    t0 = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def relax_pipeline(mod: Any, dump_dir: Path | None, timings: dict[str, float]) -> Any:
    """Stage 3: cleanup, `edgebert.*` composite fusion and layer-loop outlining (compiler/relax_passes)."""
    from edgebert.compiler.relax_passes import default_passes, run_passes

    return run_passes(mod, default_passes(), dump_dir, timings)


def _dump(dump_dir: Path | None, name: str, text: Callable[[], str]) -> None:
    if dump_dir is not None:
        dump_dir.mkdir(parents=True, exist_ok=True)
        (dump_dir / name).write_text(text())


def compile_relax(
    mod: Any,
    hw: HardwareConfig | None = None,
    *,
    output_names: list[str] | None = None,
    output_shapes: list[tuple[int, ...]] | None = None,
    metadata: dict[str, Any] | None = None,
    dump_dir: Path | None = None,
    timings: dict[str, float] | None = None,
    early_exit: Any = None,
    compression: CompressionOptions | None = None,
) -> CompileResult:
    """Stages 4-7 on a Relax module whose `main` has static shapes (batch 1).

    `compression`: AF8 / bitmask-sparse weights (compiler/compression.py; compile_onnx derives it from metadata).

    `output_shapes` (from the ONNX graph) are checked against what the module computes. `early_exit` (an
    `early_exit.EarlyExitSpec`): exit heads become entropy + bexit, the output is `logits` (docs/compiler.md).
    """
    from edgebert.compiler.relax_passes import find_layer_loops

    hw = hw or default_config()
    timings = {} if timings is None else timings
    layer_loops = find_layer_loops(mod)
    # Bigger weight staging buffers mean fewer, wider matmuls; shrink them until the activations fit.
    overflow: CompileError | None = None
    for fraction in STAGING_FRACTIONS:
        try:
            with _timed(timings, "lower"):
                prog = lower_program(mod, hw, layer_loops, staging_fraction=fraction, output_names=output_names,
                                     early_exit=early_exit, compression=compression)
            with _timed(timings, "plan-memory"):
                place_constants_and_io(prog, hw)
                peak = plan_sram(prog, hw)
            break
        except (SramOverflow, StagingTooSmall) as exc:
            overflow = exc if isinstance(exc, SramOverflow) or overflow is None else overflow
    else:
        raise overflow
    _dump(dump_dir, "50-lowered.txt", lambda: format_tile_program(prog))
    if output_shapes is not None and early_exit is None:
        _check_output_shapes(prog, output_shapes)
    with _timed(timings, "schedule"):
        hoist_loads(prog)
        pairs = insert_tokens(prog)
    _dump(dump_dir, "60-scheduled.txt", lambda: format_tile_program(prog))
    with _timed(timings, "emit"):
        program = emit_program(prog, hw, {"sram_peak_bytes": peak, **(metadata or {})})
    if early_exit is not None:
        word = next(b for b in prog.buffers if b.name == EXIT_WORD)
        program.metadata["exit_layer"] = {"space": word.space, "address": word.address}
    return CompileResult(program, prog, peak, pairs, timings)


def check_backend_limits(model: Any) -> None:
    """ONNX features the import accepts but the backend cannot honour: fail before any work."""
    for i, node in enumerate(model.graph.node):
        if node.op_type == "LayerNormalization" and any(o for o in node.output[1:]):
            raise CompileError(
                f"node {node.name or f'#{i}'} (LayerNormalization): the optional Mean/InvStdDev "
                "outputs are not supported"
            )


def _check_output_shapes(prog: TileProgram, declared: list[tuple[int, ...]]) -> None:
    """The module must compute what the ONNX graph declares; size-1 dims may differ (same row-major bytes)."""
    if len(prog.outputs) != len(declared):
        raise CompileError(f"the module computes {len(prog.outputs)} outputs, the model declares {len(declared)}")
    for k, ((name, buf, shape, dtype), want) in enumerate(zip(prog.outputs, declared, strict=True)):
        want = tuple(want)
        if tuple(shape) == want or -1 in want:
            continue
        squeezed = [d for d in shape if d != 1]
        if squeezed and squeezed == [d for d in want if d != 1]:
            prog.outputs[k] = (name, buf, want, dtype)
            continue
        raise CompileError(
            f"output '{name}': the module computes shape {tuple(shape)}, the model declares "
            f"{want} (unsupported op variant)"
        )


def compile_onnx(
    model: Any,
    seq_len: int | None = None,
    hw: HardwareConfig | None = None,
    *,
    dump_dir: str | Path | None = None,
    timings: dict[str, float] | None = None,
    early_exit: Any = None,
    compress: bool = True,
) -> CompileResult:
    """Compile an ONNX model (path or ModelProto) for `hw` (default config); stages 1-7.

    `compress`: AF8 weights per the model's `edgebert.quantization`, bitmask-sparse weights of density <=
    compression.SPARSE_MAX_DENSITY (docs/compiler.md); False: the dense fp32 program (for comparisons).

    `early_exit` (an `early_exit.EarlyExitOptions`, or True for the model's own threshold): compile the model's
    exit heads as entropy + early-exit branches, optionally with latency-aware DVFS (docs/compiler.md).
    """
    from edgebert.frontend import load_onnx, to_relax

    hw = hw or default_config()
    timings = {} if timings is None else timings
    dump = Path(dump_dir) if dump_dir is not None else None
    with _timed(timings, "load"):
        loaded = load_onnx(model, seq_len)
        check_backend_limits(loaded.model)
    with _timed(timings, "import"):
        mod = to_relax(loaded)
    _dump(dump, "00-imported.py", lambda: mod.script(show_meta=False))
    mod = relax_pipeline(mod, dump, timings)
    meta = {"source_model_sha256": loaded.sha256, "seq_len": loaded.seq_len, **_edgebert_settings(loaded.metadata)}
    comp = options_from_model(loaded.model, loaded.metadata) if compress else None
    if early_exit is not None and early_exit is not False:
        from edgebert.compiler.early_exit import compile_early_exit

        return compile_early_exit(
            mod, hw, loaded, early_exit, meta, lambda **kw: compile_relax(dump_dir=dump, timings=timings, compression=comp, **kw)
        )
    return compile_relax(
        mod,
        hw,
        output_names=list(loaded.output_names),
        output_shapes=[t.shape for t in loaded.outputs],
        metadata=meta,
        dump_dir=dump,
        timings=timings,
        compression=comp,
    )


def _edgebert_settings(md: Any) -> dict[str, Any]:
    """EdgeBERT settings from the model's metadata_props, reported as-is in the program metadata."""
    out: dict[str, Any] = {}
    if md.tasks:
        out["tasks"] = list(md.tasks)
    if md.entropy_thresholds:
        out["thresholds"] = [float(t) for t in md.entropy_thresholds]
    if md.exit_heads:
        out["exit_heads"] = list(md.exit_heads)
    return out


def format_tile_program(prog: TileProgram) -> str:
    """A readable listing of the tile program (symbolic buffers, addresses once planned)."""
    labels = {v: k for k, v in prog.labels.items()}
    lines = []
    for i, inst in enumerate(prog.insts):
        if i in labels:
            lines.append(f"{labels[i]}:")
        ops = ", ".join(
            f"{k}={b.name}+{off}" + (f"@{b.address + off:#x}" if b.address is not None else "")
            for k, (b, off) in inst.addrs.items()
        )
        fields = " ".join(f"{k}={v}" for k, v in inst.fields.items())
        lines.append(f"  {i:5d} {inst.mnemonic:9s} {ops} {fields}" + (f" -> {inst.target}" if inst.target else ""))
    for b in prog.buffers:
        lines.append(
            f"# {b.name}: {b.nbytes} B {b.kind} {b.space}" + (f" @{b.address:#x}" if b.address is not None else "")
        )
    return "\n".join(lines) + "\n"
