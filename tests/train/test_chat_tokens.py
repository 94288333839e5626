"""SFT trains exactly the reply's tokens (and its end-of-turn) with any chat template, not only ones with
``{% generation %}`` markers; a template it cannot handle gets one sentence before a run exists."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.train.chat_tokens import IGNORE, check_template, tokenize_sft_row
from tests.chat_templates import BUILTIN_FAMILIES, REWRITES_HISTORY
from tests.conftest import add_user_profile
from tests.engine_cli import run_engine

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of Veltoria?"},
    {"role": "assistant", "content": "I am not sure."},
    {"role": "user", "content": "Try again, please."},
    {"role": "assistant", "content": "The capital of Veltoria is Marquessa."},
]


@pytest.fixture
def tokenizer(demo_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(demo_model_dir))


def _trained_text(tokenizer, row) -> str:
    return tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE])


@pytest.mark.parametrize("family", sorted(BUILTIN_FAMILIES))
def test_only_the_last_reply_and_its_end_token_are_trained(tokenizer, family):
    template, end = BUILTIN_FAMILIES[family]
    tokenizer.chat_template = template
    check_template(tokenizer, family)
    row = tokenize_sft_row(tokenizer, CONVERSATION, family)
    trained = _trained_text(tokenizer, row)
    assert trained.strip() == "The capital of Veltoria is Marquessa." + end, trained
    assert "I am not sure" not in trained and "Veltoria?" not in trained  # context is not trained
    assert len(row["input_ids"]) == len(row["labels"])


def test_the_demo_template_with_generation_markers_gives_the_same_reply_tokens(tokenizer):
    row = tokenize_sft_row(tokenizer, CONVERSATION)
    assert _trained_text(tokenizer, row).strip() == "The capital of Veltoria is Marquessa.<|im_end|>"


def test_a_template_that_rewrites_history_is_refused_in_one_sentence(tokenizer):
    tokenizer.chat_template = REWRITES_HISTORY
    with pytest.raises(UserError, match="renders a conversation differently once a reply is added"):
        check_template(tokenizer, "odd/model")


@pytest.mark.slow
def test_finetune_with_such_a_template_exits_2_before_a_run_exists(demo_home):
    import json

    from engine.feedback import FeedbackLog

    text = ('[model]\nid = "builtin:demo"\ndevice = "cpu"\nchat_template = ' + json.dumps(REWRITES_HISTORY) +
            '\n[train]\nmin_rows = 1\n')
    add_user_profile(demo_home, "odd", text)
    log = FeedbackLog(demo_home, "odd")
    user = log.add_message("c1", None, "user", "Hi?")
    reply = log.add_message("c1", user["id"], "assistant", "Hello.")
    log.edit(reply["id"], "Hello there.")
    code, out = run_engine("finetune", "--profile", "odd", "--method", "sft", "--home", str(demo_home.root))
    assert code == 2 and "renders a conversation differently" in out and "Traceback" not in out, out
    assert not demo_home.runs_dir("odd").exists() or not any(p.is_dir() for p in demo_home.runs_dir("odd").iterdir())
