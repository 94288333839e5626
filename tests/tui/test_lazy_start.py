"""Issue 26's first paint: ``tuneloop`` builds the app with ``create_app(..., lazy=True)``, which draws the first
frame before the profile, config.toml and the log are read (tui/boot.py). The chat then works as always; what
was typed meanwhile is kept and sent in order; a bad profile or config ends the app with exit code 2 and its
sentence."""

from __future__ import annotations

import threading

import pytest
from textual.css.query import NoMatches

import tui.boot
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import burst, events, screen_text, wait_for, wait_idle
from tui.app import create_app
from tui.screens.help import HelpScreen


def _shows(app, text: str) -> bool:
    try:
        return text in screen_text(app)
    except NoMatches:  # a message view mounted, its children not yet
        return False


def _held_start(monkeypatch) -> threading.Event:
    """The boot worker waits for the returned event before it reads the Start."""
    release = threading.Event()
    load_start = tui.boot.load_start

    def held(home, name):
        release.wait(30)
        return load_start(home, name)

    monkeypatch.setattr(tui.boot, "load_start", held)
    return release


async def test_the_first_frame_comes_before_the_profile_and_the_chat_works_after_it(home, monkeypatch):
    release = _held_start(monkeypatch)
    app = create_app(home, "demo", factory(FakeGenerator(["hello back"])), lazy=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert not app.boot.done and app.composer.has_focus
        assert "loading…" in str(app.status.render())
        release.set()
        await wait_for(pilot, lambda: app.boot.done, what="the start")
        await wait_idle(pilot, app)
        assert app.profile.name == "demo" and "adapter: base" in str(app.status.render())
        burst(pilot, "text:hi", "enter")
        await wait_for(pilot, lambda: len(events(home, type_="message")) == 2, what="the reply")
        await wait_idle(pilot, app)
        assert "hello back" in screen_text(app)


async def test_keys_pressed_before_the_profile_is_read_are_kept_and_run_in_order(home, monkeypatch):
    release = _held_start(monkeypatch)
    app = create_app(home, "demo", factory(FakeGenerator(["one", "two"])), lazy=True)
    async with app.run_test(size=(100, 30)) as pilot:
        burst(pilot, "text:first", "enter", "text:second", "enter", "f1", "text:draft")
        await wait_for(pilot, lambda: _shows(app, "second"), what="the early messages shown")
        assert not app.boot.done and "first" in screen_text(app) and "queued" in screen_text(app)
        release.set()
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="F1, once the parts exist")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(events(home, type_="message")) == 4, what="both replies")
        await wait_idle(pilot, app)
        messages = events(home, type_="message")
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "first"), ("assistant", "one"), ("user", "second"), ("assistant", "two")]
        assert app.composer.text == "draft"


@pytest.mark.parametrize("case", ["profile", "config"])
async def test_a_bad_profile_or_config_read_after_the_first_frame_ends_the_app_with_exit_code_2(home, case):
    if case == "config":
        home.ensure()
        home.config_path.write_text("[keys\n")
    app = create_app(home, "no-such-profile" if case == "profile" else "demo", factory(FakeGenerator()), lazy=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to end")
    assert app.return_code == 2
    expected = "no profile named 'no-such-profile'" if case == "profile" else str(home.config_path)
    assert expected in (app.boot.exit_message or "")


def test_the_first_frame_reads_the_look_of_config_toml_without_validating_it(home):
    home.ensure()
    home.config_path.write_text('unknown = 1\n[ui]\nsidebar = false\ntheme = "nord"\n[keys]\n"app.help" = "f9"\n'
                                '"app.rename" = 3\n')
    assert tui.boot.first_frame(home) == tui.boot.FirstFrame("nord", False, {"app.help": "f9"})
    home.config_path.write_text("[ui\n")
    assert tui.boot.first_frame(home) == tui.boot.FirstFrame()
