"""The header line of a message says everything the log holds about it (pure function, no app)."""

from __future__ import annotations

from engine.feedback.replay import Message
from tui.widgets.message_view import body_text, header_text


def _msg(**kw):
    base = dict(id="m", conversation_id="c", parent_id="u", role="assistant", content="orig", ts=0.0,
                generation={"adapter": None})
    base.update(kw)
    return Message(**base)


def test_header_shows_judgements_siblings_and_best_of_score():
    m = _msg(rating=-1, tags=["wrong"], comment="nope", edited="fixed", picked=True,
             generation={"adapter": "20260101-000000-sft", "reward_score": 0.8312, "stopped": True})
    h = header_text(m, 1, 3)
    for part in ["‹2/3›", "👎", "wrong", "nope", "✎ edited", "★ picked", "⏹ stopped", "score 0.83",
                 "20260101-000000-sft"]:
        assert part in h
    assert body_text(m) == "fixed" and body_text(m, show_original=True) == "orig"
    assert "✎ original" in header_text(m, 1, 3, show_original=True)


def test_plain_reply_has_no_badges():
    h = header_text(_msg(), 0, 1)
    assert h == "[b]Assistant[/b]"
