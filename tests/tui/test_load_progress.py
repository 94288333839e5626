"""Issue 28 item 8: a loading step that reports no progress of its own (building the model from a GGUF
file: tens of seconds on a CPU) shows its name and how long it has run, not a frozen "converting 10%"."""

from __future__ import annotations

import threading

import tui.model
from tests.tui.fakes import FakeGenerator
from tests.tui.helpers import wait_for, wait_idle
from tui.app import create_app


async def test_a_long_loading_step_shows_its_name_and_elapsed_time(home, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(tui.model, "_now", lambda: clock[0])
    monkeypatch.setattr(tui.model, "STAGE_TICK", 0.02)
    release = threading.Event()

    def converting(profile, home_, progress):
        progress("converting: building the model", 0.1)
        release.wait(20)
        return FakeGenerator()

    app = create_app(home, "demo", converting)
    async with app.run_test(size=(140, 30)) as pilot:
        def status() -> str:
            return str(app.status.render())

        await wait_for(pilot, lambda: "building the model 10%" in status(), what="the step")
        clock[0] += 37
        await wait_for(pilot, lambda: "building the model 10% · 37 s" in status(), timeout=3, what="the elapsed time")
        release.set()
        await wait_idle(pilot, app)
        assert "building" not in status()
