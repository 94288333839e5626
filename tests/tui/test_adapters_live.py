"""The adapter in use: a promotion made while the app runs is noticed and offered; the status bar, F3
and F4 agree on what the model replies with; an F4 choice lasts past a restart."""

from __future__ import annotations

import pytest

from engine.adapters import promoted_run, set_promoted
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, fake_finished_run, plain, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.choose import ChooseScreen
from tui.screens.loop import LoopScreen
from tui.widgets.status_bar import StatusBar

OLD, NEW = "20260101-000000-sft", "20260102-000000-dpo"


def _run(home, run_id, promoted=True):
    fake_finished_run(home, run_id, promoted)


def _status(app) -> str:
    return str(app.query_one(StatusBar).render())


async def _in_use_everywhere(pilot, app, expected: str) -> None:
    """Status bar, F3 and F4 all name ``expected`` (a run id, or 'base') as the adapter in use."""
    assert f"adapter: {expected}" in _status(app)
    await pilot.press("f3")
    await wait_for(pilot, lambda: isinstance(app.screen, LoopScreen) and app.screen.loaded, what="F3")
    await pilot.pause()
    adapters = plain(app.screen.query_one("#adapters"))
    label = "the base model" if expected == "base" else expected
    assert f"replying with: {label}" in adapters, adapters
    if expected != "base":
        assert f"{expected} sft" in adapters and adapters.count("● in use") == 1
        line = next(line for line in adapters.splitlines() if "● in use" in line)
        assert expected in line
    await pilot.press("escape")
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(app.screen, ChooseScreen), what="F4")
    await pilot.pause()
    options = app.screen.query_one("#choices")
    labels = {o.id: str(o.prompt) for o in options.options}
    key = "__base__" if expected == "base" else expected
    assert "● in use" in labels[key] and sum("● in use" in v for v in labels.values()) == 1, labels
    assert options.options[options.highlighted].id == key
    await pilot.press("escape")
    await pilot.pause()


@pytest.mark.slow
async def test_a_promotion_while_the_app_runs_is_offered_and_f6_switches_to_it(home):
    _run(home, OLD)
    set_promoted(home, "demo", OLD)
    gen = FakeGenerator(["x"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        assert gen.adapter == OLD
        _run(home, NEW)
        set_promoted(home, "demo", NEW, reason="gate")  # what `engine finetune` / `engine adapters use` do
        await wait_for(pilot, lambda: any(NEW in n.message and "F6" in n.message for n in app._notifications),
                       timeout=5, what="the promotion notice")
        assert gen.adapter == OLD, "the model must not change under the person without asking"
        await pilot.press("f6")
        await wait_for(pilot, lambda: gen.adapter == NEW, timeout=5, what="the switch")
        await pilot.pause()
        await _in_use_everywhere(pilot, app, NEW)
        await send(pilot, "hi")
        await wait_idle(pilot, app)
        assert events(home, type_="message")[-1]["generation"]["adapter"] == NEW


@pytest.mark.slow
async def test_f4_labels_what_the_gate_said_and_the_choice_lasts_past_a_restart(home):
    _run(home, OLD)
    _run(home, NEW, promoted=False)  # the gate refused it
    set_promoted(home, "demo", OLD)
    gen = FakeGenerator(["x"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await _in_use_everywhere(pilot, app, OLD)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ChooseScreen), what="F4")
        await pilot.pause()
        labels = {o.id: str(o.prompt) for o in app.screen.query_one("#choices").options}
        assert "refused by the gate" in labels[NEW] and "promoted" not in labels[NEW].replace(NEW, ""), labels
        assert "passed the gate" in labels[OLD]
        assert "kept for the next start" in str(app.screen.query_one("Static").render())
        ids = [o.id for o in app.screen.query_one("#choices").options]
        app.screen.query_one("#choices").highlighted = ids.index(NEW)
        await pilot.press("enter")
        await wait_for(pilot, lambda: gen.adapter == NEW, timeout=5, what="the switch")
        app.model.poll_promoted()  # as the timer does: our own choice is not offered back
        await pilot.pause(0.3)
        assert not any("F6" in n.message for n in app._notifications)
        await _in_use_everywhere(pilot, app, NEW)
        assert promoted_run(home, "demo") == NEW
    gen2 = FakeGenerator(["x"])
    app2 = create_app(home, "demo", factory(gen2))
    async with app2.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app2)
        assert gen2.adapter == NEW and f"adapter: {NEW}" in _status(app2)
