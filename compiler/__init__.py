"""edgebert.compiler: ONNX model -> `.ebin` program, as the stage list of `pipeline.py` (docs/compiler.md).

  pipeline.py     the table of contents: STAGES, Compilation, compile_model / compile_onnx / compile_relax
  options.py      typed options (CompileOptions, EarlyExitOptions, TaskWeights); cli.py builds them from flags
  errors.py       the errors the compiler reacts to (SramOverflow and SramTooSmall, StagingTooSmall, ExitLoopUnfit,
                  TaskRegionError)
  abi.py          register and label conventions of compiled programs
  relax_passes/   Relax-level passes and the IR contract with the backend
  lower/          Relax module -> tile program (composite and plain-op handler tables, loops, exit code, the
                  blocked lowering of a memory-hierarchy plan)
  hierarchy/      the memory-hierarchy plan: tensors resident / spilled / streamed, a tiling per op (issue 11)
  tile_ir.py, views.py, tiling.py, emitters.py, matmul.py   the tile program and instructions on strided views
  compression.py  AF8 / bitmask-sparse / in-place weight formats and tile encodings
  memory_plan.py, schedule.py, emit.py                      the stages after lowering
  early_exit.py, dvfs_plan.py                               early-exit spec (policy, predictor); latency-aware DVFS plan
  dvfs_model.py, dvfs_samples.py, dvfs_bins.py              its latency/energy model, calibration sentences, 16 bins
  multitask.py, link.py                                     task models -> per-task compiles -> one program
  cli.py          edgebertc
"""
