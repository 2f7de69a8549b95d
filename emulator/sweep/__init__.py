"""edgebert.emulator.sweep: design-space exploration (`edgebert-sweep`), a harness on top of the compiler and the
emulator core (which never imports it).

`spec` reads the sweep spec; `space` and `strategies` list its points (grid, random, Optuna); `point_configs` builds
each point's hardware configs; `workloads` and `model_builder` prepare models and sentences; `evaluate` compiles and
runs one point into a row (`metrics`); `engine` drives Ray actors, the compile cache and the journal; `results`,
`pareto` and `provenance` write results.parquet/csv, pareto.png and sweep.json; `sweep_cli` is the command.
"""

from edgebert.emulator.sweep.engine import SweepSummary, run_sweep
from edgebert.emulator.sweep.spec import Spec, SweepSpecError, load_spec

__all__ = ["Spec", "SweepSpecError", "SweepSummary", "load_spec", "run_sweep"]
