"""Language feedback becomes training rows: an accepted revision is an SFT row and a pair revision ≻ original,
marked with their source; a 👎 with a comment is a critique still to revise."""

from __future__ import annotations

from engine.feedback import FeedbackLog, preference_rows, sft_rows
from engine.feedback.language import language_feedback
from engine.train import data
from tui.session import ChatSession

TEMPLATE = "Feedback: {critique}. Rewrite."


def _log(home):
    """One accepted revision, one edited revision, one discarded one, and a 👎 with a comment."""
    s = ChatSession(home, "demo")
    u = s.add_user("Explain recursion")
    long = s.add_reply(u.id, "A very long rambling answer.", {"system_prompt": "Be kind."})
    short = s.add_revision(long.id, "A function that calls itself.", {"system_prompt": "Be kind."}, "too long",
                           TEMPLATE)
    s.resolve_revision(short.id, "accepted")
    u2 = s.add_user("7 × 8?")
    wrong = s.add_reply(u2.id, "54", {})
    fixed = s.add_revision(wrong.id, "58", {}, "7 × 8 is 56", TEMPLATE)
    s.resolve_revision(fixed.id, "edited", "56")
    u3 = s.add_user("Say hi in French")
    hi = s.add_reply(u3.id, "Hello", {})
    nope = s.add_revision(hi.id, "Hi there", {}, "in French", TEMPLATE)
    s.resolve_revision(nope.id, "discarded")
    s.rate(hi.id, -1, comment="answer in French")
    return s, (long, short, wrong, fixed, hi, nope)


def test_accepted_and_edited_revisions_are_sft_rows_and_pairs_marked_revision(home):
    _, (long, short, wrong, fixed, _hi, nope) = _log(home)
    state = FeedbackLog(home, "demo").replay()
    sft = {r.message_ids: r for r in sft_rows(state)}
    assert sft[(short.id,)].source == "revision"
    assert sft[(short.id,)].data["messages"] == [
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "Explain recursion"},
        {"role": "assistant", "content": "A function that calls itself."}]
    assert sft[(fixed.id,)].source == "revision" and sft[(fixed.id,)].data["messages"][-1]["content"] == "56"
    assert (nope.id,) not in sft and (long.id,) not in sft  # a discarded revision teaches nothing
    pairs = {r.message_ids: r for r in preference_rows(state)}
    rev_pair = pairs[(short.id, long.id)]
    assert rev_pair.source == "revision"
    assert (rev_pair.data["chosen"][0]["content"], rev_pair.data["rejected"][0]["content"]) == \
        ("A function that calls itself.", "A very long rambling answer.")
    edited_pair = pairs[(fixed.id, wrong.id)]  # the edit wins over the original, the critique is kept
    assert (edited_pair.source, edited_pair.data["chosen"][0]["content"], edited_pair.data["rejected"][0]["content"]) \
        == ("revision", "56", "54")
    counts = data.collect(home, "demo").rows.counts()
    assert counts["revision_sft"] == 2 and counts["revision_pref"] == 2


def test_language_feedback_lists_every_critique_and_the_unrevised_dislike(home):
    _, (long, short, wrong, fixed, hi, nope) = _log(home)
    items = language_feedback(FeedbackLog(home, "demo").replay())
    got = [(i.original.id, i.critique, i.revision.id if i.revision else None, i.outcome) for i in items]
    assert got == [(long.id, "too long", short.id, "accepted"), (wrong.id, "7 × 8 is 56", fixed.id, "edited"),
                   (hi.id, "in French", nope.id, "discarded"), (hi.id, "answer in French", None, None)]
    revision = FeedbackLog(home, "demo").replay().messages[short.id]
    assert revision.generation["revision_prompt"] == "Feedback: too long. Rewrite."
