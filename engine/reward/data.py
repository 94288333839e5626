"""Preference pairs for the reward model: normalising TRL formats, rendering, pre-tokenising.

Every TRL preference shape is accepted (conversational or plain text, explicit or implicit prompt)
and reduced to a ``Pair``. Rendering uses the tokenizer's chat template when it has one and the
pair is conversational; otherwise plain ``User: ...\\nAssistant: ...`` text, so encoder backbones
(BERT family: no chat template, no EOS) work too. Token ids are truncated from the LEFT so the
replies being compared survive, and rows are pre-tokenised (``chosen_ids``/``rejected_ids``)
because TRL's RewardTrainer would otherwise append an EOS token some backbones do not have.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError

Messages = list[dict]


@dataclass(frozen=True)
class Pair:
    """One comparison: the same prompt, a preferred and a dispreferred continuation."""

    prompt: Messages | str
    chosen: Messages | str
    rejected: Messages | str
    group: str = ""
    """What the held-out split groups by (conversation id; a hash of the prompt when unknown)."""

    @property
    def conversational(self) -> bool:
        return isinstance(self.chosen, list)


def _is_messages(value) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)


def _common_prefix(a: Messages, b: Messages) -> int:
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return n


def pair_from_example(example: dict, where: str = "row") -> Pair:
    """A Pair from one TRL preference example; a malformed one is a UserError naming ``where``."""
    if not isinstance(example, dict) or "chosen" not in example or "rejected" not in example:
        raise UserError(f"{where}: not a preference row (needs 'chosen' and 'rejected').")
    chosen, rejected, prompt = example["chosen"], example["rejected"], example.get("prompt")
    if _is_messages(chosen) and _is_messages(rejected):
        if prompt is None:  # implicit prompt: the shared start of both conversations
            n = _common_prefix(chosen, rejected)
            prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        elif not _is_messages(prompt):
            raise UserError(f"{where}: 'prompt' must be a list of messages like 'chosen'.")
        pair = Pair(list(prompt), list(chosen), list(rejected))
    elif isinstance(chosen, str) and isinstance(rejected, str):
        if prompt is None:
            prompt = ""
        if not isinstance(prompt, str):
            raise UserError(f"{where}: 'prompt' must be text like 'chosen'.")
        pair = Pair(prompt, chosen, rejected)
    else:
        raise UserError(f"{where}: 'chosen' and 'rejected' must both be text or both lists of messages.")
    digest = hashlib.sha256(json.dumps(pair.prompt, sort_keys=True).encode()).hexdigest()[:16]
    return Pair(pair.prompt, pair.chosen, pair.rejected, group=digest)


def read_pairs_file(path: Path) -> list[Pair]:
    """Every pair of a TRL preference file (.jsonl, or .json holding a list)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({exc}).") from None
    stripped = text.lstrip()
    examples: list[tuple[str, object]] = []
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}).") from None
        examples = [(f"{path} item {i + 1}", ex) for i, ex in enumerate(data)]
    else:
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                examples.append((f"{path} line {i}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {i}: not valid JSON ({exc.msg}).") from None
    if not examples:
        raise UserError(f"{path}: has no preference rows.")
    return [pair_from_example(ex, where) for where, ex in examples]  # type: ignore[arg-type]


def _plain(messages: Messages) -> str:
    return "\n".join(f"{str(m['role']).capitalize()}: {m['content']}" for m in messages)


def render_text(tokenizer, prompt: Messages | str, reply: Messages | str) -> tuple[str, bool]:
    """(text, has_special_tokens): the chat template when there is one, else plain role lines."""
    if isinstance(reply, list):
        messages = list(prompt) + list(reply)
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, tokenize=False), True
        return _plain(messages), False  # type: ignore[arg-type]
    return f"{prompt}{reply}", False


def encode(tokenizer, prompt: Messages | str, reply: Messages | str, max_length: int) -> list[int]:
    """Token ids of prompt + reply, at most ``max_length``, cut from the left."""
    text, templated = render_text(tokenizer, prompt, reply)
    enc = tokenizer(text, add_special_tokens=not templated, truncation=True, max_length=max_length)
    return list(enc["input_ids"])


def pretokenize(pairs: list[Pair], tokenizer, max_length: int) -> list[dict]:
    """Rows in the form TRL's RewardTrainer takes as already processed."""
    return [
        {"chosen_ids": encode(tokenizer, p.prompt, p.chosen, max_length),
         "rejected_ids": encode(tokenizer, p.prompt, p.rejected, max_length)}
        for p in pairs
    ]


def pair_to_json(pair: Pair) -> dict:
    data = {"chosen": pair.chosen, "rejected": pair.rejected}
    if pair.prompt:
        data = {"prompt": pair.prompt, **data}
    return data
