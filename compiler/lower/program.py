"""Lower a Relax module's `main` into a tile program: inputs loaded from DRAM, main's bindings as steps (bindings,
layer loops, exit heads), outputs stored back to DRAM."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edgebert.compiler import emitters as em
from edgebert.compiler.compression import CompressionOptions
from edgebert.compiler.early_exit import EarlyExitSpec
from edgebert.compiler.errors import ExitLoopUnfit
from edgebert.compiler.hierarchy.plan import MemoryPlan
from edgebert.compiler.lower.blocked import BlockedLowering
from edgebert.compiler.lower.composites import COMPOSITES
from edgebert.compiler.lower.core import (
    STORAGE,
    BindingStep,
    Const,
    Lowerer,
    Step,
    Tensor,
    dtype_of,
    function_bindings,
    shape_of,
)
from edgebert.compiler.lower.exit_loop import ExitLoopStep
from edgebert.compiler.lower.exit_plan import ExitPlan, plan_exits
from edgebert.compiler.lower.exits import ExitCode, ExitHeadStep
from edgebert.compiler.lower.loops import LayerLoopStep
from edgebert.compiler.lower.op_table import FOLDABLE, LOWERED_OPS
from edgebert.compiler.matmul import StagingRing
from edgebert.compiler.relax_passes import LayerLoop
from edgebert.compiler.tile_ir import TileProgram
from edgebert.compiler.views import fresh_view
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig

STAGING_BUFFERS = 2  # double buffering of weight tiles


def staging_bytes(hw: HardwareConfig, fraction: int) -> int:
    """Size of one weight staging buffer: 1/fraction of the SRAM, aligned."""
    align = hw.memory.sram.align_bytes
    return max(align, hw.memory.sram.size_bytes // fraction // align * align)


def lower_program(
    mod: Any,
    hw: HardwareConfig,
    layer_loops: list[LayerLoop],
    *,
    staging_fraction: int,
    output_names: list[str] | None = None,
    early_exit: EarlyExitSpec | None = None,
    compression: CompressionOptions | None = None,
    plan: MemoryPlan | None = None,
) -> TileProgram:
    """Lower `mod["main"]` (static shapes): inputs are loaded from DRAM, outputs stored back to DRAM.

    `layer_loops`: what `relax_passes.find_layer_loops` found in main (each becomes one counted loop).
    `early_exit`: the program's only output is `logits`, the first exit head whose entropy is below the threshold
    (else the last), and it writes the exit layer word; the layers and heads form one loop when they can, else the
    program is lowered again with the layers unrolled (`TileProgram.exit_layout` says which and why).
    `compression`: AF8 / bitmask-sparse weight storage (compiler/compression.py); None = dense fp32.
    `plan`: the memory-hierarchy plan (compiler/hierarchy): spilled tensors in DRAM, its ops blocked."""
    args = (mod, hw, layer_loops, staging_fraction, output_names, early_exit, compression, plan)
    try:
        return _lower(*args, loop_exits=True)
    except ExitLoopUnfit as exc:
        prog = _lower(*args, loop_exits=False)
        prog.exit_layout = f"unrolled: {exc}"
        return prog


def _lower(mod: Any, hw: HardwareConfig, layer_loops: list[LayerLoop], staging_fraction: int,
           output_names: list[str] | None, early_exit: EarlyExitSpec | None, compression: CompressionOptions | None,
           plan: MemoryPlan | None, loop_exits: bool) -> TileProgram:
    prog = TileProgram()
    size = staging_bytes(hw, staging_fraction) if plan is None else plan.ring_bytes
    ring = StagingRing([prog.buffer(f"stage.{i}", size, "stage") for i in range(STAGING_BUFFERS)], size)
    low = Lowerer(mod, hw, prog, ring, LOWERED_OPS, COMPOSITES, FOLDABLE)
    low.compression = compression
    if plan is not None:
        low.blocked = BlockedLowering(low, plan)
    if compression is not None:
        compression.reset()
    main = mod["main"]
    # first (before the inputs load): with DVFS, the switch to the plan's layer-1 operating point
    exits = ExitCode(early_exit, prog) if early_exit is not None else None
    args = [_load_input(low, p) for p in main.params]
    bindings = function_bindings(main)
    plan = None
    if exits is not None:
        outputs = list(output_names or _output_names(main, len(main.params)))
        plan = plan_exits(bindings, main.body.body, early_exit.heads, outputs, _layer_call_vars(main, layer_loops),
                          loop_exits)
        bindings = plan.bindings
    prog.trace = low.trace
    low.trace.loops = prog.loops
    result = low.lower_function(main, args, "main", bindings, main_steps(bindings, layer_loops, main, exits, plan))
    if exits is not None:
        prog.outputs.append(exits.finish())
        prog.exit_layout = plan.layout
        return prog
    outs = list(result) if isinstance(result, tuple) else [result]
    names = list(output_names) if output_names and len(output_names) == len(outs) else _output_names(main, len(outs))
    for name, val in zip(names, outs, strict=True):
        _store_output(low, name, val)
    return prog


def _load_input(low: Lowerer, param: Any) -> Tensor:
    """An input of main: a DRAM buffer loaded into an SRAM tensor that nothing overwrites."""
    prog = low.prog
    shape, dtype = shape_of(param), dtype_of(param)
    if dtype not in STORAGE or dtype == "bool":
        raise CompileError(f"input '{param.name}': dtype {dtype} is not supported (float32, int32, int64)")
    dram = prog.buffer(f"input.{param.name}", max(1, _numel(shape)) * 4, "input", "dram")
    prog.inputs.append((param.name, dram, shape, dtype))
    start = len(prog.insts)
    t = low.new_tensor(param.name, shape, dtype)
    em.emit_dma(prog, "ld", t.view, fresh_view(dram, shape, STORAGE[dtype]))
    low.pinned.add(id(t.view.buffer))
    low.record("input", param.name, "main", None, [], t, start)
    return t


def _store_output(low: Lowerer, name: str, val: Any) -> None:
    prog = low.prog
    if isinstance(val, tuple):
        raise CompileError(f"output '{name}': nested tuples are not supported")
    if val.dtype != "float32":
        raise CompileError(f"output '{name}': dtype {val.dtype} outputs are not supported (float32 only)")
    shape = val.array.shape if isinstance(val, Const) else val.shape
    dram = prog.buffer(f"output.{name}", max(1, _numel(shape)) * 4, "output", "dram")
    prog.outputs.append((name, dram, tuple(shape), "float32"))
    start = len(prog.insts)
    if isinstance(val, Const):
        src = low.const_buffer(val.array, "float32")
        t = low.new_tensor(f"{name}.const", tuple(shape), "float32")
        em.emit_dma(prog, "ld", t.view, src)
        val = t
    if low.blocked is not None:
        low.blocked.copy(fresh_view(dram, tuple(shape), "f32"), val.view, f"output.{name}")
    else:
        em.emit_dma(prog, "st", fresh_view(dram, tuple(shape), "f32"), val.view)
    low.record("output", name, "main", None, [val], None, start)


def _layer_call_vars(main: Any, layer_loops: list[LayerLoop]) -> set[Any]:
    """The binding vars of main's layer calls (the `LayerLoop`s' calls, not their tuple items)."""
    every = [b for blk in main.body.blocks for b in blk.bindings]
    return {every[i].var for loop in layer_loops for i in loop.binding_indices
            if type(every[i].value).__name__ == "Call"}


def main_steps(bindings: list[Any], layer_loops: list[LayerLoop], main: Any, exits: ExitCode | None,
               plan: ExitPlan | None) -> Iterator[Step]:
    """Main's bindings as steps: two or more consecutive calls of a single-output layer loop, each reading the
    previous one's result, are one counted loop; with early exit, the looped layers + heads, or each head's exit
    code right after its logits (the layers unrolled)."""
    every = [b for blk in main.body.blocks for b in blk.bindings]
    loop_calls: dict[Any, tuple[list[Any], int, int]] = {}  # call var -> (its loop's calls, its position, weights)
    for loop in layer_loops:
        if loop.num_outputs == 1:
            calls = [every[i] for i in loop.binding_indices]
            loop_calls.update({c.var: (calls, k, loop.num_weights) for k, c in enumerate(calls)})
    i = 0
    while i < len(bindings):
        b = bindings[i]
        if plan is not None and plan.loop is not None and i == plan.loop.calls[0]:
            yield ExitLoopStep(bindings, plan.loop, exits, plan.exit_vars)
            i = plan.loop.end
            continue
        calls, k, weights = loop_calls.get(b.var, ([], 0, 0))
        run = _consecutive_calls(bindings, i, calls, k, weights)
        if len(run) > 1:
            yield LayerLoopStep(run, weights)
            i += len(run)
            continue
        yield BindingStep(b)
        if plan is not None and b.var in plan.exit_vars:
            yield ExitHeadStep(exits, plan.exit_vars[b.var], b.var)
        i += 1


def _consecutive_calls(bindings: list[Any], i: int, calls: list[Any], k: int, weights: int = 0) -> list[Any]:
    """calls[k], calls[k+1], ... as long as they are bindings[i], bindings[i+1], ..., each reading the previous
    call's result and the same loop-invariant arguments (the trailing `weights` arguments are each layer's own)."""
    run = []
    for call in calls[k:]:
        j = i + len(run)
        if j >= len(bindings) or not bindings[j].var.same_as(call.var):
            break
        invariant = slice(1, len(call.value.args) - weights)
        if run and not (call.value.args[0].same_as(run[-1].var) and len(call.value.args) == len(run[0].value.args)
                        and all(x.same_as(y) for x, y in zip(call.value.args[invariant], run[0].value.args[invariant],
                                                             strict=True))):
            break
        run.append(bindings[j])
    return run


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _output_names(main: Any, n: int) -> list[str]:
    attrs = main.attrs
    names = None
    if attrs is not None and "output_names" in attrs:
        names = [str(x) for x in attrs["output_names"]]
    return names if names and len(names) == n else [f"output{i}" for i in range(n)]
