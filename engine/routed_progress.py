"""Route transformers' own progress bars ("Loading weights", "Writing model shards") to a callback.

Why: the TUI paints its own loading screen and the CLI must not print tqdm bars into piped output,
but the weight-loading bar is the only place that knows how far loading has got. transformers lets
one hook tqdm creation (``logging.set_tqdm_hook``); the hook is process-global, so it is installed
only for the duration of one load or save.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Progress = Callable[[str, "float | None"], None]


class QuietBar:
    """A silent stand-in for tqdm that reports ``done/total`` to ``report``."""

    def __init__(self, iterable=None, *args, total=None, report: Callable[[float], None] | None = None, **kwargs):
        self._iterable = iterable
        self._report = report
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        self.total = total
        self.n = 0

    def _tick(self, k: int = 1) -> None:
        self.n += k
        if self._report is not None and self.total:
            self._report(min(1.0, self.n / self.total))

    def __iter__(self):
        for item in self._iterable or ():
            yield item
            self._tick()

    def update(self, k: int = 1) -> None:
        self._tick(k)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __getattr__(self, _name):  # close, set_description, refresh, ... are no-ops
        return lambda *a, **k: None


@contextlib.contextmanager
def routed_progress(report: Callable[[float], None] | None = None) -> Iterator[None]:
    """Silence transformers' tqdm bars inside the block; each bar's fraction goes to ``report``."""
    from transformers.utils import logging as hf_logging

    def hook(_factory, args, kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k in ("total",)}
        return QuietBar(*args[:1], report=report, **kwargs)

    previous = hf_logging.set_tqdm_hook(hook)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)
