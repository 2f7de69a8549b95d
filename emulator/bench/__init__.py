"""edgebert.emulator.bench: the many-sentence harness on top of the emulator (`edgebert-bench`).

`modes` runs a program over many sentences in EdgeBERT's three modes (no exit, early exit, early exit + DVFS);
`multitask_compare` compares single-task binaries with one multi-task binary (memory, energy, task-switch
streams); `mode_plots` draws a result; `bench_cli` is the command. The emulator core never imports this package.
"""

from edgebert.emulator.bench.bench_cli import main
from edgebert.emulator.bench.modes import MODES, run_bench
from edgebert.emulator.bench.multitask_compare import STREAM_KINDS, compare, format_markdown, make_stream

__all__ = ["MODES", "STREAM_KINDS", "compare", "format_markdown", "main", "make_stream", "run_bench"]
