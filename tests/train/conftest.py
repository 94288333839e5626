"""Helpers for the finetune tests: feedback recorded through the public FeedbackLog API, the CLI run
in-process (same exit codes and output as the console script), and log-prob probes."""

from __future__ import annotations

import uuid

import pytest

from engine.feedback import FeedbackLog
from tests.engine_cli import run_engine  # noqa: F401  (re-exported for the finetune tests)

SYSTEM = "You are a helpful assistant."


def converse(log: FeedbackLog, question: str, replies: list[str]) -> tuple[str, list[dict]]:
    """A conversation with one user turn and one assistant reply per entry (siblings, like regenerations)."""
    conv = uuid.uuid4().hex
    user = log.add_message(conv, None, "user", question)
    out = [log.add_message(conv, user["id"], "assistant", text, generation={"system_prompt": SYSTEM})
           for text in replies]
    return conv, out


def margin(model, tokenizer, question: str, chosen: str, rejected: str) -> float:
    """log p(chosen) - log p(rejected) for the reply to ``question`` (with the demo system prompt)."""
    from engine.train.gate import completion_logprob

    prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    c, _ = completion_logprob(model, tokenizer, prompt, [{"role": "assistant", "content": chosen}], 256)
    r, _ = completion_logprob(model, tokenizer, prompt, [{"role": "assistant", "content": rejected}], 256)
    return c - r


@pytest.fixture
def log(demo_home) -> FeedbackLog:
    return FeedbackLog(demo_home, "demo")
