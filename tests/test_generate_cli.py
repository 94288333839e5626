"""``engine demo-model`` and ``engine generate`` as a user runs them."""

from __future__ import annotations

import pytest

from tests.engine_cli import run_engine_capsys as run


def greedy_reply(home, question, max_new_tokens):
    from engine.profiles import load_profile
    from engine.runtime import GenerationParams, load_model

    profile = load_profile("demo", home)
    lm = load_model(profile, home, adapter="base")
    params = GenerationParams.from_profile(profile, max_new_tokens=max_new_tokens, do_sample=False)
    return lm.generate([{"role": "user", "content": question}], params)[0]


def test_demo_model_command_builds_once(capsys, home):
    code, out, _ = run(capsys, "demo-model", "--home", home.root)
    assert code == 0 and "built" in out and (home.demo_model_dir / "model.safetensors").is_file()
    code, out, _ = run(capsys, "demo-model", "--home", home.root)
    assert code == 0 and "already built" in out
    code, out, _ = run(capsys, "demo-model", "--home", home.root, "--force")
    assert code == 0 and "rebuilt" in out


def test_generate_prints_the_greedy_reply(capsys, demo_home):
    code, out, err = run(capsys, "generate", "--profile", "demo", "--home", demo_home.root,
                         "--max-new-tokens", "16", "What is 12 times 7?")
    assert code == 0, err
    expected = greedy_reply(demo_home, "What is 12 times 7?", 16)
    assert expected.strip() and out == expected + "\n"
    assert not (demo_home.root / "feedback").exists()  # nothing recorded without --record


def test_generate_record_appends_the_exchange_to_the_feedback_log(capsys, demo_home):
    code, out, err = run(capsys, "generate", "--profile", "demo", "--home", demo_home.root, "--record",
                         "--sample", "--seed", "5", "--max-new-tokens", "10", "Tell me a fun fact.")
    assert code == 0, err
    from engine.feedback import FeedbackLog

    result = FeedbackLog(demo_home, "demo").read()
    messages = [e for e in result.events if e["type"] == "message"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    user, reply = messages
    assert user["content"] == "Tell me a fun fact." and user["parent_id"] is None
    assert reply["parent_id"] == user["id"] and reply["conversation_id"] == user["conversation_id"]
    assert reply["content"] + "\n" == out
    gen = reply["generation"]
    assert gen["seed"] == 5 and gen["params"]["do_sample"] is True and gen["completion_tokens"] == 10
    assert gen["model"] == "builtin:demo" and gen["adapter"] is None
    assert user["conversation_id"] in err
    state = FeedbackLog(demo_home, "demo").replay()
    assert len(state.conversations) == 1 and not state.problems


@pytest.mark.slow
def test_generate_uses_the_promoted_adapter_unless_told_base(capsys, demo_home, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine import adapters as pointer

    run_id = "20260101-000000-sft"
    base = AutoModelForCausalLM.from_pretrained(demo_home.demo_model_dir)
    torch.manual_seed(1)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    lora.peft_config["default"].base_model_name_or_path = "builtin:demo"
    lora.save_pretrained(pointer.adapter_path(demo_home, "demo", run_id), save_embedding_layers=False)
    pointer.set_promoted(demo_home, "demo", run_id)

    args = ("generate", "--profile", "demo", "--home", demo_home.root, "--max-new-tokens", "16", "Hello!")
    _, promoted, _ = run(capsys, *args)
    _, explicit, _ = run(capsys, *args, "--adapter", run_id)
    _, base_out, _ = run(capsys, *args, "--adapter", "base")
    assert promoted == explicit != base_out
    assert base_out == greedy_reply(demo_home, "Hello!", 16) + "\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--adapter", "20990101-000000-sft"), "no finished adapter"),
        (("--profile", "no-such-profile"), "no profile named"),
        (("--profile", "qwen2.5-0.5b-instruct"), "--profile demo"),
        (("--max-new-tokens", "0"), "--max-new-tokens 0 must be an integer >= 1"),
    ],
)
def test_generate_user_errors_exit_2_with_one_sentence(capsys, demo_home, argv, message):
    code, out, err = run(capsys, "generate", "--home", demo_home.root, *argv, "Hi")
    assert code == 2 and message in err and "Traceback" not in err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_generate_default_profile_comes_from_config(capsys, demo_home):
    from engine.profiles import BUILTIN_DIR
    from engine.safe_files import ensure_dir

    ensure_dir(demo_home.profiles_dir)
    (demo_home.profiles_dir / "mine.toml").write_text((BUILTIN_DIR / "demo.toml").read_text())
    (demo_home.root / "config.toml").write_text('default_profile = "mine"\n')
    code, out, err = run(capsys, "generate", "--home", demo_home.root, "--record", "--max-new-tokens", "4", "Hi")
    assert code == 0 and out.strip(), err
    assert (demo_home.root / "feedback" / "mine").is_dir() and not (demo_home.root / "feedback" / "demo").exists()


@pytest.mark.slow
def test_generate_prompts_file_gives_each_prompt_its_one_at_a_time_greedy_reply(capsys, demo_home, tmp_path):
    import json

    questions = ["What is 12 times 7?", "Hi", "Tell me a long story about a dragon and a castle."]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps(questions[0]) + "\n" + json.dumps({"prompt": questions[1]}) + "\n\n"
                       + json.dumps({"messages": [{"role": "user", "content": questions[2]}]}) + "\n")
    code, out, err = run(capsys, "generate", "--profile", "demo", "--home", demo_home.root, "--adapter", "base",
                         "--prompts", str(prompts), "--json", "--batch-size", "2", "--max-new-tokens", "12")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["prompt"] for line in lines] == questions  # in order, padded batches of different lengths
    for question, line in zip(questions, lines):
        assert line["reply"] == greedy_reply(demo_home, question, 12)
        assert line["finish_reason"] in ("stop", "length") and line["adapter"] is None


def test_generate_needs_a_question_or_a_prompt_file(capsys, demo_home, tmp_path):
    code, _, err = run(capsys, "generate", "--profile", "demo", "--home", demo_home.root)
    assert code == 2 and "--prompts" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": 3}\n')
    code, _, err = run(capsys, "generate", "--profile", "demo", "--home", demo_home.root, "--prompts", str(bad))
    assert code == 2 and "bad.jsonl:1" in err
