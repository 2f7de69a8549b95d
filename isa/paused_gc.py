"""`paused_gc()`: Python's cyclic garbage collector paused for a block that allocates many long-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector for the block (restored as it was): compiling, decoding or running a large
    program allocates ~10^6 objects that live on, and the full collections they trigger rescan them again and again.
    Memory with reference cycles is still freed at the next collection after the block."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
