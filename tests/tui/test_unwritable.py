"""A feedback log or home folder that cannot be written: one clear notice naming the file, the app
keeps running, nothing is shown as saved that was not, and nothing already saved is touched."""

from __future__ import annotations

import pytest

from engine.safe_files import ensure_dir
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.error import ErrorScreen


def _notices(app) -> str:
    return " | ".join(n.message for n in app._notifications)


@pytest.mark.slow
async def test_a_log_that_becomes_unwritable_mid_session_is_reported_and_nothing_is_lost(home):
    app = create_app(home, "demo", factory(FakeGenerator(["a reply"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "hello")
        await wait_idle(pilot, app)
        log_path = app.session.log.path
        saved = log_path.read_bytes()
        # the log becomes unwritable (works as root too: the path is now a folder)
        log_path.rename(log_path.with_suffix(".moved"))
        log_path.mkdir()
        await pilot.press("ctrl+up", "plus")
        await wait_for(pilot, lambda: "Not saved" in _notices(app), timeout=5, what="the notice")
        assert str(log_path) in _notices(app)
        assert "👍" not in screen_text(app), "a rating that was not saved must not show as saved"
        # sending: the text goes back into the composer, nothing is shown as sent
        await pilot.press("i")
        await send(pilot, "second question")
        await pilot.pause(0.3)
        assert app.composer.text == "second question"
        assert "second question" not in screen_text(app) and not app.replies.busy
        assert app.is_running
        # writable again: the old events are untouched and the next judgement is saved
        log_path.rmdir()
        log_path.with_suffix(".moved").rename(log_path)
        assert log_path.read_bytes() == saved
        await pilot.press("ctrl+up", "plus")
        await pilot.pause()
        assert [e["value"] for e in events(home, type_="rating")] == [1]
        assert "👍" in screen_text(app)


@pytest.mark.slow
async def test_a_reply_that_cannot_be_saved_is_reported_and_the_app_goes_on(home):
    words = " ".join(f"w{i}" for i in range(40))
    app = create_app(home, "demo", factory(FakeGenerator([words], delay=0.05)))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "hello")
        assert app.replies.busy
        log_path = app.session.log.path
        log_path.rename(log_path.with_suffix(".moved"))
        log_path.mkdir()
        await wait_idle(pilot, app)
        assert "Not saved" in _notices(app) and app.is_running
        assert "generating" not in screen_text(app) and "w39" not in screen_text(app)


@pytest.mark.slow
async def test_an_unwritable_home_is_named_as_the_home_folder_not_the_model(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home_dir = blocker / "home"

    def make(profile, home, progress):  # what loading the demo model does first
        ensure_dir(home.models_dir)
        return FakeGenerator()

    app = create_app(home_dir, "demo", make)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the error")
        await pilot.pause()
        title = str(app.screen.query_one(".title").render())
        assert "home folder" in title and "model" not in title, title
        assert str(home_dir) in title + str(app.screen.query_one("#error-message").render())
        await pilot.press("escape")
        warning = str(app.query_one("#warning").render())
        assert "home folder" in warning and str(home_dir) in warning
        await send(pilot, "hello")
        await pilot.pause(0.3)
        assert "Not saved" in _notices(app) and app.is_running
        assert app.composer.text == "hello"
