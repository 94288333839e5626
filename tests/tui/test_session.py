"""The TUI's session view of the log: what it shows equals what a replay of the file gives."""

from __future__ import annotations

from dataclasses import asdict

from engine.feedback import FeedbackLog
from tui.session import ChatSession


def _snapshot(state):
    convs = {c.id: (c.title, [m.id for m in c.messages]) for c in state.conversations.values()}
    return convs, {mid: asdict(m) for mid, m in state.messages.items()}


def test_in_memory_state_matches_a_replay_of_the_file(home):
    s = ChatSession(home, "demo")
    u = s.add_user("What is 2+2?")
    a1 = s.add_reply(u.id, "5", {"seed": 1})
    a2 = s.add_reply(u.id, "4", {"seed": 2})
    assert [m.id for m in s.path()] == [u.id, a2.id]  # the newest sibling is shown
    assert s.toggle_rating(a1.id, -1) == -1
    s.rate(a2.id, 1, ["great"], "correct")
    assert s.toggle_rating(a2.id, 1) == 0  # same thumb again clears (and drops the reasons)
    s.edit(a1.id, "4, not 5")
    s.pick(a2.id)
    s.rename("Arithmetic")
    u2 = s.add_user("Thanks")
    assert u2.parent_id == a2.id
    s.new_conversation()
    s.add_user("another topic")

    replayed = FeedbackLog(home, "demo").replay()
    assert _snapshot(s.state) == _snapshot(replayed)
    assert [asdict(c) for c in s.state.choices] == [asdict(c) for c in replayed.choices]  # one rule (State.apply)
    assert [c.chosen_id for c in s.state.choices] == [a2.id]
    assert s.message(a1.id).edited == "4, not 5" and s.message(a2.id).picked


def test_shown_sibling_after_restart_is_the_picked_one(home):
    s = ChatSession(home, "demo")
    u = s.add_user("q")
    first = s.add_reply(u.id, "one", {})
    s.add_reply(u.id, "two", {})
    s.pick(first.id)
    s.step_sibling(first.id, 1)
    assert s.path()[-1].content == "two"  # browsing does not change what is picked
    again = ChatSession(home, "demo")
    assert [m.content for m in again.path()] == ["q", "one"]
    assert again.conversation_id == s.conversation_id


def test_best_of_n_candidates_show_the_top_score_first(home):
    s = ChatSession(home, "demo")
    u = s.add_user("q")
    for text, score in [("meh", 0.1), ("best", 0.9), ("ok", 0.5)]:
        s.add_reply(u.id, text, {"reward_score": score}, show=False)
    assert s.path()[-1].content == "best"


def test_after_restart_the_continued_branch_is_shown_never_a_discarded_revision(home):
    s = ChatSession(home, "demo")
    u = s.add_user("Name a fruit.")
    original = s.add_reply(u.id, "Apple, pear and plum.", {})
    rev = s.add_revision(original.id, "Apple.", {}, "name only one fruit", "Revise: {critique}")
    s.resolve_revision(rev.id, "discarded")
    assert s.path()[-1].id == original.id
    assert [m.id for m in ChatSession(home, "demo").path()] == [u.id, original.id]  # not the discarded one
    u2 = s.add_user("Say hello.")
    assert u2.parent_id == original.id
    s.add_reply(original.parent_id, "Banana.", {})  # a newer sibling nobody continued from
    again = ChatSession(home, "demo")
    assert [m.content for m in again.path()][:3] == ["Name a fruit.", "Apple, pear and plum.", "Say hello."]
