"""The main screen, pixel for pixel: a conversation with a liked, an edited and a regenerated reply.

The log is written with fixed ids and timestamps and the fake generator never runs, so the picture
is deterministic. Update with ``--snapshot-update`` only after looking at the report.
"""

from __future__ import annotations

from engine.feedback import FeedbackLog
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import wait_idle
from tui.app import create_app

CONV, OTHER = "c" * 32, "d" * 32


def _write_conversation(home) -> None:
    log = FeedbackLog(home, "demo")
    gen = {"profile": "demo", "model": "fake/model", "adapter": None, "system_prompt": "You are a helpful assistant.",
           "seed": 1, "tokens_per_s": 40.0, "stopped": False}
    t = 1_700_000_000.0
    events = [
        {"type": "message", "id": "o1", "ts": t, "conversation_id": OTHER, "parent_id": None, "role": "user",
         "content": "An older conversation"},
        {"type": "message", "id": "u1", "ts": t + 1, "conversation_id": CONV, "parent_id": None, "role": "user",
         "content": "How do I reverse a list in Python?"},
        {"type": "message", "id": "a1", "ts": t + 2, "conversation_id": CONV, "parent_id": "u1", "role": "assistant",
         "content": "Use slicing:\n\n```python\nitems[::-1]\n```", "generation": gen},
        {"type": "rating", "id": "r1", "ts": t + 3, "message_id": "a1", "value": 1, "tags": [], "comment": None},
        {"type": "message", "id": "u2", "ts": t + 4, "conversation_id": CONV, "parent_id": "a1", "role": "user",
         "content": "And in place?"},
        {"type": "message", "id": "a2", "ts": t + 5, "conversation_id": CONV, "parent_id": "u2", "role": "assistant",
         "content": "Call items.reverse() twice.", "generation": gen},
        {"type": "edit", "id": "e2", "ts": t + 6, "message_id": "a2", "content": "Call `items.reverse()`."},
        {"type": "message", "id": "u3", "ts": t + 7, "conversation_id": CONV, "parent_id": "a2", "role": "user",
         "content": "Thanks!"},
        {"type": "message", "id": "a3", "ts": t + 8, "conversation_id": CONV, "parent_id": "u3", "role": "assistant",
         "content": "You are welcome.", "generation": gen},
        {"type": "message", "id": "a3b", "ts": t + 9, "conversation_id": CONV, "parent_id": "u3", "role": "assistant",
         "content": "Glad to help!", "generation": {**gen, "seed": 2}},
    ]
    log.append_many(events)


def test_main_screen_with_liked_edited_and_regenerated_replies(home, snap_compare):
    _write_conversation(home)
    app = create_app(home, "demo", factory(FakeGenerator()))

    async def ready(pilot) -> None:
        await wait_idle(pilot, app)
        app.composer.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=ready)


def test_main_screen_fits_80x24(home, snap_compare):
    _write_conversation(home)
    app = create_app(home, "demo", factory(FakeGenerator()))

    async def ready(pilot) -> None:
        await wait_idle(pilot, app)
        app.composer.cursor_blink = False
        await pilot.press("ctrl+up")  # the message list focused: the footer shows the judging keys
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)
