"""edgebert.compiler.lower: Relax module -> tile program (ISA instructions over symbolic buffers).

  core.py           lowered values (tensor views, constants), buffers and constants, the walk over a function's
                    bindings that dispatches each binding to a handler
  plain_ops.py      `{relax op: handler}` for plain Relax ops, and the building blocks composites share with them
  composites.py     `{edgebert.* composite: handler}`: each composite lowered as a unit (dense, pooler, layer norm,
                    GELU, embedding, mask bias, attention, ...)
  matmul_values.py  matrix products of lowered values (batches, compressed weights, AF8 activations)
  span.py           adaptive attention span (windowed QK^T / PV, softmax span fields)
  loops.py          a layer loop as one counted loop body
  exit_plan.py      where exit heads run among main's bindings (demand order, looped or unrolled)
  exits.py          the exit code of early exit and latency-aware DVFS
  exit_loop.py      layers + exit heads as one loop body, the heads' weights as a strided table
  program.py        `lower_program`: inputs, main's steps, outputs
  blocked.py        the memory-hierarchy plan's hook into the walk (tensors in DRAM, ops emitted block by block),
                    row-local chains
  blocked_matmul.py blocked denses and FFNs (output-stationary, the FFN fused by intermediate blocks)
  blocked_attention.py  attention per head and query block
"""
