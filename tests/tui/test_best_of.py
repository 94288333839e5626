"""Best-of-n in the chat with the REAL demo model and a REAL (tiny) reward run: n sampled replies become
sibling assistant messages scored by the reward model, its favourite shown first; a pick among them
is a ``choice`` of kind ``best_of``. Without a reward model the app replies once and says why."""

from __future__ import annotations

import pytest

from engine.home import Home
from engine.profiles import BUILTIN_DIR
from engine.safe_files import ensure_dir
from tests.conftest import install_demo_model
from tests.reward.conftest import run_engine
from tests.reward.synthetic import write_picks
from tests.tui.fakes import FakeGenerator, factory
from tests.tui.helpers import events, plain, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.help import HelpScreen


def best_of_profile(home: Home, n: int = 3) -> None:
    """A user profile ``demo`` (overrides the built-in) with ``best_of = n`` and short replies; its reward runs train
    on the person's pairs only (2 steps on 6 pairs decide nothing about non-answers, and the extra pairs change which
    2 held-out pairs a 2-step model happens to rank right: engine/reward/non_answers.py)."""
    text = (BUILTIN_DIR / "demo.toml").read_text()
    text = text.replace("max_new_tokens = 64", f"max_new_tokens = 12\nbest_of = {n}")
    text = text.replace("[reward]\n", "[reward]\nnon_answer_share = 0.0\n")
    assert f"best_of = {n}" in text and "non_answer_share = 0.0" in text
    ensure_dir(home.profiles_dir)
    (home.profiles_dir / "demo.toml").write_text(text)


@pytest.fixture(scope="module")
def rewarded_home(tmp_path_factory, demo_model_dir) -> Home:
    """A demo home with a finished reward run (8 answer-vs-refusal picks, 2 steps: cheap, but real)."""
    from engine.feedback import FeedbackLog

    home = Home.resolve(tmp_path_factory.mktemp("best-of") / "home")
    install_demo_model(home, demo_model_dir)
    write_picks(FeedbackLog(home, "demo"), 8, seed=3)
    best_of_profile(home, 3)
    res = run_engine("reward", "--profile", "demo", "--home", str(home.root), "--max-steps", "2")
    assert res.code == 0 and "\n  used" in res.out, res.out + res.err  # the reward model best-of-n will use
    return home


def replies_in(home: Home, conversation_id: str) -> list[dict]:
    return [e for e in events(home, type_="message")
            if e["conversation_id"] == conversation_id and e["role"] == "assistant"]


@pytest.mark.slow
async def test_best_of_three_with_the_demo_model_shows_the_favourite_first_and_records_a_pick(rewarded_home):
    home = rewarded_home
    (reward_run,) = [p.name for p in home.runs_dir("demo").iterdir() if p.name.endswith("-reward")]
    app = create_app(home, "demo")
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_idle(pilot, app, timeout=120)
        await pilot.press("ctrl+n")
        await send(pilot, "What is 3 + 4?")
        await wait_idle(pilot, app, timeout=120)
        conv = app.session.conversation_id
        (user,) = [e for e in events(home, type_="message") if e["conversation_id"] == conv and e["role"] == "user"]
        replies = replies_in(home, conv)
        assert len(replies) == 3 and all(r["parent_id"] == user["id"] for r in replies)
        gens = [r["generation"] for r in replies]
        assert all(isinstance(g["reward_score"], float) and g["reward_run"] == reward_run for g in gens)
        assert all(g["best_of"] == 3 and g["params"]["do_sample"] is True and g["profile"] == "demo" for g in gens)
        assert len({g["seed"] for g in gens}) == 3  # three different samples, not one reply thrice
        scores = [g["reward_score"] for g in gens]
        best = max(replies, key=lambda r: r["generation"]["reward_score"])

        shown = screen_text(app)  # the favourite is on screen, first of its siblings, with its score
        assert "‹1/3›" in shown and f"score {best['generation']['reward_score']:.2f}" in shown
        assert best["content"] in shown and app.chat.selected_id == best["id"]
        assert scores == sorted(scores, reverse=True)  # written best first, so 1/3 is the favourite

        await pilot.press("ctrl+up", "right")  # browse to the second candidate and pick it
        second = replies[1]
        shown = screen_text(app)
        assert "‹2/3›" in shown and f"score {second['generation']['reward_score']:.2f}" in shown
        await pilot.press("p")
        await pilot.pause()
        assert "★ picked" in screen_text(app)
        (choice,) = events(home, type_="choice")[-1:]
        assert choice["chosen_id"] == second["id"] and choice["kind"] == "best_of"
        assert sorted(choice["candidates"]) == sorted(r["id"] for r in replies)

        await pilot.press("b")  # the best-of key: three more scored siblings, the new favourite shown
        await wait_idle(pilot, app, timeout=120)
        new = replies_in(home, conv)[3:]
        assert len(new) == 3 and all(r["generation"]["best_of"] == 3 for r in new)
        favourite = max(new, key=lambda r: r["generation"]["reward_score"])
        assert favourite["id"] == new[0]["id"] and app.chat.selected_id == favourite["id"]
        shown = screen_text(app)
        assert "‹4/6›" in shown and f"score {favourite['generation']['reward_score']:.2f}" in shown


