"""Keys that arrive in one burst (a fast typist on a busy CPU, ``tmux send-keys 'text' Enter``, a paste
without bracketed paste): every key counts, in the order it was typed. The keys are queued with the
driver before the app handles the first one (helpers.burst), which is how a terminal delivers them."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import burst, events, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.edit import EditScreen


def _user_texts(home):
    return [e["content"] for e in events(home, type_="message") if e["role"] == "user"]


@pytest.mark.slow
async def test_text_and_enter_in_one_burst_send_exactly_the_text(home):
    app = create_app(home, "demo", factory(FakeGenerator(["ok"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        burst(pilot, "text:Second message test", "enter")
        await wait_for(pilot, lambda: len(events(home, type_="message")) == 2, what="the reply")
        await wait_idle(pilot, app)
        assert _user_texts(home) == ["Second message test"]
        assert app.composer.text == ""
        # typed on after Enter in the same burst: kept in the composer, not lost, not sent
        burst(pilot, "text:third", "enter", "text:draft")
        await wait_for(pilot, lambda: len(events(home, type_="message")) == 4, what="the second reply")
        await wait_idle(pilot, app)
        assert _user_texts(home) == ["Second message test", "third"]
        assert app.composer.text == "draft"


@pytest.mark.slow
async def test_ctrl_n_then_text_and_enter_in_one_burst_sends_all_of_it_to_the_new_conversation(home):
    app = create_app(home, "demo", factory(FakeGenerator(["ok"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "first")
        await wait_idle(pilot, app)
        first_conv = app.session.conversation_id
        app.composer.text = "old "
        app.composer.move_cursor(app.composer.document.end)
        burst(pilot, "ctrl+n", "text:delta echo foxtrot", "enter")
        await wait_for(pilot, lambda: len(events(home, type_="message")) == 4, what="the reply")
        await wait_idle(pilot, app)
        last_user = [e for e in events(home, type_="message") if e["role"] == "user"][-1]
        assert last_user["content"] == "old delta echo foxtrot"
        assert last_user["conversation_id"] != first_conv and last_user["parent_id"] is None
        assert app.composer.text == ""


async def test_newline_key_in_a_burst_lands_where_it_was_typed(home):
    app = create_app(home, "demo", factory(FakeGenerator(["ok"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        burst(pilot, "text:ab", "ctrl+j", "text:cd", "enter")
        await wait_for(pilot, lambda: len(events(home, type_="message")) == 2, what="the reply")
        await wait_idle(pilot, app)  # the reply's handler has finished before the app closes
        assert _user_texts(home) == ["ab\ncd"]


@pytest.mark.slow
async def test_edit_typed_and_saved_in_one_burst_saves_every_character(home):
    app = create_app(home, "demo", factory(FakeGenerator(["abc"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "q")
        await wait_idle(pilot, app)
        await pilot.press("ctrl+up", "e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen), what="editor")
        await pilot.pause()
        editor = app.screen.query_one("#editor")
        editor.move_cursor(editor.document.end)
        burst(pilot, "text:def", "ctrl+s")
        await wait_for(pilot, lambda: events(home, type_="edit"), what="the edit")
        assert [e["content"] for e in events(home, type_="edit")] == ["abcdef"]


@pytest.mark.slow
async def test_four_lefts_in_one_burst_move_four_siblings(home):
    replies = [f"reply {i}" for i in range(1, 7)]
    app = create_app(home, "demo", factory(FakeGenerator(replies)))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "q")
        await wait_idle(pilot, app)
        await pilot.press("ctrl+up")
        for _ in range(5):
            await pilot.press("r")
            await wait_idle(pilot, app)
        assert "‹6/6›" in screen_text(app)
        burst(pilot, "left", "left", "left", "left")
        await wait_for(pilot, lambda: "‹2/6›" in screen_text(app), timeout=5, what="‹2/6›")
        await pilot.pause(0.2)
        assert "‹2/6›" in screen_text(app) and "reply 2" in screen_text(app)
        burst(pilot, "right", "plus")  # the like goes to the reply shown after the Right
        await wait_for(pilot, lambda: events(home, type_="rating"), timeout=5, what="the rating")
        (rating,) = events(home, type_="rating")
        assert app.session.message(rating["message_id"]).content == "reply 3"
        assert "‹3/6› 👍" in screen_text(app)


@pytest.mark.slow
async def test_two_picks_in_one_burst_on_the_ab_screen_write_one_choice(home):
    from tui.screens.compare import CompareScreen

    app = create_app(home, "demo", factory(FakeGenerator(["one", "A", "B"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "q")
        await wait_idle(pilot, app)
        await pilot.press("ctrl+up", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.ready, what="compare")
        screen = app.screen
        burst(pilot, "1", "2")
        await wait_for(pilot, lambda: screen.chosen is not None and events(home, type_="choice"), what="the pick")
        await pilot.pause(0.3)
        (choice,) = events(home, type_="choice")
        assert choice["chosen_id"] == screen.message_ids["A"]
