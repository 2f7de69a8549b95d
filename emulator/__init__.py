"""edgebert.emulator: runs `.ebin` programs with numpy and tallies cycles, traffic and energy."""
