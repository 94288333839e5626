"""Every judging action on a selected reply writes its event at once and shows its state (fake model)."""

from __future__ import annotations

import re

import pytest

from engine.adapters import set_promoted
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, plain, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.compare import CompareScreen
from tui.screens.edit import EditScreen
from tui.screens.loop import LoopScreen
from tui.screens.reason import ReasonScreen
from tui.widgets.status_bar import StatusBar


async def _chat_once(pilot, app, text="question"):
    await wait_idle(pilot, app)
    await send(pilot, text)
    await wait_idle(pilot, app)
    await pilot.press("ctrl+up")  # focus the message list; the new reply is selected


async def test_thumbs_toggle_and_latest_wins(home):
    app = create_app(home, "demo", factory(FakeGenerator(["a reply"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await _chat_once(pilot, app)
        reply = app.chat.selected_id
        await pilot.press("plus")
        assert "👍" in screen_text(app)
        await pilot.press("minus")
        assert "👎" in screen_text(app) and "👍" not in screen_text(app)
        await pilot.press("minus")  # same thumb again clears
        assert "👎" not in screen_text(app)
        assert [(e["message_id"], e["value"]) for e in events(home, type_="rating")] == \
            [(reply, 1), (reply, -1), (reply, 0)]


@pytest.mark.slow
async def test_reason_tags_and_comment(home):
    app = create_app(home, "demo", factory(FakeGenerator(["a reply"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await _chat_once(pilot, app)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonScreen), what="reason screen")
        await pilot.pause()
        await pilot.press("enter")  # tick the first tag ("wrong")
        app.screen.query_one("#comment").value = "made up a fact"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ReasonScreen), what="reason saved")
        (rating,) = events(home, type_="rating")
        assert (rating["value"], rating["tags"], rating["comment"]) == (-1, ["wrong"], "made up a fact")
        await pilot.pause()
        text = screen_text(app)
        assert "👎" in text and "wrong" in text and "made up a fact" in text


@pytest.mark.slow
async def test_edit_shows_marker_and_original_stays_viewable(home):
    app = create_app(home, "demo", factory(FakeGenerator(["the original answer"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await _chat_once(pilot, app)
        reply = app.chat.selected_id
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen), what="editor")
        await pilot.pause()
        editor = app.screen.query_one("#editor")
        assert editor.text == "the original answer"
        editor.text = "the corrected answer"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "corrected" in screen_text(app), what="edited text on screen")
        (edit,) = events(home, type_="edit")
        assert (edit["message_id"], edit["content"]) == (reply, "the corrected answer")
        assert "✎ edited" in screen_text(app)
        await pilot.press("o")
        assert "the original answer" in screen_text(app) and "✎ original" in screen_text(app)
        await pilot.press("o")
        assert "the corrected answer" in screen_text(app)


@pytest.mark.slow
async def test_regenerate_browse_siblings_and_pick(home):
    app = create_app(home, "demo", factory(FakeGenerator(["reply one", "reply two", "reply three"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await _chat_once(pilot, app)
        await pilot.press("r")
        await wait_idle(pilot, app)
        await pilot.press("r")
        await wait_idle(pilot, app)
        assert "‹3/3›" in screen_text(app) and "reply three" in screen_text(app)
        await pilot.press("left_square_bracket")
        assert "‹2/3›" in screen_text(app) and "reply two" in screen_text(app)
        await pilot.press("left")
        assert "‹1/3›" in screen_text(app) and "reply one" in screen_text(app)
        await pilot.press("right")
        await pilot.press("p")
        replies = [e for e in events(home, type_="message") if e["role"] == "assistant"]
        (choice,) = events(home, type_="choice")
        assert choice["kind"] == "regenerate"
        assert choice["chosen_id"] == replies[1]["id"]
        assert sorted(choice["candidates"]) == sorted(r["id"] for r in replies)
        assert len({r["parent_id"] for r in replies}) == 1
        assert "★ picked" in screen_text(app) and "reply two" in screen_text(app)


@pytest.mark.slow
async def test_compare_hides_sources_until_the_pick(home):
    gen = FakeGenerator(["left answer", "right answer"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        await _chat_once(pilot, app)
        first = app.chat.selected_id
        gen.replies = ["answer A", "answer B"]
        gen.calls.clear()
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.ready, what="both replies")
        screen = app.screen
        headers = [str(screen.query_one(f"#header-{s}").render()) for s in "AB"]
        assert headers == ["A", "B"], "sources must stay hidden before the pick"
        assert all(c["params"].do_sample for c in gen.calls), "two seeds must sample"
        await pilot.press("2")
        (choice,) = events(home, type_="choice")
        assert choice["kind"] == "compare" and choice["chosen_id"] == screen.message_ids["B"]
        assert set(choice["candidates"]) == set(screen.message_ids.values())
        assert sorted(choice["sources"].values()) == sorted(f"seed {c['params'].seed}" for c in gen.calls)
        assert "seed" in str(screen.query_one("#header-B").render())
        await pilot.press("escape")
        await pilot.pause()
        replies = [e for e in events(home, type_="message") if e["role"] == "assistant"]
        assert len(replies) == 3 and len({r["parent_id"] for r in replies}) == 1
        assert app.chat.selected_id == screen.message_ids["B"] != first
        assert "★ picked" in screen_text(app)


def _fake_run(home, run_id):
    adapter = home.run_dir("demo", run_id) / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "builtin:demo"}')
    (home.run_dir("demo", run_id) / "report.json").write_text(
        '{"run_id": "%s", "method": "sft", "eval": {"new": {"loss": 1.25}, "current": {"loss": 2.5}},'
        ' "promoted": true, "reason": "not worse than the base"}' % run_id)


@pytest.mark.slow
async def test_promoted_adapter_is_used_switched_and_recorded(home):
    _fake_run(home, "20260101-000000-sft")
    _fake_run(home, "20260102-000000-dpo")
    set_promoted(home, "demo", "20260101-000000-sft")
    gen = FakeGenerator(["x"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        assert gen.adapter == "20260101-000000-sft"
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("up", "enter")  # list: base, newest run, ...; the one in use is highlighted
        await wait_for(pilot, lambda: gen.adapter == "20260102-000000-dpo", what="adapter switch")
        await pilot.pause()
        assert "20260102-000000-dpo" in str(app.query_one(StatusBar).render())
        await send(pilot, "hi")
        await wait_idle(pilot, app)
        assert events(home, type_="message")[-1]["generation"]["adapter"] == "20260102-000000-dpo"
        # compare with an adapter active: base vs adapter, labelled so after the pick
        await pilot.press("ctrl+up", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.ready, what="compare")
        await pilot.press("1")
        (choice,) = events(home, type_="choice")
        assert sorted(choice["sources"].values()) == ["20260102-000000-dpo", "base"]
        adapters_used = {e["id"]: e["generation"]["adapter"] for e in events(home, type_="message")
                         if e["role"] == "assistant"}
        for mid, label in choice["sources"].items():
            assert adapters_used[mid] == (None if label == "base" else label)
        assert gen.adapter == "20260102-000000-dpo", "compare must restore the active adapter"


@pytest.mark.slow
async def test_loop_panel_shows_counts_and_adapter_eval(home):
    _fake_run(home, "20260101-000000-sft")
    app = create_app(home, "demo", factory(FakeGenerator(["x"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await _chat_once(pilot, app)
        await pilot.press("plus", "f3")
        await wait_for(pilot, lambda: isinstance(app.screen, LoopScreen), what="loop panel")
        await pilot.pause()
        stats = plain(app.screen.query_one("#stats"))
        adapters = plain(app.screen.query_one("#adapters"))
        assert re.search(r"^liked\s+1\s+1\s*$", stats, re.M), stats
        assert "20260101-000000-sft sft promoted" in adapters
        assert re.search(r"^\s+loss\s+1\.25\s+2\.5\s*$", adapters, re.M), adapters


@pytest.mark.slow
async def test_conversations_rename_new_and_switch(home):
    app = create_app(home, "demo", factory(FakeGenerator(["r1", "r2"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "first topic")
        await wait_idle(pilot, app)
        first_conv = app.session.conversation_id
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#answer").value = "My chat"
        await pilot.press("enter")
        await pilot.pause()
        (title,) = events(home, type_="title")
        assert (title["conversation_id"], title["title"]) == (first_conv, "My chat")
        await pilot.press("ctrl+n")
        await send(pilot, "second topic")
        await wait_idle(pilot, app)
        assert "first topic" not in screen_text(app)
        sidebar = app.query_one("#sidebar")
        labels = [str(sidebar.get_option_at_index(i).prompt) for i in range(sidebar.option_count)]
        assert labels[1:] == ["second topic", "My chat"]
        sidebar.focus()
        sidebar.highlighted = 2
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.conversation_id == first_conv and "first topic" in screen_text(app)


@pytest.mark.slow
async def test_keys_remapped_from_config(home):
    home.ensure()
    home.config_path.write_text('[keys]\n"chat.like" = "l"\n')
    app = create_app(home, "demo", factory(FakeGenerator(["x"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await _chat_once(pilot, app)
        await pilot.press("l")
        assert [e["value"] for e in events(home, type_="rating")] == [1]


@pytest.mark.slow
async def test_copy_puts_the_reply_on_the_clipboard(home):
    app = create_app(home, "demo", factory(FakeGenerator(["copy me"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await _chat_once(pilot, app)
        await pilot.press("c")
        assert app.clipboard == "copy me"
