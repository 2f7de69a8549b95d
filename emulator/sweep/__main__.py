"""`python -m edgebert.emulator.sweep`: edgebert-sweep before the console script is installed."""

import sys

from edgebert.emulator.sweep.sweep_cli import main

sys.exit(main())
