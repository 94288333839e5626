"""Issue 28 item 2: in the reason dialog (t) typing never changes the rating: Tab round to the 👍/👎
row and type, and the letters (and spaces) land in the comment; the rating keys still work there."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.reason import ReasonScreen


async def _open_reason(pilot, app) -> None:
    await wait_idle(pilot, app)
    await send(pilot, "question")
    await wait_idle(pilot, app)
    await pilot.press("ctrl+up", "minus", "t")  # 👎 the reply, then say why
    await wait_for(pilot, lambda: isinstance(app.screen, ReasonScreen), what="reason screen")
    await pilot.pause()


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_typing_after_tabbing_round_the_dialog_never_changes_the_rating(home):
    app = create_app(home, "demo", factory(FakeGenerator(["a reply"])))
    async with app.run_test(size=(100, 40)) as pilot:
        await _open_reason(pilot, app)
        await pilot.press("tab", "space", "tab", *"too vague", "ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ReasonScreen), what="reason saved")
        last = events(home, type_="rating")[-1]
        assert (last["value"], last["tags"], last["comment"]) == (-1, [], "too vague")


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_the_rating_row_changes_the_rating_with_its_own_keys(home):
    app = create_app(home, "demo", factory(FakeGenerator(["a reply"])))
    async with app.run_test(size=(100, 40)) as pilot:
        await _open_reason(pilot, app)
        await pilot.press("shift+tab")  # from the tags up to the rating row
        assert app.screen.focused.id == "value"
        await pilot.press("plus", "ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ReasonScreen), what="reason saved")
        assert events(home, type_="rating")[-1]["value"] == 1
