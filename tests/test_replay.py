"""Replaying the log into conversation trees: latest judgement wins, siblings, picks, titles, orphans."""

from __future__ import annotations

import json

import pytest

from engine.feedback import FeedbackLog, InvalidEvent


def chat(log: FeedbackLog, conv: str = "c1", question: str = "What is the capital of France?"):
    """A user message with two assistant siblings; returns (user, reply_a, reply_b) events."""
    u = log.add_message(conv, None, "user", question)
    a = log.add_message(conv, u["id"], "assistant", "Paris.", {"system_prompt": "Be brief."})
    b = log.add_message(conv, u["id"], "assistant", "Lyon.", {"system_prompt": "Be brief."})
    return u, a, b


def test_latest_rating_wins_and_zero_clears(home):
    log = FeedbackLog(home, "demo")
    _, a, b = chat(log)
    log.rate(a["id"], -1, tags=["wrong"], comment="no")
    log.rate(a["id"], 1, tags=["accurate"], comment="yes")
    log.rate(b["id"], -1, tags=["wrong"], comment="it is Paris")
    log.rate(b["id"], 0)
    state = log.replay()
    ma, mb = state.messages[a["id"]], state.messages[b["id"]]
    assert (ma.rating, ma.tags, ma.comment) == (1, ["accurate"], "yes")
    assert (mb.rating, mb.tags, mb.comment) == (0, [], None)


def test_latest_edit_wins_and_original_is_kept(home):
    log = FeedbackLog(home, "demo")
    _, a, b = chat(log)
    log.edit(b["id"], "Paris, not Lyon.")
    log.edit(b["id"], "Paris.")
    log.edit(a["id"], "Paris is the capital.")
    log.edit(a["id"], "Paris.")  # edited back to the original: no edit any more
    state = log.replay()
    mb = state.messages[b["id"]]
    assert (mb.content, mb.edited, mb.final_text) == ("Lyon.", "Paris.", "Paris.")
    ma = state.messages[a["id"]]
    assert (ma.edited, ma.final_text) == (None, "Paris.")


def test_siblings_paths_and_generation(home):
    log = FeedbackLog(home, "demo")
    u, a, b = chat(log)
    u2 = log.add_message("c1", a["id"], "user", "And of Spain?")
    c = log.add_message("c1", u2["id"], "assistant", "Madrid.", {"system_prompt": "Be brief."})
    conv = log.replay().conversations["c1"]
    assert [m.id for m in conv.children(None)] == [u["id"]]
    assert [m.content for m in conv.children(u["id"])] == ["Paris.", "Lyon."]
    assert [m.content for m in conv.path_to(c["id"])] == [
        "What is the capital of France?",
        "Paris.",
        "And of Spain?",
        "Madrid.",
    ]
    assert conv.path_to("nope") == []
    assert [m.id for m in conv.leaves()] == [b["id"], c["id"]]
    assert conv.messages[1].system_prompt == "Be brief." and conv.messages[0].generation is None


def test_latest_choice_marks_the_picked_sibling(home):
    log = FeedbackLog(home, "demo")
    u, a, b = chat(log)
    log.choose(b["id"], [a["id"], b["id"]], "regenerate")
    c = log.add_message("c1", u["id"], "assistant", "Marseille.")
    state = log.replay()
    assert [m.picked for m in state.conversations["c1"].children(u["id"])] == [False, True, False]
    log.choose(a["id"], [a["id"], b["id"], c["id"]], "compare", sources={a["id"]: "run-1", b["id"]: "base"})
    state = log.replay()
    assert [m.picked for m in state.conversations["c1"].children(u["id"])] == [True, False, False]
    assert len(state.choices) == 1
    choice = state.choices[0]
    assert (choice.chosen_id, choice.kind, choice.sources[a["id"]]) == (a["id"], "compare", "run-1")


def test_choice_among_non_siblings_is_a_problem(home):
    log = FeedbackLog(home, "demo")
    _, a, _ = chat(log, "c1")
    _, x, _ = chat(log, "c2")
    log.choose(a["id"], [a["id"], x["id"]], "compare")
    state = log.replay()
    assert not state.messages[a["id"]].picked
    assert any("siblings" in p.reason for p in state.problems)


def test_titles_default_and_rename(home):
    log = FeedbackLog(home, "demo")
    long_q = "Explain in detail how the French Revolution changed European politics forever"
    chat(log, "c1", long_q)
    chat(log, "c2", "Hi")
    state = log.replay()
    title = state.conversations["c1"].title
    assert title.startswith("Explain in detail how") and title.endswith("…") and len(title) <= 48
    assert state.conversations["c2"].title == "Hi"
    log.rename("c1", "Revolution")
    log.rename("c1", "French Revolution")
    assert log.replay().conversations["c1"].title == "French Revolution"
    log.rename("c1", "  ")  # a blank rename goes back to the default
    assert log.replay().conversations["c1"].title == title


def test_conversations_ordered_by_creation(home):
    log = FeedbackLog(home, "demo")
    for conv in ("zeta", "alpha", "mid"):
        chat(log, conv)
    log.add_message("zeta", None, "user", "another root in the first conversation")
    assert list(log.replay().conversations) == ["zeta", "alpha", "mid"]


def test_unknown_references_are_problems_not_crashes(home):
    log = FeedbackLog(home, "demo")
    u, a, _ = chat(log)
    orphan = log.add_message("c1", "no-such-parent", "assistant", "lost")
    child = log.add_message("c1", orphan["id"], "user", "child of the lost one")
    cross = log.add_message("c2", a["id"], "user", "parent lives in another conversation")
    log.rate("ghost", 1)
    log.edit("ghost", "x")
    log.rename("no-such-conversation", "t")
    state = log.replay()
    assert orphan["id"] not in state.messages and child["id"] not in state.messages
    assert cross["id"] not in state.messages and "c2" not in state.conversations
    assert len(state.messages) == 3
    reasons = " ".join(p.reason for p in state.problems)
    assert "no-such-parent" in reasons and "ghost" in reasons and "no-such-conversation" in reasons
    assert len(state.problems) == 6


