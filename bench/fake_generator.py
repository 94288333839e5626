"""A fake model for the TUI benchmarks: streams numbered tokens at a chosen rate (or as fast as it
is pulled), so the cost measured is the app's rendering and event handling, not a model's.

It satisfies ``tui.generator.Generator`` (``stream`` / ``load_adapter`` / ``use_adapter``) and is
passed to ``tui.app.create_app(..., generator_factory=...)``. Every token is ``w<number>`` followed by
a space, with a blank line every ``PARAGRAPH`` tokens and a fenced code block every ``CODE_EVERY``
tokens, so the Markdown looks like a long reply; the number of the last token visible on screen
is read back from the widget's source with :func:`last_token`.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

PARAGRAPH = 40
CODE_EVERY = 400
_TOKEN = re.compile(r"w(\d{5})")


def token_text(i: int) -> str:
    """Token ``i`` of the fake reply (0-based), with its trailing whitespace or Markdown."""
    if i % CODE_EVERY == CODE_EVERY - 20:
        return f"\n\n```python\nw{i:05d} = "
    if i % CODE_EVERY == CODE_EVERY - 1:
        return f"w{i:05d}\n```\n\n"
    if CODE_EVERY - 20 < i % CODE_EVERY < CODE_EVERY - 1:
        return f"w{i:05d} +\n    "
    return f"w{i:05d}" + ("\n\n" if i % PARAGRAPH == PARAGRAPH - 1 else " ")


def last_token(text: str) -> int:
    """How many fake tokens ``text`` shows (the number of the last one, plus one)."""
    tail = text[-200:]
    found = _TOKEN.findall(tail)
    return int(found[-1]) + 1 if found else 0


class FakeStream:
    def __init__(self, n_tokens: int, rate: float | None, timestamps: list[float] | None) -> None:
        self.n_tokens = n_tokens
        self.rate = rate
        self.timestamps = timestamps
        self.record: dict[str, Any] = {}
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self):
        start = time.perf_counter()
        interval = 1.0 / self.rate if self.rate else 0.0
        produced = 0
        for i in range(self.n_tokens):
            if self._cancel.is_set():
                break
            if interval:
                due = start + i * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if self.timestamps is not None:
                self.timestamps.append(time.perf_counter())
            produced += 1
            yield token_text(i)
        elapsed = time.perf_counter() - start
        self.record = {
            "model": "bench:fake", "revision": None, "adapter": None, "system_prompt": "",
            "params": {"max_new_tokens": self.n_tokens, "temperature": 0.0, "top_p": 1.0, "top_k": 0,
                       "repetition_penalty": 1.0, "do_sample": False},
            "seed": 0, "prompt_tokens": 10, "completion_tokens": produced, "ttft_s": 0.0,
            "tokens_per_s": produced / elapsed if elapsed > 0 else None, "elapsed_s": elapsed,
            "stopped": self._cancel.is_set(),
        }


class FakeGenerator:
    """Streams ``n_tokens`` tokens per reply at ``rate`` tokens/s (None: as fast as pulled)."""

    device = "cpu"
    model_id = "bench:fake"
    revision = None

    def __init__(self, n_tokens: int, rate: float | None = None) -> None:
        self.n_tokens = n_tokens
        self.rate = rate
        self.adapter: str | None = None
        self.timestamps: list[float] = []
        """perf_counter time at which each token of the latest reply was handed out."""

    def stream(self, messages, params=None, system_prompt=None) -> FakeStream:
        self.timestamps = []
        return FakeStream(self.n_tokens, self.rate, self.timestamps)

    def load_adapter(self, run_id, path) -> None:
        pass

    def use_adapter(self, run_id) -> None:
        self.adapter = run_id


def factory_for(generator: FakeGenerator):
    """A ``generator_factory`` for ``create_app`` that hands out ``generator``."""

    def factory(profile, home, progress):
        progress("ready", 1.0)
        return generator

    return factory
