"""edgebert.compiler.hierarchy: the memory-hierarchy plan (issue 11) - which tensors stay in SRAM, which are spilled to
DRAM or streamed block by block, and which tiling each op uses when the all-resident plan does not fit.

  optrace.py        the op trace a lowering walk records (events, the values they read and write)
"""
