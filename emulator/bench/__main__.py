"""`python -m edgebert.emulator.bench ...`: edgebert-bench before the console script is installed."""

import sys

from edgebert.emulator.bench.bench_cli import main

sys.exit(main())
