"""A fake generator for the TUI tests that must not depend on model speed (slow streaming, snapshots).

It satisfies tui.generator.Generator: replies are fixed texts split into word pieces; ``delay``
makes each piece take that long so a test can press keys mid-reply; ``cancel`` ends the stream
within one piece and marks the record stopped, like the real runtime.
"""

from __future__ import annotations

import threading


class FakeStream:
    def __init__(self, text: str, delay: float, record: dict) -> None:
        self.pieces = [w + " " for w in text.split(" ")]
        self.pieces[-1] = self.pieces[-1].rstrip()
        self.delay = delay
        self.record: dict = {}
        self._base = record
        self._cancel = threading.Event()
        self.started = threading.Event()

    def __iter__(self):
        n = 0
        self.started.set()
        for piece in self.pieces:
            if self._cancel.is_set():
                break
            if self.delay:
                self._cancel.wait(self.delay)
                if self._cancel.is_set():
                    break
            n += 1
            yield piece
        self.record = {**self._base, "completion_tokens": n, "stopped": self._cancel.is_set()}

    def cancel(self) -> None:
        self._cancel.set()


class FakeGenerator:
    """Replies come from ``replies`` in turn (cycling); each records the adapter and seed used."""

    def __init__(self, replies: list[str] | None = None, delay: float = 0.0, model_id: str = "fake/model") -> None:
        self.replies = replies or ["Hello! I am a **fake** model.\n\n```python\nprint('hi')\n```"]
        self.delay = delay
        self.model_id = model_id
        self.device = "cpu"
        self.adapter: str | None = None
        self.loaded: set[str] = set()
        self.calls: list[dict] = []
        self.streams: list[FakeStream] = []

    def stream(self, messages, params=None, system_prompt=None):
        i = len(self.calls)
        self.calls.append({"messages": messages, "params": params, "adapter": self.adapter})
        seed = getattr(params, "seed", None) or 0
        record = {"model": self.model_id, "revision": "fake", "adapter": self.adapter,
                  "system_prompt": system_prompt or "You are a helpful assistant.",
                  "params": {}, "seed": seed, "prompt_tokens": 3, "tokens_per_s": 42.0,
                  "ttft_s": 0.01, "elapsed_s": 0.1}
        s = FakeStream(self.replies[i % len(self.replies)], self.delay, record)
        self.streams.append(s)
        return s

    def load_adapter(self, run_id, path) -> None:
        self.loaded.add(run_id)

    def use_adapter(self, run_id) -> None:
        self.adapter = run_id


def factory(gen: FakeGenerator):
    """A generator_factory for create_app that reports two progress stages and returns ``gen``."""

    def make(profile, home, progress):
        progress("weights", 0.5)
        progress("ready", 1.0)
        return gen

    return make
