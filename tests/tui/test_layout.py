"""What fits on screen: F1 shows keys as typed and where config.toml is; the footer's judging keys fit
80 columns; a 40x12 terminal hides the sidebar and the A/B prompt is readable in full."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import plain, screen_lines, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.compare import CompareScreen
from tui.screens.help import HelpScreen


@pytest.mark.slow
async def test_f1_shows_keys_as_typed_and_the_real_config_path(home):
    app = create_app(home, "demo", factory(FakeGenerator()))
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.pause()
        text = plain(app.screen.query_one("#help-keys"))
        assert "equals_sign" not in text and "left_square_bracket" not in text and "plus," not in text
        like = next(line for line in text.splitlines() if line.rstrip().endswith("chat.like"))
        assert like.split()[:2] == ["+,", "="], like
        assert str(home.config_path) in " ".join(text.split()).replace(" ", "") or str(home.config_path) in text
        assert "ctrl+q" in text


async def test_the_judging_keys_fit_the_footer_at_80x24(home):
    app = create_app(home, "demo", factory(FakeGenerator(["a reply"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "q")
        await wait_idle(pilot, app)
        await pilot.press("ctrl+up")
        await pilot.pause()
        footer = screen_lines(app).splitlines()[-1]
        assert "c Copy" in footer, footer


@pytest.mark.slow
async def test_a_40x12_terminal_hides_the_sidebar_and_shows_the_whole_ab_prompt(home):
    app = create_app(home, "demo", factory(FakeGenerator(["one", "A", "B"])))
    async with app.run_test(size=(40, 12)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "q")
        await wait_idle(pilot, app)
        assert not app.query_one("#sidebar").display
        assert app.chat.size.width >= 36
        await pilot.press("ctrl+up", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.ready, what="compare")
        await pilot.pause()
        shown = " ".join(" ".join(screen_lines(app).split()).split())
        assert "Press 1/a for A, 2/b for B, Esc to skip." in shown, screen_lines(app)
        await pilot.press("escape", "ctrl+b")  # the person can still show it
        await pilot.pause()
        assert app.query_one("#sidebar").display


async def test_a_40_column_status_bar_still_says_the_model_is_loading(home):
    import threading

    release = threading.Event()

    def slow(profile, home_, progress):
        progress("weights", 0.5)
        release.wait(20)
        return FakeGenerator()

    app = create_app(home, "demo", slow)
    async with app.run_test(size=(40, 12)) as pilot:
        await wait_for(pilot, lambda: "weights 50%" in screen_lines(app).splitlines()[-2], timeout=5,
                       what="the loading state on the status line")
        release.set()
        await wait_idle(pilot, app)
