"""Issue 28 items 3 and 4: messages sent while a reply generates are queued, each its own turn (never
glued to the next text typed); a reply that fails (a remote server that is down) leaves its message
marked "no reply", its text back in the composer, and sending again puts the new message in its place."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import burst, events, screen_lines, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.error import ErrorScreen


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_messages_sent_while_a_reply_streams_are_queued_each_as_its_own_turn(home):
    gen = FakeGenerator(["one two three four five six seven eight", "ok", "ok"], delay=0.1)
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "Fact number 1")
        await wait_for(pilot, lambda: gen.streams and gen.streams[0].started.is_set(), what="streaming")
        burst(pilot, "text:Fact number 2", "enter", "text:Fact number 3", "enter")
        await wait_for(pilot, lambda: len(app.replies.waiting) == 2, what="two queued")
        await pilot.pause()
        assert app.replies.busy and app.composer.text == ""
        lines = screen_lines(app)
        assert lines.count("queued") == 2 and "Fact number 2" in lines and "Fact number 3" in lines
        await wait_for(pilot, lambda: not app.replies.busy and not app.replies.waiting, timeout=10, what="all replies")
        await pilot.pause()
        msgs = events(home, type_="message")
        assert [(m["role"], m["content"]) for m in msgs if m["role"] == "user"] == \
            [("user", "Fact number 1"), ("user", "Fact number 2"), ("user", "Fact number 3")]
        assert [m["role"] for m in msgs] == ["user", "assistant"] * 3
        assert all(b["parent_id"] == a["id"] for a, b in zip(msgs, msgs[1:]))  # one chain, in order
        assert "queued" not in screen_lines(app)


class DownServer(FakeGenerator):
    """A remote backend whose server is down until ``up`` is set."""

    up = False

    def stream(self, messages, params=None, system_prompt=None):
        return super().stream(messages, params, system_prompt) if self.up else _Unreachable()


class _Unreachable:
    """What engine.runtime.remote's stream does when nothing listens at base_url."""

    record: dict = {}

    def __iter__(self):
        raise UserError("cannot reach the model server at http://127.0.0.1:9/v1 (ConnectError); is it running?")

    def cancel(self) -> None:
        pass


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_a_reply_that_fails_leaves_its_message_marked_and_sending_again_takes_its_place(home):
    gen = DownServer(["here I am"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "anyone there?")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the error")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ErrorScreen), what="closed")
        await pilot.pause()
        assert "⚠ no reply" in screen_text(app)
        assert app.composer.text == "anyone there?"  # Enter sends it again
        gen.up = True
        app.composer.focus()
        await pilot.press("enter")
        await wait_idle(pilot, app)
        users = events(home, type_="message")
        assert [(m["role"], m["content"], m["parent_id"]) for m in users][:2] == \
            [("user", "anyone there?", None), ("user", "anyone there?", None)]  # in its place, not after it
        assert users[2]["role"] == "assistant" and users[2]["parent_id"] == users[1]["id"]
        chat = screen_text(app)  # the message column
        assert "no reply" not in chat and chat.count("anyone there?") == 1 and "here I am" in chat


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_r_on_the_unanswered_message_answers_it_and_empties_the_composer(home):
    gen = DownServer(["back again"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "anyone there?")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the error")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ErrorScreen), what="closed")
        gen.up = True
        await pilot.press("ctrl+up", "r")
        await wait_idle(pilot, app)
        msgs = events(home, type_="message")
        assert [(m["role"], m["content"]) for m in msgs] == [("user", "anyone there?"), ("assistant", "back again")]
        assert app.composer.text == "" and "no reply" not in screen_text(app)
