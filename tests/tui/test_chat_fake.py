"""The chat flow with a fake generator: what a person sees and what lands in the log, independent of
model speed (slow streaming, loading that has not finished, loading that fails)."""

from __future__ import annotations

import threading

import pytest

from engine.errors import UserError
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.error import ErrorScreen
from tui.widgets.status_bar import StatusBar

REPLY = "Sure. Here is **bold** text and code:\n\n```python\nprint('hi')\n```"


async def test_send_streams_reply_and_logs_both_messages(home):
    app = create_app(home, "demo", factory(FakeGenerator([REPLY])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "hello there")
        await wait_idle(pilot, app)
        msgs = events(home, type_="message")
        assert [(m["role"], m["content"]) for m in msgs] == [("user", "hello there"), ("assistant", REPLY)]
        assert msgs[1]["parent_id"] == msgs[0]["id"]
        assert msgs[1]["generation"]["profile"] == "demo"
        assert "hello there" in screen_text(app) and "print('hi')" in screen_text(app)
        status = app.query_one(StatusBar)
        assert "tok/s, first token 0.01 s" in str(status.render()) and "fake/model" in str(status.render())
        assert app.composer.text == ""


async def test_newline_key_inserts_newline_instead_of_sending(home):
    app = create_app(home, "demo", factory(FakeGenerator()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("a", "ctrl+j", "b")
        assert app.composer.text == "a\nb"
        assert events(home) == []
        await pilot.press("enter")
        await wait_idle(pilot, app)
        assert events(home, type_="message")[0]["content"] == "a\nb"


async def test_message_sent_before_model_is_ready_is_answered_once_it_is(home):
    release = threading.Event()
    gen = FakeGenerator(["late but here"])

    def slow_factory(profile, home_, progress):
        progress("weights", 0.25)
        release.wait(30)
        return gen

    app = create_app(home, "demo", slow_factory)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "weights 25%" in str(app.query_one(StatusBar).render()), what="progress")
        await send(pilot, "are you there?")
        await pilot.pause(0.2)
        assert [e["role"] for e in events(home, type_="message")] == ["user"]
        assert "waiting for the model" in screen_text(app)
        release.set()
        await wait_idle(pilot, app)
        assert [e["content"] for e in events(home, type_="message")] == ["are you there?", "late but here"]
        assert "late but here" in screen_text(app) and "waiting" not in screen_text(app)


@pytest.mark.slow
async def test_keys_are_handled_while_a_slow_reply_streams_and_esc_keeps_the_partial_reply(home):
    words = " ".join(f"w{i}" for i in range(200))
    gen = FakeGenerator(["first reply", words], delay=0.05)
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "one")
        await wait_idle(pilot, app)
        first_reply = events(home, type_="message")[-1]["id"]
        await send(pilot, "two")
        await wait_for(pilot, lambda: len(gen.streams) == 2 and "w3" in screen_text(app), what="streaming")
        # select the first reply and like it while the second is still streaming
        await pilot.press("ctrl+up")  # focuses the list; the newest finished reply is selected
        assert app.chat.selected_id == first_reply
        await pilot.press("plus")
        assert gen.streams[1].record == {}, "the reply finished before the key was handled"
        ratings = events(home, type_="rating")
        assert [(r["message_id"], r["value"]) for r in ratings] == [(first_reply, 1)]
        assert "👍" in screen_text(app)
        await pilot.press("escape")
        await wait_idle(pilot, app)
        stopped = events(home, type_="message")[-1]
        assert stopped["role"] == "assistant" and stopped["generation"]["stopped"] is True
        assert stopped["content"].startswith("w0 w1 w2") and len(stopped["content"]) < len(words)
        assert "⏹ stopped" in screen_text(app)


@pytest.mark.slow
async def test_model_that_cannot_load_shows_why_and_offers_the_demo_profile(home):
    (home.profiles_dir).mkdir(parents=True)
    (home.profiles_dir / "broken.toml").write_text('[model]\nid = "nobody/missing-model"\n')
    gen = FakeGenerator(["demo reply"])

    def picky(profile, home_, progress):
        if profile.name == "broken":
            raise UserError("model 'nobody/missing-model' is not cached and the hub is offline; use --profile demo.")
        return gen

    app = create_app(home, "broken", picky)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the error modal")
        await pilot.pause()
        assert "not cached" in str(app.screen.query_one("#error-message").render())
        assert "failed" in str(app.query_one(StatusBar).render())
        await pilot.click("#demo")
        await wait_idle(pilot, app)
        assert app.profile.name == "demo"
        await send(pilot, "hi")
        await wait_idle(pilot, app)
        assert [e["content"] for e in events(home, "demo", "message")] == ["hi", "demo reply"]


async def test_trust_remote_code_profile_shows_a_warning(home):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "remote.toml").write_text('[model]\nid = "x/y"\ntrust_remote_code = true\n')
    app = create_app(home, "remote", factory(FakeGenerator()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        warning = app.query_one("#warning")
        assert warning.display and "trust_remote_code" in str(warning.render())


class _Exploding(FakeGenerator):
    def stream(self, messages, params=None, system_prompt=None):
        if len(self.calls) == 0:
            self.calls.append({})
            raise UserError("the model ran out of memory; try a smaller max_new_tokens.")
        return super().stream(messages, params, system_prompt)


@pytest.mark.slow
async def test_a_failed_reply_shows_why_and_the_app_keeps_working(home):
    app = create_app(home, "demo", factory(_Exploding(["works now"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "first")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the error modal")
        await pilot.pause()
        assert "out of memory" in str(app.screen.query_one("#error-message").render())
        await pilot.press("escape")
        await wait_idle(pilot, app)
        assert "generating" not in screen_text(app)
        await pilot.press("ctrl+up", "r")  # the user message is selected: answer it again
        await wait_idle(pilot, app)
        assert [e["content"] for e in events(home, type_="message")] == ["first", "works now"]


@pytest.mark.slow
async def test_switch_profile_reloads_model_and_shows_that_profiles_log(home):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "other.toml").write_text('[model]\nid = "some/other-model"\n')
    loads = []

    def make(profile, home_, progress):
        loads.append(profile.name)
        return FakeGenerator([f"reply from {profile.name}"], model_id=profile.model.id)

    app = create_app(home, "demo", make)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "hello demo")
        await wait_idle(pilot, app)
        await pilot.press("f5")
        await pilot.pause()
        names = [o.id for o in app.screen.query_one("#choices").options]
        app.screen.query_one("#choices").highlighted = names.index("other")
        await pilot.press("enter")
        await wait_idle(pilot, app)
        assert loads == ["demo", "other"]
        assert "some/other-model" in str(app.query_one(StatusBar).render())
        assert "hello demo" not in screen_text(app)
        await send(pilot, "hello other")
        await wait_idle(pilot, app)
        assert [e["content"] for e in events(home, "other", "message")] == ["hello other", "reply from other"]
        assert len(events(home, "demo", "message")) == 2


@pytest.mark.slow
async def test_command_palette_offers_profile_and_adapter_switching(home):
    from tui.screens.choose import ChooseScreen

    app = create_app(home, "demo", factory(FakeGenerator()))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Switch profile", "Switch adapter", "Feedback and adapters", "Rename conversation"} <= set(titles)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Switch adapter")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChooseScreen), what="adapter list")
        await pilot.pause()
        assert [o.id for o in app.screen.query_one("#choices").options] == ["__base__"]


