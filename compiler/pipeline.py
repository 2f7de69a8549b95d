"""The compiler's table of contents: `STAGES`, run in order on one `Compilation` (docs/compiler.md has the diagram).

  stage          what it reads -> what it hands on                                  where
  load           ONNX path/proto -> LoadedModel (checked, static shapes, metadata)  edgebert.frontend.loader
  import         LoadedModel -> Relax IRModule                                      edgebert.frontend.loader
  relax          IRModule -> IRModule with edgebert.* composites, layer functions   compiler/relax_passes
  check          every binding the backend cannot lower, in one error              compiler/lower/support.py
  layer-loops    IRModule -> [LayerLoop] (what OutlineLayerLoops made; found once)  relax_passes.find_layer_loops
  compression    model metadata (+ task weights) -> CompressionOptions              compiler/compression.py
  early-exit     metadata + EarlyExitOptions -> EarlyExitSpec (heads, threshold,     compiler/early_exit.py
                 policy, predictor, placeholder DVFS tables)
  lower          IRModule, loops, spec -> TileProgram (symbolic buffers, op trace)  compiler/lower
  plan-memory    TileProgram -> addresses (eNVM/DRAM constants, SRAM by liveness)   compiler/memory_plan.py
  hierarchy      op trace -> MemoryPlan: tensors resident / spilled / streamed,     compiler/hierarchy
                 a tiling per op (only when every tensor in SRAM does not fit)
  lower-blocked  IRModule + MemoryPlan -> TileProgram lowered block by block        compiler/lower/blocked*.py
  plan-memory-blocked  the same placement, spilled tensors' DRAM homes too          compiler/memory_plan.py
  schedule       TileProgram -> loads hoisted, dependency tokens                    compiler/schedule.py
  emit           TileProgram -> Program (code, segments, symbols, metadata)         compiler/emit.py
  dvfs-plan      Program -> measured cycles, energies -> DVFS tables written in     compiler/dvfs_plan.py

`lower` and `plan-memory` run once per weight staging size (largest first) until every tensor fits in SRAM
(SramOverflow, StagingTooSmall); when none does, `hierarchy`, `lower-blocked` and `plan-memory-blocked` run once per
planning budget (a fraction of the SRAM, largest first) until the blocked program fits (SramTooSmall when no tiling
can). Options (compiler/options.py) switch stages on: `early-exit` and `dvfs-plan` run only when asked.
Entry points: `compile_model` (every stage), `compile_onnx` (its keyword form), `compile_relax` (a Relax module that
went through the Relax passes: the stages from `layer-loops` on); the multi-task compile (compiler/multitask.py)
runs `compile_model` once per task, then links.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tvm
from tvm import relax

from edgebert.compiler.compression import CompressionOptions, options_from_model
from edgebert.compiler.dvfs_plan import plan_program_dvfs
from edgebert.compiler.early_exit import EarlyExitSpec, exit_spec
from edgebert.compiler.emit import emit_program
from edgebert.compiler.errors import SramOverflow, SramTooSmall, StagingTooSmall
from edgebert.compiler.hierarchy.plan import BUDGET_FRACTIONS, MemoryPlan, build_plan
from edgebert.compiler.lower.core import Lowerer
from edgebert.compiler.lower.program import lower_program
from edgebert.compiler.lower.support import check_supported
from edgebert.compiler.memory_plan import live_act_peak, place_constants_and_io, place_spills, plan_sram
from edgebert.compiler.options import CompileOptions, EarlyExitOptions
from edgebert.compiler.relax_passes import (
    CanonicalizeCompositeArgs,
    CanonicalizeDecomposed,
    IntegerArithmeticInFloat,
    LayerLoop,
    OutlineLayerLoops,
    SimplifyAttentionMask,
    SimplifyIdentityIdioms,
    cleanup_passes,
    find_layer_loops,
    fusion_pass,
    run_passes,
)
from edgebert.compiler.schedule import hoist_loads, insert_tokens
from edgebert.compiler.tile_ir import TileProgram, format_tile_program
from edgebert.isa.abi import EXIT_WORD
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig, default_config
from edgebert.isa.paused_gc import paused_gc
from edgebert.isa.program import Program

#: Each weight staging buffer takes 1/fraction of the SRAM; `lower` + `plan-memory` try the largest first.
STAGING_FRACTIONS = (6, 8, 12, 16, 32, 64)
#: the what-if search of SramTooSmall (an SRAM size that compiles): at most this many steps of +1/8 ...
WHAT_IF_STEPS = 8
#: ... and no step started after this many seconds (a large model's blocked attempt takes tens of seconds)
WHAT_IF_SECONDS = 60.0


def relax_passes(params: dict[str, Any] | None = None, layer_loops: bool = True) -> list[tvm.transform.Pass]:
    """The `relax` stage: cleanup -> decomposed ops canonicalised (exact GELU, LayerNorm) -> attention-mask
    canonicalisation -> composite fusion -> canonical composite arguments -> identity idioms -> bounded integer
    arithmetic in float32 (run-time position ids) -> layer loop outlining (compiler/relax_passes)."""
    passes = cleanup_passes(params)
    passes += [CanonicalizeDecomposed(), relax.transform.CanonicalizeBindings(), SimplifyAttentionMask(),
               fusion_pass(), CanonicalizeCompositeArgs(), SimplifyIdentityIdioms(), IntegerArithmeticInFloat()]
    if layer_loops:
        passes.append(OutlineLayerLoops())
    return passes


@dataclass
class CompileResult:
    """The program plus what the stages learned (for tests, -v and benchmarks)."""

    program: Program
    tile_program: TileProgram
    sram_peak_bytes: int
    token_pairs: int
    timings: dict[str, float] = field(default_factory=dict)
    #: the memory-hierarchy plan (None: every tensor stays in SRAM)
    memory_plan: MemoryPlan | None = None
    #: the op trace of the walk (hierarchy/optrace.py): what traffic bounds and reports read
    trace: Any = None


@dataclass
class Compilation:
    """What the stages hand on to each other (each stage reads some fields and fills others)."""

    options: CompileOptions
    hw: HardwareConfig
    timings: dict[str, float]
    model: Any = None  # ONNX path or ModelProto
    on_stage: Callable[[str], None] | None = None  # told each stage's name as it starts (progress display)
    loaded: Any = None  # frontend.LoadedModel
    mod: relax.IRModule | None = None
    output_names: list[str] | None = None
    output_shapes: list[tuple[int, ...]] | None = None  # checked against what the module computes
    metadata: dict[str, Any] = field(default_factory=dict)  # reported in the program metadata
    layer_loops: list[LayerLoop] = field(default_factory=list)
    compression: CompressionOptions | None = None
    exit_spec: EarlyExitSpec | None = None
    staging_fraction: int = STAGING_FRACTIONS[0]
    tile_program: TileProgram | None = None
    sram_peak_bytes: int = 0
    token_pairs: int = 0
    program: Program | None = None
    resident_overflow: CompileError | None = None  # why every tensor in SRAM did not fit (the hierarchy stages run)
    traced: TileProgram | None = None  # the resident lowering whose op trace the hierarchy plan reads
    budget_fraction: float = BUDGET_FRACTIONS[0]
    memory_plan: MemoryPlan | None = None

    def result(self) -> CompileResult:
        """What the caller gets back."""
        trace = (self.traced or self.tile_program).trace if self.tile_program is not None else None
        return CompileResult(self.program, self.tile_program, self.sram_peak_bytes, self.token_pairs, self.timings,
                             self.memory_plan, trace)


# ---- the stages ----------------------------------------------------------------------------------------------------


def load_model(c: Compilation) -> None:
    """ONNX path/proto -> LoadedModel (checked, static shapes) and the program metadata it implies."""
    from edgebert.frontend import load_onnx

    c.loaded = load_onnx(c.model, c.options.seq_len)
    check_backend_limits(c.loaded.model)
    c.output_names = list(c.loaded.output_names)
    c.output_shapes = [t.shape for t in c.loaded.outputs]
    c.metadata = {"source_model_sha256": c.loaded.sha256, "seq_len": c.loaded.seq_len,
                  **_edgebert_settings(c.loaded.metadata), **computed_in(c.loaded)}


def import_relax(c: Compilation) -> None:
    """LoadedModel -> Relax IRModule."""
    from edgebert.frontend import to_relax

    c.mod = to_relax(c.loaded)


def run_relax_passes(c: Compilation) -> None:
    """Each pass timed as `relax:<pass>`; --dump-ir gets `00_input.py` and `NN_<pass>.py` (relax_passes.run_passes)."""
    c.mod = run_passes(c.mod, relax_passes(), c.options.dump_dir, c.timings)


def check_lowerable(c: Compilation) -> None:
    """Every binding the backend cannot lower, listed in one error before any lowering (compiler/lower/support.py)."""
    check_supported(c.mod)


def find_loops(c: Compilation) -> None:
    """The layer loops OutlineLayerLoops made: the lowering uses this list, nothing finds them again."""
    c.layer_loops = find_layer_loops(c.mod)


def choose_compression(c: Compilation) -> None:
    """How constant weights are stored: the model's AF8 / sparse settings, a multi-task model's task weights."""
    if c.loaded is None or not c.options.compress:
        return
    c.compression = options_from_model(c.loaded.model, c.loaded.metadata)
    task = c.options.task_weights
    if task is not None:
        c.compression.task_formats = dict(task.formats)
        c.compression.task_weights_in_place = task.in_place


def resolve_early_exit(c: Compilation) -> None:
    """EarlyExitOptions + the model's metadata -> EarlyExitSpec (heads, threshold, placeholder DVFS tables)."""
    if c.loaded is None:
        raise CompileError("early exit needs the model's metadata (compile_model / compile_onnx)")
    c.exit_spec, extra = exit_spec(c.options.early_exit, c.loaded.metadata, c.hw)
    c.metadata = {**c.metadata, **extra}
    c.output_shapes = None  # the program's one output is the exit logits


