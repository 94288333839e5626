"""Issue 28 items 6 and 7: ``b`` without a reward model: the reply's header says what the notice says
(replying once), not "preparing the reward model" for the whole reply; the status bar's tok/s is the
decoding speed, the wait for the first token shown apart."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import send, wait_for, wait_idle
from tui.app import create_app


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_best_of_without_a_reward_model_says_replying_once_in_the_header_too(home):
    # long enough (about 2 s) that the header is still the streaming one when a loaded machine looks at it
    gen = FakeGenerator(["first", "one two three four " + " ".join(["more"] * 40)], delay=0.05)
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "hi")
        await wait_idle(pilot, app)
        await pilot.press("ctrl+up", "b")

        def header() -> str:
            views = [v for v in app.chat.views() if v.stream_key is not None]
            return views[0].shown.header if views else ""

        await wait_for(pilot, lambda: len(gen.streams) == 2 and "four" in "".join(
            v.query_one("Markdown").source for v in app.chat.views() if v.stream_key), what="the reply streaming")
        assert "replying once" in header() and "preparing the reward model" not in header()
        assert any("replying once" in n.message for n in app._notifications)
        await wait_idle(pilot, app)


class SlowStart(FakeGenerator):
    """8 tokens: 4 s to the first (a loaded CPU's prompt processing), then 1.4 s for the other 7."""

    def stream(self, messages, params=None, system_prompt=None):
        s = super().stream(messages, params, system_prompt)
        s._base = {**s._base, "ttft_s": 4.0, "elapsed_s": 5.4, "tokens_per_s": 1.481}
        return s


async def test_status_bar_speed_is_decoding_speed_and_first_token_apart(home):
    app = create_app(home, "demo", factory(SlowStart(["one two three four five six seven eight"])))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "hi")
        await wait_idle(pilot, app)
        status = str(app.status.render())
        assert "5.0 tok/s" in status and "first token 4.00 s" in status and "1.5 tok/s" not in status