@pytest.mark.slow
async def test_esc_during_best_of_keeps_the_finished_candidates_and_starts_no_more(rewarded_home):
    """A slow fake model against the real reward model: Esc stops the reply being generated; it is
    still scored and saved (marked stopped), and the remaining candidates are never started."""
    gen = FakeGenerator(["The answer is seven, as you can see here clearly now."], delay=0.15)
    app = create_app(rewarded_home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("ctrl+n")
        await send(pilot, "What is 3 + 4?")
        await wait_for(pilot, lambda: len(gen.streams) == 1 and "The answer" in screen_text(app),
                       timeout=120, what="the first candidate streaming")
        assert "best of 3: reply 1/3" in screen_text(app)
        await pilot.press("escape")
        await wait_idle(pilot, app, timeout=60)
        (reply,) = replies_in(rewarded_home, app.session.conversation_id)
        assert len(gen.streams) == 1
        assert reply["generation"]["stopped"] is True and isinstance(reply["generation"]["reward_score"], float)
        assert "⏹ stopped" in screen_text(app) and "score " in screen_text(app)


@pytest.mark.slow
async def test_without_a_reward_model_best_of_replies_once_with_a_notice(home):
    best_of_profile(home, 3)
    ensure_dir(home.root)
    home.config_path.write_text('[keys]\n"chat.best_of" = "x"\n')  # the key is remappable by its id
    gen = FakeGenerator(["Seven."])
    app = create_app(home, "demo", factory(gen))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, "What is 3 + 4?")
        await wait_idle(pilot, app)
        (reply,) = [e for e in events(home, type_="message") if e["role"] == "assistant"]
        assert reply["content"] == "Seven." and "reward_score" not in reply["generation"]
        notes = [n.message for n in app._notifications if "needs a reward model" in n.message]
        assert len(notes) == 1 and "engine reward --profile demo" in notes[0]
        await pilot.press("f1")  # the help screen lists the key under its id, as remapped
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        await pilot.pause()
        keys = plain(app.screen.query_one("#help-keys"))
        line = next(line for line in keys.splitlines() if "chat.best_of" in line)
        assert line.split()[0] == "x" and "Best of n" in line
        await pilot.press("escape")
        await pilot.press("ctrl+up", "x")  # the key too: one more plain reply, no second notice
        await wait_idle(pilot, app)
        assert len([e for e in events(home, type_="message") if e["role"] == "assistant"]) == 2
        assert "‹2/2›" in screen_text(app) and "score" not in screen_text(app)
        assert len([n for n in app._notifications if "needs a reward model" in n.message]) == 1
