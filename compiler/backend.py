"""Backend entry: lower a Relax module's `main` into a tile program with its inputs and outputs wired to DRAM."""

from __future__ import annotations

from typing import Any

from edgebert.compiler import emitters as em
from edgebert.compiler.compression import CompressionOptions
from edgebert.compiler.errors import ExitLoopUnfit
from edgebert.compiler.lowering import STORAGE, Const, Lowerer, Tensor, _dtype, _shape
from edgebert.compiler.matmul import StagingRing
from edgebert.compiler.tile_ir import TileProgram
from edgebert.compiler.views import fresh_view
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig

STAGING_BUFFERS = 2  # double buffering of weight tiles
#: Each staging buffer takes 1/fraction of the SRAM; the planner tries the largest first.
STAGING_FRACTIONS = (6, 8, 12, 16, 32, 64)


def staging_bytes(hw: HardwareConfig, fraction: int) -> int:
    """Size of one weight staging buffer: a fraction of SRAM, aligned."""
    align = hw.memory.sram.align_bytes
    return max(align, hw.memory.sram.size_bytes // fraction // align * align)


def lower_module(
    mod: Any,
    hw: HardwareConfig,
    output_names: list[str] | None = None,
    staging_fraction: int = STAGING_FRACTIONS[0],
    early_exit: Any = None,
    compression: CompressionOptions | None = None,
) -> TileProgram:
    """`_lower_module`; early exit whose heads do not fit one layer loop is lowered again unrolled."""
    try:
        return _lower_module(mod, hw, output_names, staging_fraction, early_exit, compression)
    except ExitLoopUnfit as exc:
        import dataclasses

        prog = _lower_module(mod, hw, output_names, staging_fraction, dataclasses.replace(early_exit, loop=False),
                             compression)
        prog.exit_layout = f"unrolled: {exc}"
        return prog


def _lower_module(
    mod: Any,
    hw: HardwareConfig,
    output_names: list[str] | None = None,
    staging_fraction: int = STAGING_FRACTIONS[0],
    early_exit: Any = None,
    compression: CompressionOptions | None = None,
) -> TileProgram:
    """Lower `mod["main"]` (static shapes): inputs are loaded from DRAM, outputs stored back to DRAM.

    With `early_exit` (an `early_exit.EarlyExitSpec`) the program's only output is `logits`, the first exit head
    whose entropy is below the threshold (else the last), and it writes the exit layer word.
    `compression`: AF8 / bitmask-sparse weight storage (compiler/compression.py); None = dense fp32.
    """
    prog = TileProgram()
    size = staging_bytes(hw, staging_fraction)
    ring = StagingRing([prog.buffer(f"stage.{i}", size, "stage") for i in range(STAGING_BUFFERS)], size)
    low = Lowerer(mod, hw, prog, ring)
    low.compression = compression
    if compression is not None:
        compression.reset()
    main = mod["main"]
    args = []
    for p in main.params:
        shape, dtype = _shape(p), _dtype(p)
        if dtype not in STORAGE or dtype == "bool":
            raise CompileError(f"input '{p.name}': dtype {dtype} is not supported (float32, int32, int64)")
        nbytes = max(1, _numel(shape)) * 4
        dram = prog.buffer(f"input.{p.name}", nbytes, "input", "dram")
        prog.inputs.append((p.name, dram, shape, dtype))
        t = low.new_tensor(p.name, shape, dtype)
        em.emit_dma(prog, "ld", t.view, fresh_view(dram, shape, STORAGE[dtype]))
        low.pinned.add(id(t.view.buffer))
        args.append(t)
    exits = None
    if early_exit is not None:
        from edgebert.compiler.early_exit import ExitLowering

        exits = ExitLowering(early_exit, prog, list(output_names or _output_names(main, len(main.params))), main)
    result = low.lower_function(main, args, "main", exits=exits)
    outs = list(result) if isinstance(result, tuple) else [result]
    names = list(output_names) if output_names and len(output_names) == len(outs) else _output_names(main, len(outs))
    if exits is not None:
        prog.outputs.append(exits.finish())
        prog.exit_layout = exits.layout
        return prog
    for name, val in zip(names, outs, strict=True):
        if isinstance(val, tuple):
            raise CompileError(f"output '{name}': nested tuples are not supported")
        if val.dtype != "float32":
            raise CompileError(f"output '{name}': dtype {val.dtype} outputs are not supported (float32 only)")
        shape = val.array.shape if isinstance(val, Const) else val.shape
        dram = prog.buffer(f"output.{name}", max(1, _numel(shape)) * 4, "output", "dram")
        prog.outputs.append((name, dram, tuple(shape), "float32"))
        if isinstance(val, Const):
            src = low.const_buffer(val.array, "float32")
            t = low.new_tensor(f"{name}.const", tuple(shape), "float32")
            em.emit_dma(prog, "ld", t.view, src)
            val = t
        assert isinstance(val, Tensor)
        em.emit_dma(prog, "st", fresh_view(dram, tuple(shape), "f32"), val.view)
    return prog


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