def lower(c: Compilation) -> None:
    """IRModule -> TileProgram at the current staging size; its outputs checked against the ONNX graph."""
    c.tile_program = lower_program(c.mod, c.hw, c.layer_loops, staging_fraction=c.staging_fraction,
                                   output_names=c.output_names, early_exit=c.exit_spec, compression=c.compression)
    if c.output_shapes is not None:
        _check_output_shapes(c.tile_program, c.output_shapes)


def plan_memory(c: Compilation) -> None:
    """Addresses: constants and I/O, then SRAM by liveness (SramOverflow when the activations do not fit)."""
    place_constants_and_io(c.tile_program, c.hw)
    c.sram_peak_bytes = plan_sram(c.tile_program, c.hw)


def plan_hierarchy(c: Compilation) -> None:
    """The memory-hierarchy plan from the resident lowering's op trace, within the current budget fraction."""
    prog = c.traced
    c.memory_plan = build_plan(prog.trace, prog.insts, prog.loops, c.hw, c.budget_fraction, ring_bytes(c.hw))
    c.memory_plan.resident_overflow = str(c.resident_overflow)


def lower_blocked(c: Compilation) -> None:
    """IRModule -> TileProgram with the plan's tensors spilled and its ops blocked."""
    c.tile_program = lower_program(c.mod, c.hw, c.layer_loops, staging_fraction=c.staging_fraction,
                                   output_names=c.output_names, early_exit=c.exit_spec, compression=c.compression,
                                   plan=c.memory_plan)
    if c.output_shapes is not None:
        _check_output_shapes(c.tile_program, c.output_shapes)


