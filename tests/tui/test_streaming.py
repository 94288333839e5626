"""A long reply streams in chunks (older text frozen, only the newest chunk live) and ends as one
Markdown message: nothing is lost or split inside a code block on the way."""

from __future__ import annotations

import pytest
from textual.widgets import Markdown

from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, send, wait_for, wait_idle
from tui.app import create_app
from tui.markdown_text import faithful
from tui.widgets.message_view import FREEZE_CHARS


def _long_reply() -> str:
    parts = []
    for i in range(24):
        parts.append(f"Paragraph {i} " + " ".join(f"word{i}x{j}" for j in range(25)))
        if i % 6 == 5:  # a code block with blank lines inside, often across a freeze point
            parts.append(f"```python\ndef f{i}(x):\n\n    return x\n\n\nprint(f{i}(1))\n```")
    return "\n\n".join(parts)


@pytest.mark.slow
async def test_long_reply_streams_in_chunks_and_ends_as_one_markdown(home):
    reply = _long_reply()
    assert len(reply) > 3 * FREEZE_CHARS
    gen = FakeGenerator([reply], delay=0.002)
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "a long answer please")

        def feed():
            views = [v for v in app.chat.views() if v.stream_key is not None]
            return views[0]._feed if views and views[0]._feed is not None else None

        await wait_for(pilot, lambda: feed() is not None and len(feed().frozen_texts) >= 2, what="two frozen chunks")
        f = feed()
        shown = "".join(f.frozen_texts) + f.markdown.source
        assert faithful(reply).startswith(shown) and len(shown) > 2 * FREEZE_CHARS
        for chunk in f.frozen_texts:
            assert chunk.count("```") % 2 == 0, "a chunk was frozen inside a code block"
            assert chunk.endswith("\n\n")
        await wait_idle(pilot, app)
        assert [m["content"] for m in events(home, type_="message") if m["role"] == "assistant"] == [reply]
        last = app.chat.views()[-1]
        assert last.stream_key is None and last._feed is None
        assert [md.source for md in last.query(Markdown)] == [faithful(reply)]
