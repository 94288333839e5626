"""The chat app with a ``backend = "openai"`` profile, chatting through ``engine serve`` on loopback: the
remote path end to end (the app's own log gets the reply with the server named, and judgements)."""

from __future__ import annotations

import pytest

from engine.home import Home
from tests.conftest import add_user_profile
from tests.tui.helpers import events, screen_text, send, wait_idle
from tui.app import create_app

pytestmark = pytest.mark.slow


@pytest.fixture
def client_home(tmp_path, monkeypatch, server) -> Home:
    home = Home.resolve(tmp_path / "client-home")
    monkeypatch.setenv("TUNELOOP_HOME", str(home.root))
    text = (
        f'[model]\nid = "builtin:demo"\nbackend = "openai"\nbase_url = "{server.url}"\nremote_model = "base"\n'
        "[generation]\ndo_sample = false\nmax_new_tokens = 12\n"
    )
    return add_user_profile(home, "remote", text)


async def test_the_chat_app_replies_through_the_server(client_home, server):
    app = create_app(client_home, "remote")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app, timeout=120)
        await send(pilot, "Tell me about Python.")
        await wait_idle(pilot, app)
        user, reply = events(client_home, "remote", type_="message")
        gen = reply["generation"]
        assert gen["server"] == server.url and gen["server_model"] == "base" and gen["completion_tokens"] > 0
        assert reply["content"].strip() and reply["content"] in screen_text(app)
        await pilot.press("ctrl+up", "plus")
        await pilot.pause()
    (rating,) = events(client_home, "remote", type_="rating")
    assert rating["message_id"] == reply["id"] and rating["value"] == 1
    # the server logged the same exchange in its own profile's log
    served = [e for e in server.state.recorder.log.read().events if e.get("role") == "assistant"]
    assert served[-1]["content"] == reply["content"]
