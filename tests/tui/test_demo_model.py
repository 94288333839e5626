"""The app with the REAL demo model and runtime: chat, judge, regenerate, pick, then restart and find
everything again, exactly as it was (screen and log)."""

from __future__ import annotations

import pytest

from tests.tui.helpers import events, screen_text, send, wait_for, wait_idle
from tui.app import create_app
from tui.screens.edit import EditScreen

pytestmark = pytest.mark.slow


@pytest.fixture
def short_demo(demo_home):
    """The demo profile with short replies (a user profile overrides the built-in of the same name)."""
    from engine.profiles import BUILTIN_DIR

    text = (BUILTIN_DIR / "demo.toml").read_text().replace("max_new_tokens = 64", "max_new_tokens = 12")
    demo_home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (demo_home.profiles_dir / "demo.toml").write_text(text)
    return demo_home


async def test_chat_judge_regenerate_pick_and_restart(short_demo):
    home = short_demo
    app = create_app(home, "demo")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app, timeout=120)
        assert "builtin:demo" in str(app.query_one("#status").render())
        await send(pilot, "Tell me about Python.")
        await wait_idle(pilot, app)
        (user, reply) = events(home, type_="message")
        assert reply["role"] == "assistant" and reply["content"].strip()
        gen = reply["generation"]
        assert gen["model"] == "builtin:demo" and gen["adapter"] is None and gen["completion_tokens"] > 0
        assert reply["content"] in screen_text(app)

        await pilot.press("ctrl+up", "plus")  # like the reply
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen), what="editor")
        await pilot.pause()
        app.screen.query_one("#editor").text = "Python is a programming language."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "✎ edited" in screen_text(app), what="edit marker")

        await pilot.press("r")  # regenerate: a sibling; the greedy demo profile samples for it
        await wait_idle(pilot, app)
        assert "‹2/2›" in screen_text(app)
        regenerated = events(home, type_="message")[-1]
        assert regenerated["parent_id"] == user["id"] and regenerated["generation"]["params"]["do_sample"] is True
        await pilot.press("left")
        assert "‹1/2›" in screen_text(app) and "Python is a programming language." in screen_text(app)
        await pilot.press("p")
        await pilot.pause()
        on_screen = screen_text(app)
        assert "★ picked" in on_screen and "👍" in on_screen and "✎ edited" in on_screen

    kinds = [e["type"] for e in events(home)]
    assert kinds == ["message", "message", "rating", "edit", "message", "choice"]
    (choice,) = events(home, type_="choice")
    assert choice["chosen_id"] == reply["id"] and choice["kind"] == "regenerate"

    restarted = create_app(home, "demo")
    async with restarted.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await wait_for(pilot, lambda: len(restarted.chat.views()) == 2, what="the conversation")
        assert screen_text(restarted) == on_screen
        sidebar = restarted.query_one("#sidebar")
        assert str(sidebar.get_option_at_index(1).prompt) == "Tell me about Python."
        await pilot.press("ctrl+up", "right")
        assert "‹2/2›" in screen_text(restarted) and "★" not in screen_text(restarted)


def _lora_run(home, run_id: str) -> None:
    """A real, non-trivial LoRA adapter for the demo model, saved where a finished run keeps it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(home.demo_model_dir)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    model.peft_config["default"].base_model_name_or_path = "builtin:demo"
    model.save_pretrained(home.run_dir("demo", run_id) / "adapter", save_embedding_layers=False)


async def test_promoted_adapter_replies_and_a_switch_to_base_is_recorded(short_demo):
    from engine.adapters import set_promoted

    home = short_demo
    run = "20260101-000000-sft"
    _lora_run(home, run)
    set_promoted(home, "demo", run)
    app = create_app(home, "demo")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app, timeout=120)
        assert f"adapter: {run}" in str(app.query_one("#status").render())
        await send(pilot, "Hello")
        await wait_idle(pilot, app)
        with_adapter = events(home, type_="message")[-1]
        assert with_adapter["generation"]["adapter"] == run
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("home", "enter")  # "base model (no adapter)" is first
        await wait_for(pilot, lambda: "adapter: base" in str(app.query_one("#status").render()), what="switch")
        await pilot.press("ctrl+up", "r")
        await wait_idle(pilot, app)
        base = events(home, type_="message")[-1]
        assert base["generation"]["adapter"] is None and base["parent_id"] == with_adapter["parent_id"]
