"""Issue 28 item 5: the screen shows every line break and character the model wrote (a haiku keeps its
three lines, ``\\[escaped\\]`` keeps its backslashes, a reply of ``+`` is not blank, an edit's line
break stays), while Markdown still draws code blocks and lists."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import screen_lines, send, wait_for, wait_idle
from tui.app import create_app
from tui.markdown_text import faithful
from tui.screens.edit import EditScreen

HAIKU = "An old silent pond\nA frog jumps into the pond\nSplash! Silence again."
REPLIES = [HAIKU, r"Use \[escaped\] brackets & <b>tags</b>", "+",
           "Steps:\n\n- first\n- second\n\n```python\nprint('a\\n')\n```"]


def _reply_lines(app) -> list[str]:
    """The lines of the newest reply as they are on screen (its header first)."""
    view = [v for v in app.chat.views() if v.shown.role == "assistant"][-1]
    region = view.region
    rows = screen_lines(app).splitlines()[region.y:region.bottom]
    return [s for row in rows if (s := row[region.x:region.right].strip().lstrip("█▌▐▎▊▍").strip())]


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_replies_show_every_line_break_and_character(home):
    app = create_app(home, "demo", factory(FakeGenerator(REPLIES)))
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_idle(pilot, app)
        seen = []
        for i in range(len(REPLIES)):
            await send(pilot, f"question {i}")
            await wait_idle(pilot, app)
            await pilot.pause(0.05)
            seen.append(_reply_lines(app)[1:])  # (the first line is the header)
        assert seen[0] == HAIKU.split("\n")
        assert seen[1] == [r"Use \[escaped\] brackets & <b>tags</b>"]
        assert seen[2] == ["+"]
        steps = seen[3]
        assert steps[0] == "Steps:" and steps[1].endswith("first") and steps[1] != "- first"  # a list
        assert "print('a\\n')" in " ".join(steps)
        # an edit with a line break keeps it
        await pilot.press("ctrl+up", "e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen), what="editor")
        app.screen.query_one("#editor").text = "literally.\nLine two"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, EditScreen), what="saved")
        await pilot.pause(0.05)
        assert _reply_lines(app)[1:] == ["literally.", "Line two"]


def test_streaming_text_only_grows_at_its_end():
    """While a reply streams the rewritten source grows by appending (no re-render per token)."""
    text = "A list:\n- one\n- two\nA haiku\nline two & \\[x\\]\n```\ncode\n```\ndone"
    prev = ""
    for n in range(1, len(text) + 1):
        now = faithful(text[:n], final=False)
        assert now.startswith(prev), (text[:n], prev, now)
        prev = now
