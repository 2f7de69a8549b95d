"""edgebert.emulator.bench: the many-sentence harness on top of the emulator (`edgebert-bench`).

`modes` runs a program over many sentences in EdgeBERT's modes (no exit, early exit, early exit + DVFS) and the
`oracle` bound; `savings` gives the mean and up-to savings; `policy_sweep` sweeps a model over latency targets x
thresholds x exit policies (compiles cached by `program_cache`); `multitask_compare` compares single-task binaries
with one multi-task binary (memory, energy, task-switch streams); `mode_plots` and `sweep_plots` draw results;
`bench_cli` and `policy_sweep_cli` are the command. The emulator core never imports this package.
"""

from edgebert.emulator.bench.bench_cli import main
from edgebert.emulator.bench.modes import ALL_MODES, MODES, bench, run_bench
from edgebert.emulator.bench.multitask_compare import STREAM_KINDS, compare, format_markdown, make_stream
from edgebert.emulator.bench.policy_sweep import SweepConfig, run_sweep

__all__ = ["ALL_MODES", "MODES", "STREAM_KINDS", "SweepConfig", "bench", "compare", "format_markdown", "main",
           "make_stream", "run_bench", "run_sweep"]
