"""Issue 28 item 15: conversations a program held through ``engine serve`` are marked in the sidebar, and
the app opens on the person's own latest conversation, not on the newest served one."""

from __future__ import annotations

from engine.feedback import FeedbackLog
from engine.feedback.events import new_id
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import screen_lines, screen_text, wait_idle
from tui.app import create_app


def _served(log: FeedbackLog, question: str, answer: str) -> None:
    """What engine serve's recorder writes for one request (source "serve")."""
    conv, user, reply = new_id(), new_id(), new_id()
    log.append_many([
        {"type": "message", "id": user, "conversation_id": conv, "parent_id": None, "role": "user",
         "content": question, "source": "serve"},
        {"type": "message", "id": reply, "conversation_id": conv, "parent_id": user, "role": "assistant",
         "content": answer, "generation": {"model": "m"}, "source": "serve"},
    ])


async def test_the_app_opens_on_the_persons_own_conversation_and_marks_served_ones(home):
    log = FeedbackLog(home, "demo")
    mine = new_id()
    user = log.add_message(mine, None, "user", "my own question")
    log.add_message(mine, user["id"], "assistant", "my answer", generation={"model": "m"})
    _served(log, "a script asked this", "served answer")
    app = create_app(home, "demo", factory(FakeGenerator()))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        chat = screen_text(app)
        assert "my own question" in chat and "a script asked this" not in chat
        sidebar = [str(o.prompt) for o in app.query_one("#sidebar").options]
        assert any("api" in s and "a script asked" in s for s in sidebar)
        assert any("my own question" in s and "api" not in s for s in sidebar)
        assert "api a script asked" in screen_lines(app)
