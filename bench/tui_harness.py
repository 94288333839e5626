"""Drive the real TUI headless (``App.run_test``) for the benchmarks: wait for the model, send a
message, know when the reply finished, read what the screen shows.

Timing comes from Textual's ``message_hook`` (called as each message is dispatched), so the moment
a reply finishes is known without polling. The app is built through ``tui.app.create_app`` exactly as
the console script builds it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict


class MessageClock:
    """Records when each message class was dispatched (perf_counter seconds)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)

    def __call__(self, message) -> None:
        self.times[type(message).__name__].append(time.perf_counter())

    def count(self, name: str) -> int:
        return len(self.times.get(name, ()))

    def last(self, name: str) -> float | None:
        found = self.times.get(name)
        return found[-1] if found else None


def create_app(home, profile: str, generator_factory=None):
    from tui.app import create_app as make

    return make(home, profile, generator_factory=generator_factory)


def composer(app):
    return app.query_one("Composer")


async def wait_until(predicate, timeout: float, step: float = 0.005) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


async def wait_model_ready(app, clock: MessageClock, timeout: float = 300.0) -> float:
    """Seconds until the model-ready message was handled (and the app holds the model)."""
    t0 = time.perf_counter()
    held = getattr(app, "model", app)  # tuneloop's app holds the model in app.model.lm
    ok = await wait_until(lambda: clock.count("ModelReady") > 0 and getattr(held, "lm", True) is not None,
                          timeout, step=0.01)
    if not ok:
        raise TimeoutError(f"the model was not ready within {timeout:.0f} s")
    return time.perf_counter() - t0


def press_key(app, key: str, char: str | None = None) -> float:
    """Deliver a key the way a terminal does (through the driver) without waiting for the app to
    go idle (``Pilot.press`` waits, which would hide the latency being measured). Returns the time."""
    from textual import events

    event = events.Key(key, char)
    event.set_sender(app)
    t0 = time.perf_counter()
    app._driver.send_message(event)
    return t0


async def send(pilot, text: str) -> float:
    """Type ``text`` into the composer and press Enter; returns the perf_counter time of the press."""
    box = composer(pilot.app)
    box.focus()
    box.text = text
    await pilot.pause()
    return press_key(pilot.app, "enter")


async def wait_reply(clock: MessageClock, before: int, timeout: float) -> float:
    """Wait until the ``before + 1``-th ReplyFinished was dispatched; return its time."""
    ok = await wait_until(lambda: clock.count("ReplyFinished") > before, timeout, step=0.005)
    if not ok:
        raise TimeoutError(f"no reply finished within {timeout:.0f} s")
    return clock.times["ReplyFinished"][before]


def shown_tokens(app, last_token) -> int:
    """The most fake tokens any Markdown widget on screen holds (or a finished long reply, which is
    drawn as one Rich-rendered leaf: its MessageView's ``body_source``)."""
    from textual.widgets import Markdown

    from tui.widgets.message_view import MessageView

    best = 0
    for md in app.screen.query(Markdown):
        best = max(best, last_token(md.source))
    for view in app.screen.query(MessageView):
        if view.stream_key is None and not view.query(Markdown):
            best = max(best, last_token(view.body_source))
    return best
