"""Issue 28 items 1 and 9: after F5 the person types into the composer (not judging shortcuts on the
message list); F5 opens on the profile in use, Enter there keeps it (no reload); a remote profile is
not called "on disk"."""

from __future__ import annotations

import pytest

from tests.conftest import add_user_profile
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.choose import ChooseScreen


async def _open_f5(pilot, app) -> None:
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(app.screen, ChooseScreen), what="F5")
    await pilot.pause()


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_typing_after_a_profile_switch_goes_to_the_composer(home):
    add_user_profile(home, "other")
    loads = []

    def make(profile, home_, progress):
        loads.append(profile.name)
        return FakeGenerator(["hi back"])

    app = create_app(home, "demo", make)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "first")
        await wait_idle(pilot, app)
        await pilot.press("ctrl+up")  # judging: the message list has focus
        await _open_f5(pilot, app)
        ids = [o.id for o in app.screen.query_one("#choices").options]
        await pilot.press(*["down"] * ((ids.index("other") - ids.index("demo")) % len(ids)), "enter")
        await wait_for(pilot, lambda: app.profile.name == "other" and app.model.lm is not None, what="the switch")
        await pilot.pause()
        await pilot.press(*"hello", "enter")
        await wait_idle(pilot, app)
        assert [e["content"] for e in events(home, "other", "message")] == ["hello", "hi back"]
        assert not any("No message selected" in n.message for n in app._notifications)


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_f5_enter_on_the_profile_in_use_reloads_nothing(home):
    loads = []

    def make(profile, home_, progress):
        loads.append(profile.name)
        return FakeGenerator()

    app = create_app(home, "demo", make)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "keep me")
        await wait_idle(pilot, app)
        await _open_f5(pilot, app)
        await pilot.press("enter")  # the list opens on the profile in use
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ChooseScreen)
        assert loads == ["demo"] and app.model.lm is not None
        assert any("Already chatting with profile demo" in n.message for n in app._notifications)
        assert app.focused is app.composer


async def test_f5_does_not_call_a_remote_profile_on_disk(home):
    add_user_profile(home, "gpu-box", '[model]\nid = "org/big-model"\nbackend = "openai"\n'
                                      'base_url = "http://127.0.0.1:9/v1"\n')
    app = create_app(home, "demo", factory(FakeGenerator()))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await _open_f5(pilot, app)
        labels = {o.id: str(o.prompt) for o in app.screen.query_one("#choices").options}
        assert "on disk" not in labels["gpu-box"] and "remote: http://127.0.0.1:9/v1" in labels["gpu-box"]
        assert "in use" in labels["demo"]
