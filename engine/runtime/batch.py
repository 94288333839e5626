"""Greedy replies to many prompts at once: ``engine generate --prompts FILE.jsonl``.

One ``model.generate`` call per batch of prompts, left-padded, so a batch of 16 costs little more than
one reply on a CPU (decoding is bound by reading the weights, not by the arithmetic). Greedy only: a
sampled batch would not give the replies that the same seeds give one at a time, while greedy decoding
gives each prompt the reply ``LoadedModel.generate`` gives it alone (the padded positions are masked
and the position ids skip them; tests/test_generate_cli.py checks the equality).

A prompt file holds one JSON value per line: a string (the user's message), or an object with
``prompt`` (a string or a list of messages) or ``messages`` (a list of messages). A system turn in the
messages is ignored, as in the chat: the profile's system prompt applies.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import UserError


def read_prompts(path: Path) -> list[list[dict]]:
    """The prompt file as chats (lists of role/content messages); errors name the file and line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the prompt file {path}: {exc}.") from None
    chats = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            chats.append(_chat(json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise UserError(f"{path}:{number}: {exc}; each line must be a JSON string or an object with "
                            "'prompt' (text or messages) or 'messages'.") from None
    if not chats:
        raise UserError(f"the prompt file {path} holds no prompts.")
    return chats


def _chat(value) -> list[dict]:
    if isinstance(value, dict):
        value = value.get("messages", value.get("prompt"))
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValueError("not a prompt")


def generate_batch(lm, chats: list[list[dict]], params, batch_size: int = 16,
                   system_prompt: str | None = None) -> list[dict]:
    """Greedy replies to ``chats`` with ``lm``'s active adapter: one dict per chat, in order, with
    ``reply``, ``finish_reason`` (``stop`` or ``length``), ``prompt_tokens``, ``completion_tokens``,
    ``adapter`` and ``system_prompt``."""
    import torch

    params = params.checked()
    if not params.greedy:
        raise UserError("--prompts decodes greedily (batched sampling would not match one reply at a time); "
                        "leave out --sample.")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size} must be at least 1.")
    tok = lm.tokenizer
    system = lm.profile.system_prompt if system_prompt is None else system_prompt
    eos = lm._eos  # the runtime's end tokens (model generation_config + tokenizer)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else 0)
    run_id = lm.adapter
    out: list[dict] = []
    for start in range(0, len(chats), batch_size):
        rows = [lm.encode(chat, system)[0].tolist() for chat in chats[start:start + batch_size]]
        width = max(map(len, rows))
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        with lm._lock:  # one generate at a time per model, like stream()
            target, context = lm._generation_context(run_id)
            with context, torch.inference_mode():
                new = target.generate(input_ids=ids.to(lm.model.device), attention_mask=mask.to(lm.model.device),
                                      eos_token_id=eos or None, pad_token_id=pad,
                                      **params.generate_kwargs())[:, width:].tolist()
        for prompt, completion in zip(rows, new):
            ended = next((i for i, t in enumerate(completion) if t in eos), None)
            kept = completion if ended is None else completion[:ended + 1]
            out.append({
                "reply": tok.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False),
                "finish_reason": "stop" if ended is not None else "length",
                "prompt_tokens": len(prompt),
                "completion_tokens": len(kept),
                "adapter": run_id,
                "system_prompt": system,
            })
    return out
