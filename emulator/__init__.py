"""edgebert.emulator: runs `.ebin` programs with numpy and tallies cycles, traffic and energy."""

from edgebert.emulator.runner import DEFAULT_MAX_CYCLES, EmulatorInputError, Runner, RunResult, run

__all__ = ["DEFAULT_MAX_CYCLES", "EmulatorInputError", "RunResult", "Runner", "run"]