def test_parent_in_a_later_file_still_resolves(home):
    log = FeedbackLog(home, "demo")
    u = log.add_message("c1", None, "user", "hello")
    reply = {"v": 1, "id": "r" * 32, "ts": 1.0, "type": "message", "conversation_id": "c1",
             "parent_id": u["id"], "role": "assistant", "content": "hi"}
    (log.dir / "0-first.jsonl").write_text(json.dumps(reply) + "\n")  # sorts before events.jsonl
    state = log.replay()
    assert state.problems == [] and state.messages["r" * 32].parent_id == u["id"]


def test_future_version_events_are_ignored_by_replay(home):
    log = FeedbackLog(home, "demo")
    _, a, _ = chat(log)
    log.rate(a["id"], 1)
    with open(log.path, "a") as f:
        f.write(json.dumps({"v": 3, "id": "f" * 32, "ts": 9e9, "type": "rating", "message_id": a["id"], "value": -1}))
        f.write("\n")
    state = log.replay()
    assert state.messages[a["id"]].rating == 1
    assert state.future_versions == 1 and state.problems == []


# ---- property: any schema-valid event sequence replays without crashing ------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.feedback.events import complete, validate  # noqa: E402
from engine.feedback.replay import replay  # noqa: E402
from engine.feedback.rows import preference_rows, sft_rows, unpaired_rows  # noqa: E402

IDS = st.sampled_from(["a", "b", "c", "d", "e"])
CONVS = st.sampled_from(["c1", "c2"])
EVENT = st.one_of(
    st.fixed_dictionaries({"type": st.just("message"), "id": IDS, "conversation_id": CONVS,
                           "parent_id": st.one_of(st.none(), IDS), "role": st.sampled_from(["user", "assistant"]),
                           "content": st.text(max_size=3)}),
    st.fixed_dictionaries({"type": st.just("rating"), "message_id": IDS, "value": st.sampled_from([-1, 0, 1])}),
    st.fixed_dictionaries({"type": st.just("edit"), "message_id": IDS, "content": st.text(max_size=3)}),
    st.builds(lambda ids, kind: {"type": "choice", "chosen_id": ids[0], "candidates": ids, "kind": kind},
              st.lists(IDS, min_size=1, max_size=3, unique=True), st.sampled_from(["regenerate", "compare"])),
    st.fixed_dictionaries({"type": st.just("title"), "conversation_id": CONVS, "title": st.text(max_size=3)}),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENT, max_size=25))
def test_any_valid_event_sequence_replays(events):
    state = replay([validate(complete(e)) for e in events])  # duplicate ids, cycles, dangling references
    for conv in state.conversations.values():
        for m in conv.messages:
            assert conv.path_to(m.id)[-1] is m and conv.path_to(m.id)[0].parent_id is None
        assert isinstance(conv.title, str)
    assert sum(m.picked for m in state.messages.values()) <= len(state.choices)
    sft_rows(state), preference_rows(state), unpaired_rows(state)


# ---- language feedback (schema v2 critique events) ------------------------------------------------------------


def _critiqued(log):
    chat(log)
    orig = log.read().events[1]
    rev = log.add_message(orig["conversation_id"], orig["parent_id"], "assistant", "shorter answer",
                          generation={"revision_of": orig["id"], "critique": "too long", "revision_prompt": "P"})
    log.choose(rev["id"], [rev["id"], orig["id"]], "regenerate", sources={rev["id"]: "revision", orig["id"]: "original"})
    log.critique(orig["id"], "too long", rev["id"], "accepted")
    return orig, rev


def test_critique_events_are_v2_and_replay_marks_the_revision(home):
    log = FeedbackLog(home, "demo")
    orig, rev = _critiqued(log)
    versions = {(e["type"], e["v"]) for e in log.read().events}
    assert versions == {("message", 1), ("choice", 1), ("critique", 2)}  # only the new type is v2
    state = log.replay()
    r = state.messages[rev["id"]]
    assert (r.revision_of, r.critique, r.outcome, r.picked) == (orig["id"], "too long", "accepted", True)
    assert state.messages[orig["id"]].revision_of is None and state.problems == []


def test_an_old_reader_skips_critiques_and_replays_the_rest(home, monkeypatch):
    """A version-1 tuneloop keeps v2 events as 'from a newer tuneloop' and replays everything else."""
    import importlib

    ev_mod = importlib.import_module("engine.feedback.events")
    replay_mod = importlib.import_module("engine.feedback.replay")

    log = FeedbackLog(home, "demo")
    _, rev = _critiqued(log)
    monkeypatch.setattr(ev_mod, "SCHEMA_VERSION", 1)
    monkeypatch.setattr(replay_mod, "SCHEMA_VERSION", 1)
    log = FeedbackLog(home, "demo")
    result = log.read()
    assert result.future_versions == 1 and result.problems == []
    state = log.replay()
    assert state.messages[rev["id"]].picked and state.messages[rev["id"]].outcome is None
    assert state.problems == []


def test_a_critique_naming_an_unknown_revision_is_a_problem_not_a_crash(home):
    log = FeedbackLog(home, "demo")
    _, a, _ = chat(log)
    log.critique(a["id"], "wrong", "nope", "discarded")
    state = log.replay()
    assert state.replay_problems == 1 and "nope" in state.problems[-1].reason
    with pytest.raises(InvalidEvent, match="'outcome'"):
        log.critique(a["id"], "wrong", None, "maybe")
