"""Pause Python's cyclic garbage collector while building many small objects.

Parsing and replaying a log creates hundreds of thousands of dicts and dataclasses, none of which
form reference cycles; the collector rescans them again and again as they accumulate, which made
replay grow faster than linearly (bench/feedback_log.py: 16.5x time for 10x events). Reference
counting still frees everything; the collector runs again as soon as the block ends.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
