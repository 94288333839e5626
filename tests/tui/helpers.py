"""Small helpers for driving the app in pilot tests: wait for conditions, read the log back."""

from __future__ import annotations

import asyncio

from engine.feedback import FeedbackLog


async def wait_for(pilot, condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until ``condition()`` holds (fails the test after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def wait_idle(pilot, app, timeout: float = 30.0) -> None:
    """Wait until the model is loaded and no reply is queued or generating."""
    await wait_for(pilot, lambda: app.lm is not None and not app.busy, timeout, "the app to be idle")
    await pilot.pause()


def events(home, profile: str = "demo", type_: str | None = None) -> list[dict]:
    evs = FeedbackLog(home, profile).read().events
    return [e for e in evs if type_ is None or e["type"] == type_]


def screen_text(app) -> str:
    """Everything the chat column shows: each message's header line and its Markdown source."""
    from textual.widgets import Markdown, Static

    parts = []
    for view in app.chat.views():
        parts.append(str(view.query_one(".header", Static).render()))
        parts.append(view.query_one(Markdown).source)
    return "\n".join(parts)


async def send(pilot, text: str) -> None:
    app = pilot.app
    app.composer.focus()
    app.composer.text = text
    await pilot.press("enter")


def plain(widget) -> str:
    """The text a widget shows on screen right now (its rendered lines)."""
    from textual.geometry import Region

    width, height = widget.size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))