def plan_memory_blocked(c: Compilation) -> None:
    """Constants, I/O and the spilled tensors' DRAM homes, then SRAM (buffer by buffer when the config has a set)."""
    place_constants_and_io(c.tile_program, c.hw)
    place_spills(c.tile_program, c.hw)
    c.sram_peak_bytes = plan_sram(c.tile_program, c.hw)


def ring_bytes(hw: HardwareConfig) -> int:
    """Each of the two program-wide weight staging buffers of a blocked program (the planned ops stream their tiles
    through their own slots; only a constant matmul lowered whole, which ALBERT has none of, uses them)."""
    align = hw.memory.sram.align_bytes
    return max(align, min(1024, hw.memory.sram.size_bytes // 64) // align * align)


def schedule(c: Compilation) -> None:
    """Loads hoisted for double buffering, then the dependency tokens."""
    hoist_loads(c.tile_program)
    c.token_pairs = insert_tokens(c.tile_program)


def emit(c: Compilation) -> None:
    """TileProgram -> Program; with early exit, the exit word's address and the exit layout in the metadata."""
    prog = c.tile_program
    c.program = emit_program(prog, c.hw, {"sram_peak_bytes": c.sram_peak_bytes, **c.metadata})
    if c.exit_spec is not None:
        word = next(b for b in prog.buffers if b.name == EXIT_WORD)
        c.program.metadata["exit_layer"] = {"space": word.space, "address": word.address}
        c.program.metadata["early_exit"]["layout"] = prog.exit_layout


def plan_dvfs_tables(c: Compilation) -> None:
    """Measure the program's cycles, plan its latency-aware DVFS and write the tables in."""
    plan_program_dvfs(c.program, c.hw, c.options.early_exit.latency_target_s, c.exit_spec.dvfs.request,
                      c.exit_spec.threshold)


def _early_exit(c: Compilation) -> bool:
    return c.options.early_exit is not None


def _latency_target(c: Compilation) -> bool:
    return c.options.early_exit is not None and c.options.early_exit.latency_target_s is not None


def _overflowed(c: Compilation) -> bool:
    return c.resident_overflow is not None


def _relax_text(c: Compilation) -> str:
    return c.mod.script(show_meta=False)


def _tile_text(c: Compilation) -> str:
    return format_tile_program(c.tile_program)


@dataclass(frozen=True)
class Stage:
    """One stage: its name (the -v timing key), what it does, when it runs, and what --dump-ir writes after it."""

    name: str
    run: Callable[[Compilation], None]
    backend: bool = True  # part of `compile_relax` (a Relax module that went through the Relax passes)
    when: Callable[[Compilation], bool] | None = None  # None: always (asked when the stage is reached)
    retry: str | None = None  # "resident": per staging size; "blocked": per planning budget (RETRIES)
    dump: tuple[str, Callable[[Compilation], str]] | None = None  # (file name, listing of what the stage made)


#: The compiler, stage by stage (module docstring).
STAGES: tuple[Stage, ...] = (
    Stage("load", load_model, backend=False),
    Stage("import", import_relax, backend=False, dump=("00-imported.py", _relax_text)),
    Stage("relax", run_relax_passes, backend=False),
    Stage("check", check_lowerable),
    Stage("layer-loops", find_loops),
    Stage("compression", choose_compression),
    Stage("early-exit", resolve_early_exit, when=_early_exit),
    Stage("lower", lower, retry="resident", dump=("50-lowered.txt", _tile_text)),
    Stage("plan-memory", plan_memory, retry="resident"),
    Stage("hierarchy", plan_hierarchy, when=_overflowed, retry="blocked"),
    Stage("lower-blocked", lower_blocked, when=_overflowed, retry="blocked", dump=("55-lowered-blocked.txt", _tile_text)),
    Stage("plan-memory-blocked", plan_memory_blocked, when=_overflowed, retry="blocked"),
    Stage("schedule", schedule, dump=("60-scheduled.txt", _tile_text)),
    Stage("emit", emit),
    Stage("dvfs-plan", plan_dvfs_tables, when=_latency_target),
)


def run_stages(c: Compilation, stages: tuple[Stage, ...] | list[Stage]) -> CompileResult:
    """Run `stages` in order on `c` (timing each into `c.timings`); consecutive stages with one `retry` kind run as
    a group, once per attempt, until one attempt fits. Python's cyclic garbage collector is paused meanwhile: a
    blocked ALBERT-base lowering allocates ~10^6 small objects and the collector would rescan the heap again and
    again (the compile's own objects hold no cycles worth collecting early)."""
    with paused_gc():
        return _run_stages(c, list(stages))


def _run_stages(c: Compilation, stages: list[Stage]) -> CompileResult:
    i = 0
    while i < len(stages):
        if stages[i].when is not None and not stages[i].when(c):
            i += 1
            continue
        if stages[i].retry is None:
            _timed(c, stages[i])
            i += 1
            continue
        j = i
        while j < len(stages) and stages[j].retry == stages[i].retry:
            j += 1
        (_run_resident if stages[i].retry == "resident" else _run_blocked)(c, stages[i:j])
        i = j
    return c.result()


def _timed(c: Compilation, stage: Stage) -> None:
    """Run one stage, time it, and write its --dump-ir listing."""
    if c.on_stage is not None:
        c.on_stage(stage.name)
    t0 = time.perf_counter()
    stage.run(c)
    c.timings[stage.name] = c.timings.get(stage.name, 0.0) + time.perf_counter() - t0
    if stage.dump is not None and c.options.dump_dir is not None:
        c.options.dump_dir.mkdir(parents=True, exist_ok=True)
        (c.options.dump_dir / stage.dump[0]).write_text(stage.dump[1](c))


def _run_resident(c: Compilation, stages: list[Stage]) -> None:
    """Bigger weight staging buffers mean fewer, wider matmuls: try the sizes largest first until every tensor fits;
    when none does, keep the overflow for the hierarchy stages (a first attempt whose activations alone exceed the
    SRAM ends the search: smaller staging buffers cannot help)."""
    failure: CompileError | None = None
    for fraction in STAGING_FRACTIONS:
        c.staging_fraction = fraction
        try:
            for stage in stages:
                _timed(c, stage)
            return
        except (SramOverflow, StagingTooSmall) as exc:
            failure = exc if isinstance(exc, SramOverflow) or failure is None else failure
            if isinstance(exc, SramOverflow):
                c.traced = c.tile_program
                if live_act_peak(c.tile_program) > c.hw.memory.sram.size_bytes:
                    break
            _drop_attempt(c)
    if c.traced is None:  # no staging size even lowered: trace with the whole SRAM as staging (never placed)
        try:
            c.staging_fraction = 1
            lower(c)
            c.traced = c.tile_program
        except StagingTooSmall:
            raise failure from None
    c.staging_fraction = STAGING_FRACTIONS[0]
    c.resident_overflow = failure


def _fit_blocked(c: Compilation, stages: list[Stage]) -> SramOverflow | None:
    """Plan, lower and place within a budget of the SRAM, largest first; None when one fits, else why not."""
    failure: SramOverflow | None = None
    # a buffer set packs coarser (every tensor inside one buffer): start a step lower
    fractions = BUDGET_FRACTIONS[1:] if c.hw.memory.sram.buffers else BUDGET_FRACTIONS
    for fraction in fractions:
        c.budget_fraction = fraction
        try:
            for stage in stages:
                _timed(c, stage)
            return None
        except SramTooSmall as exc:
            return failure or exc  # a smaller budget has no plan: report why the larger ones did not pack
        except SramOverflow as exc:  # the estimate missed fragmentation: plan again with less
            failure = exc
            _drop_attempt(c, constants=True)
    return failure


def _drop_attempt(c: Compilation, constants: bool = False) -> None:
    """Free a failed attempt's lowering before the next (the collector is paused during a compile, and a blocked
    BERT-base lowering holds gigabytes); `constants`: the constant cache too (the resident attempts' entries are kept
    for the blocked lowering, which reads the same constants)."""
    c.tile_program = None
    if constants:
        Lowerer.forget_constants()
    gc.collect()


def _run_blocked(c: Compilation, stages: list[Stage]) -> None:
    """The hierarchy stages until the blocked program fits; else SramTooSmall with an SRAM size that compiles (the
    plan's guess, verified by planning, lowering and placing at that size: each step adds an eighth; the search stops
    after WHAT_IF_STEPS steps or WHAT_IF_SECONDS, and the error then says how far it looked)."""
    failure = _fit_blocked(c, stages)
    if failure is None:
        return
    size = c.hw.memory.sram.size_bytes
    guess = failure.suggest if isinstance(failure, SramTooSmall) else size + size // 8
    deadline, tried, found = time.perf_counter() + WHAT_IF_SECONDS, 0, 0
    for step in range(WHAT_IF_STEPS):
        if step and time.perf_counter() > deadline:
            break
        guess = -(-guess // 4096) * 4096
        trial = dataclasses.replace(c, hw=_with_sram(c.hw, guess), timings={})
        tried = trial.hw.memory.sram.size_bytes
        if _fit_blocked(trial, stages) is None:
            found = tried
            break
        _drop_attempt(trial, constants=True)
        guess += guess // 8
    if isinstance(failure, SramTooSmall):
        raise SramTooSmall(failure.op, failure.block, failure.need, size, found, tried)
    raise SramTooSmall(failure.tensor, f"its blocks do not pack into {size} bytes at any planning budget: {failure}",
                       failure.nbytes, size, found, tried)


def _with_sram(hw: HardwareConfig, size: int) -> HardwareConfig:
    """`hw` with at least `size` bytes of SRAM (the what-if of the minimum-size error); with a buffer set, the PU's
    operand buffers grow (the others keep their sizes)."""
    sram = hw.memory.sram
    if sram.buffers:
        grow = next(b for b in sram.buffers if b.name == hw.pu.operand_buffer)
        step = -(-max(size - sram.size_bytes, 0) // grow.count // sram.align_bytes) * sram.align_bytes
        buffers = tuple(dataclasses.replace(b, size_bytes=b.size_bytes + step) if b is grow else b
                        for b in sram.buffers)
        sram = dataclasses.replace(sram, size_bytes=sram.size_bytes + step * grow.count, buffers=buffers)
    else:
        sram = dataclasses.replace(sram, size_bytes=size)
    return dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=sram))


def format_timings(timings: dict[str, float]) -> list[str]:
    """`edgebertc -v`: one line per stage that ran (and per Relax pass), in stage order, then the total."""
    lines, total = [], 0.0
    for stage in STAGES:
        if stage.name not in timings:
            continue
        total += timings[stage.name]
        lines.append(f"{stage.name:40s} {timings[stage.name] * 1000:9.1f} ms")
        if stage.name == "relax":
            lines += [f"{name:40s} {secs * 1000:9.1f} ms" for name, secs in timings.items()
                      if name.startswith("relax:")]
    lines.append(f"{'total':40s} {total * 1000:9.1f} ms")
    return lines


# ---- entry points --------------------------------------------------------------------------------------------------


def compile_model(model: Any, options: CompileOptions | None = None, hw: HardwareConfig | None = None,
                  timings: dict[str, float] | None = None,
                  on_stage: Callable[[str], None] | None = None) -> CompileResult:
    """Compile an ONNX model (path or ModelProto) for `hw` (default config): every stage `options` asks for;
    `on_stage` is told each stage's name as it starts (edgebertc's progress)."""
    c = Compilation(options or CompileOptions(), hw or default_config(), {} if timings is None else timings,
                    model=model, on_stage=on_stage)
    return run_stages(c, STAGES)


def compile_onnx(
    model: Any,
    seq_len: int | None = None,
    hw: HardwareConfig | None = None,
    *,
    dump_dir: str | Path | None = None,
    timings: dict[str, float] | None = None,
    early_exit: EarlyExitOptions | bool | None = None,
    compress: bool = True,
) -> CompileResult:
    """`compile_model` with the options as keywords.

    `compress`: AF8 weights per the model's `edgebert.quantization`, bitmask-sparse weights of density <=
    compression.SPARSE_MAX_DENSITY (docs/compiler.md); False: the dense fp32 program (for comparisons).
    `early_exit` (`EarlyExitOptions`, or True for the model's own threshold): compile the model's exit heads as
    entropy + early-exit branches, optionally with latency-aware DVFS (docs/compiler.md)."""
    exits = EarlyExitOptions() if early_exit is True else (early_exit or None)
    options = CompileOptions(seq_len, compress, exits, dump_dir=Path(dump_dir) if dump_dir is not None else None)
    return compile_model(model, options, hw, timings)


def compile_relax(
    mod: Any,
    hw: HardwareConfig | None = None,
    *,
    output_names: list[str] | None = None,
    output_shapes: list[tuple[int, ...]] | None = None,
    metadata: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    options: CompileOptions | None = None,
) -> CompileResult:
    """The stages from `layer-loops` on, for a Relax module (static shapes, batch 1) that went through the Relax
    passes (`relax_pipeline`); `output_shapes` (from the ONNX graph) are checked against what it computes."""
    c = Compilation(options or CompileOptions(), hw or default_config(), {} if timings is None else timings, mod=mod,
                    output_names=output_names, output_shapes=output_shapes, metadata=dict(metadata or {}))
    return run_stages(c, [s for s in STAGES if s.backend])


def relax_pipeline(mod: Any, dump_dir: Path | None = None, timings: dict[str, float] | None = None) -> Any:
    """The `relax` stage alone: `relax_passes()` on an imported module."""
    return run_passes(mod, relax_passes(), dump_dir, timings)


def computed_in(loaded: Any) -> dict[str, str]:
    """Program metadata of a model computed in another format than its own (an fp16 model runs in fp32)."""
    if loaded.source_dtype == "float32":
        return {}
    return {"source_dtype": loaded.source_dtype, "computed_in": "float32"}


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
