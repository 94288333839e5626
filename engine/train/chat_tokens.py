"""Token ids and loss labels for an SFT row, from any chat template.

TRL's ``assistant_only_loss`` needs ``{% generation %}`` markers in the template, which almost no real
model ships (it refuses SmolLM2's, Qwen's and Llama's). We find the reply's tokens ourselves instead:

    prompt = template(conversation without the reply, add_generation_prompt=True)
    full   = template(conversation with the reply)

A template that keeps earlier turns as they were renders ``full`` as ``prompt`` + the reply's own text
(its content and end-of-turn token). The reply is the characters after ``prompt``; the fast tokenizer's
offsets say which tokens of ``full`` cover them, and only those tokens get labels (the rest -100). A
template that rewrites earlier turns when one is added (``full`` does not start with ``prompt``) cannot be
masked this way: one sentence says so and how to fix it (``model.chat_template``).

Only the last assistant turn (the reply that was liked or edited) is trained: earlier assistant turns
are context the user may never have approved of.
"""

from __future__ import annotations

from engine.errors import UserError

IGNORE = -100


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def reply_span(tokenizer, messages: list[dict], model_id: str = "the model") -> tuple[str, int, int]:
    """``(full text, start, end)``: the characters of the last assistant turn (content + end-of-turn)."""
    if not messages or messages[-1].get("role") != "assistant":
        raise UserError("an SFT row must end with the assistant's reply.")
    prompt = _render(tokenizer, messages[:-1], True)
    full = _render(tokenizer, messages, False)
    if not full.startswith(prompt):
        raise UserError(f"the chat template of {model_id!r} renders a conversation differently once a reply is "
                        "added (the prompt is not a prefix of the whole), so tuneloop cannot tell which tokens are "
                        "the reply; set model.chat_template in the profile to a template that keeps earlier turns "
                        "as they were.")
    end = len(full.rstrip())
    start = len(prompt)
    if end <= start:
        end = len(full)
    return full, start, end


def tokenize_sft_row(tokenizer, messages: list[dict], model_id: str = "the model") -> dict[str, list[int]]:
    """``{"input_ids", "labels"}`` for one conversation; labels are -100 outside the last reply."""
    full, start, end = reply_span(tokenizer, messages, model_id)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [tok if (hi > start and lo < end) else IGNORE for tok, (lo, hi) in zip(ids, enc["offset_mapping"])]
    if all(label == IGNORE for label in labels):
        raise UserError(f"the chat template of {model_id!r} left no reply tokens to train on; check "
                        "model.chat_template in the profile.")
    return {"input_ids": ids, "labels": labels}


def check_template(tokenizer, model_id: str = "the model") -> None:
    """Fail early (before a run directory exists) when the template cannot be masked."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"the tokenizer of {model_id!r} is not a fast tokenizer, so tuneloop cannot map the reply's "
                        "characters to tokens; install the `tokenizers` package or convert the tokenizer.")
    probe = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "Again?"}, {"role": "assistant", "content": "Yes."}]
    for messages in (probe[:2], probe):
        tokenize_sft_row(tokenizer, messages, model_id)
