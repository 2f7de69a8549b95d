"""Test-session setup shared by every test folder."""

import os

# One BLAS thread per process: pytest-xdist already runs one worker per core, and oversubscribed
# OpenBLAS threads made emulator-heavy tests about 10x slower on the 2-core machines.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
