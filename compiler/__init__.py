"""edgebert.compiler: TVM Relax passes and lowering of ALBERT models to the edgebert ISA."""
