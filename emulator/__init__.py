"""edgebert.emulator: runs `.ebin` programs with numpy and tallies cycles, traffic and energy.

The core: `runner` (`run`, `Runner`: inputs and data segments in, outputs and report out), `machine` (state and the
timing model), the semantics per unit (`dma`, `matrix`, `sfu`, `control`) dispatched by `dispatch` from the
instruction table, `memory`, `shadow` (timing-only provenance), `costs` and `energy` (from the hardware config),
`report`, `trace`, `plot`, `multitask` (task selection for multi-task programs), `run_files` and `cli`
(`edgebert-emu`). `edgebert.emulator.bench` is the many-sentence harness on top (`edgebert-bench`). The core
imports only `edgebert.isa`: never the compiler, the frontend or the harness.
"""

from edgebert.emulator.runner import DEFAULT_MAX_CYCLES, EmulatorInputError, Runner, RunResult, run

__all__ = ["DEFAULT_MAX_CYCLES", "EmulatorInputError", "RunResult", "Runner", "run"]
