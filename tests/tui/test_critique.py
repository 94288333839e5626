"""Language feedback in the chat (fake model): critique a reply, a revision streams in as a sibling,
then accept it, edit it, ask for another or discard it; every step is in the log at once."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.edit import EditScreen
from tui.screens.prompt import PromptScreen


async def _critique(pilot, app, text: str) -> None:
    """Select the newest reply, press v, type ``text`` and wait for the revision to be saved."""
    await pilot.press("v")
    await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="critique prompt")
    await pilot.pause()
    app.screen.query_one("#answer").value = text
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, PromptScreen), what="prompt closed")
    await wait_idle(pilot, app)


async def _start(pilot, app) -> str:
    await wait_idle(pilot, app)
    await send(pilot, "Explain recursion")
    await wait_idle(pilot, app)
    await pilot.press("ctrl+up")
    return app.chat.selected_id


def _assistant(home) -> list[dict]:
    return [e for e in events(home, type_="message") if e["role"] == "assistant"]


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_critique_revision_then_accept(home):
    gen = FakeGenerator(["a very long rambling answer", "short answer"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        original = await _start(pilot, app)
        await _critique(pilot, app, "too long [really]")
        # the model saw the conversation, its reply, and the profile's revision prompt with the critique
        messages = gen.calls[-1]["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        assert messages[1]["content"] == "a very long rambling answer"
        assert "too long [really]" in messages[2]["content"]
        orig_ev, rev_ev = _assistant(home)
        assert rev_ev["parent_id"] == orig_ev["parent_id"] and orig_ev["id"] == original
        gen_record = rev_ev["generation"]
        assert gen_record["revision_of"] == original and gen_record["critique"] == "too long [really]"
        assert gen_record["revision_prompt"] == messages[2]["content"] and gen_record["model"] == "fake/model"
        text = screen_text(app)
        assert "short answer" in text and "‹2/2›" in text and "revised: too long [really]" in text
        assert app.chat.selected_id == rev_ev["id"]
        assert events(home, type_="critique") == []  # nothing judged yet

        await pilot.press("p")  # accept
        (choice,) = events(home, type_="choice")
        assert choice["chosen_id"] == rev_ev["id"] and choice["candidates"] == [rev_ev["id"], original]
        assert choice["sources"] == {rev_ev["id"]: "revision", original: "original"}
        (crit,) = events(home, type_="critique")
        assert (crit["v"], crit["message_id"], crit["revision_id"], crit["critique"], crit["outcome"]) == \
            (2, original, rev_ev["id"], "too long [really]", "accepted")
        await pilot.pause()
        assert "✓ accepted" in screen_text(app) and "★ picked" in screen_text(app)


@pytest.mark.slow
async def test_critique_revision_then_edit(home):
    app = create_app(home, "demo", factory(FakeGenerator(["wrong: 7 × 8 is 54", "7 × 8 is 58"])))
    async with app.run_test(size=(100, 30)) as pilot:
        original = await _start(pilot, app)
        await _critique(pilot, app, "7 × 8 is 56")
        revision = app.chat.selected_id
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen), what="editor")
        await pilot.pause()
        editor = app.screen.query_one("#editor")
        assert editor.text == "7 × 8 is 58"
        editor.text = "7 × 8 is 56"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: events(home, type_="critique"), what="critique event")
        (edit,) = events(home, type_="edit")
        assert (edit["message_id"], edit["content"]) == (revision, "7 × 8 is 56")
        (choice,) = events(home, type_="choice")
        assert choice["chosen_id"] == revision and original in choice["candidates"]
        (crit,) = events(home, type_="critique")
        assert (crit["outcome"], crit["critique"], crit["revision_id"]) == ("edited", "7 × 8 is 56", revision)
        await pilot.pause()
        text = screen_text(app)
        assert "7 × 8 is 56" in text and "✎ edited" in text and "revised: 7 × 8 is 56" in text


@pytest.mark.slow
async def test_another_revision_then_discard(home):
    gen = FakeGenerator(["Bonjour? No: hello", "still English", "Bonjour !"])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        original = await _start(pilot, app)
        await _critique(pilot, app, "answer in French")
        first = app.chat.selected_id
        await pilot.press("v")  # on the revision: another revision of the same original, critique offered
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="critique prompt")
        await pilot.pause()
        assert app.screen.query_one("#answer").value == "answer in French"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, PromptScreen), what="prompt closed")
        await wait_idle(pilot, app)
        assert gen.calls[-1]["messages"][1]["content"] == "Bonjour? No: hello"  # revises the original
        second = app.chat.selected_id
        revisions = [e for e in _assistant(home) if (e.get("generation") or {}).get("revision_of") == original]
        assert [r["id"] for r in revisions] == [first, second]
        assert "‹3/3›" in screen_text(app) and "Bonjour !" in screen_text(app)

        await pilot.press("d")
        (crit,) = events(home, type_="critique")
        assert (crit["outcome"], crit["revision_id"]) == ("discarded", second)
        assert events(home, type_="choice") == []
        await pilot.pause()
        assert app.chat.selected_id == original and "‹1/3›" in screen_text(app)


@pytest.mark.slow
async def test_discard_on_an_ordinary_reply_says_what_to_do(home):
    app = create_app(home, "demo", factory(FakeGenerator(["a reply"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await _start(pilot, app)
        await pilot.press("d")
        await pilot.pause()
        assert events(home, type_="critique") == []
        assert any("Only a revision" in str(n.message) for n in app._notifications)


def _night(home):
    """Two disliked replies with a comment, and a run folder holding the revisions finetune wrote for them."""
    import json

    from engine.safe_files import ensure_dir
    from tui.session import ChatSession

    s = ChatSession(home, "demo")
    originals = []
    for q, reply, critique in [("q1", "long answer one", "too long"), ("q2", "English", "in French")]:
        s.new_conversation()
        u = s.add_user(q)
        a = s.add_reply(u.id, reply, {})
        s.rate(a.id, -1, comment=critique)
        originals.append(a)
    data_dir = home.runs_dir("demo") / "20261130-020000-sft" / "data"
    ensure_dir(data_dir.parent.parent)
    ensure_dir(data_dir.parent)
    ensure_dir(data_dir)
    rows = [{"original_id": originals[0].id, "critique": "too long", "revision": [{"role": "assistant",
             "content": "short one"}], "source": "machine_revision"},
            {"original_id": originals[1].id, "critique": "in French", "revision": [{"role": "assistant",
             "content": "Anglais"}], "source": "machine_revision"}]
    (data_dir / "machine_revisions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return originals


@pytest.mark.slow
async def test_morning_review_approves_and_rejects_with_one_key_each(home):
    from engine.feedback import FeedbackLog, preference_rows
    from engine.train import revise
    from tui.screens.review import ReviewScreen

    first, second = _night(home)
    app = create_app(home, "demo", factory(FakeGenerator(["x"])))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f8")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen), what="review screen")
        await pilot.pause()
        body = str(app.screen.query_one("#review-body").render())
        assert "too long" in body and "long answer one" in body and "short one" in body and "1 of 2" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: len(events(home, type_="critique")) == 1, what="approval saved")
        await pilot.press("n")
        await wait_for(pilot, lambda: len(events(home, type_="critique")) == 2, what="rejection saved")
        await pilot.pause()
        assert "1 approved, 1 rejected" in str(app.screen.query_one("#review-body").render())
        await pilot.press("escape")
        crits = events(home, type_="critique")
        assert [(c["message_id"], c["outcome"]) for c in crits] == [(first.id, "accepted"), (second.id, "discarded")]
        (choice,) = events(home, type_="choice")
        assert choice["chosen_id"] == crits[0]["revision_id"] and first.id in choice["candidates"]
        state = FeedbackLog(home, "demo").replay()
        pairs = [r for r in preference_rows(state) if r.source == "revision"]  # approval = a human-accepted pair
        assert [(p.data["chosen"][0]["content"], p.data["rejected"][0]["content"]) for p in pairs] == \
            [("short one", "long answer one")]
        assert revise.pending(state) == [] and revise.review_items(home, "demo", *revise.log_ids(state)) == []
        await pilot.press("f8")  # nothing left: one sentence, no screen
        await pilot.pause()
        assert not isinstance(app.screen, ReviewScreen)
