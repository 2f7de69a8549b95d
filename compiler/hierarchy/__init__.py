"""edgebert.compiler.hierarchy: the memory-hierarchy plan (issue 11) - which tensors stay in SRAM, which are spilled to
DRAM or streamed block by block, and which tiling each op uses, when the all-resident plan does not fit.

  optrace.py        the op trace a lowering walk records (events, the values they read and write)
  groups.py         trace events grouped into the plan's ops (dense, ffn, rows, attention, whole)
  block_search.py   candidate tilings per op, scored with isa.costs (working set, cycles, bytes off chip)
  plan.py           `build_plan`: homes by a greedy over the ops' Pareto fronts, the minimum-size error
  plan_report.py    `edgebertc -v`: the plan in words, bytes per tensor from the compiled program
  traffic_bound.py  the compulsory-traffic lower bound (benchmarks/bench_memory.py)
"""