@pytest.mark.slow
async def test_quit_while_streaming_saves_the_partial_reply(home):
    gen = FakeGenerator([" ".join(f"w{i}" for i in range(300))], delay=0.05)
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "long one please")
        await wait_for(pilot, lambda: "w3" in screen_text(app), what="streaming")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    reply = events(home, type_="message")[-1]
    assert reply["role"] == "assistant" and reply["generation"]["stopped"] is True
    assert reply["content"].startswith("w0 w1 w2")


async def test_corrupt_log_lines_are_reported_not_fatal(home):
    from engine.feedback import FeedbackLog

    log = FeedbackLog(home, "demo")
    log.add_message("c1", None, "user", "survives")
    with open(log.path, "ab") as f:
        f.write(b'{"v": 1, "type": "message", "torn\n')
    app = create_app(home, "demo", factory(FakeGenerator()))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        assert "survives" in screen_text(app)
        assert any("unreadable" in n.message for n in app._notifications)


async def test_unknown_theme_and_binding_id_in_config_are_warnings(home):
    home.ensure()
    home.config_path.write_text('[keys]\n"chat.nope" = "x"\n[ui]\ntheme = "no-such-theme"\nsidebar = false\n')
    app = create_app(home, "demo", factory(FakeGenerator()))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        messages = " ".join(n.message for n in app._notifications)
        assert "chat.nope" in messages and "no-such-theme" in messages
        assert not app.query_one("#sidebar").display


async def test_a_reply_that_finishes_as_the_app_closes_is_no_traceback(home):
    """A reply ending while the person quits refreshes the chat after the app started removing its widgets: that is
    nothing to show, not a crash on exit (seen: NoMatches '#sidebar' from ReplyFinished during shutdown). While the
    app runs, a missing widget is still an error."""
    from textual.css.query import NoMatches

    app = create_app(home, "demo", factory(FakeGenerator([REPLY])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "hello there")
        await wait_idle(pilot, app)
        await app.query_one("#sidebar").remove()
        with pytest.raises(NoMatches):
            await app.refresh_chat()
        app._running = False  # what App._shutdown sets before it removes the screens
        try:
            await app.refresh_chat()
        finally:
            app._running = True
