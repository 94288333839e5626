"""engine serve's per-request decoding controls (OpenAI's ``logprobs``/``top_logprobs``, ``frequency_penalty``,
``presence_penalty`` and ``logit_bias``), which every in-process backend honours in its own decoding loop: the
transformers backend with the hooks below, llama.cpp on the logits it samples from (engine/runtime/llamacpp.py).
A reply's captured log probabilities come back as ``Generation.logprobs``. torch is imported inside functions."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TokenControls:
    logprobs: bool = False
    top_logprobs: int = 0
    """0-20 alternatives per token (with ``logprobs``)"""
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    """token id -> added to its logit"""

    @property
    def penalised(self) -> bool:
        return bool(self.frequency_penalty or self.presence_penalty or self.logit_bias)

    @property
    def active(self) -> bool:
        return self.logprobs or self.penalised


# -- token text ------------------------------------------------------------------------------------


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed (the characters byte-level BPE vocabularies are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTES = _byte_decoder()
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class TokenText:
    """A token id's exact bytes and text, as OpenAI's logprobs give them (``token``, ``bytes``)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._cache: dict[int, tuple[str, list[int]]] = {}
        vocab = tokenizer.get_vocab()
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        sample = [piece for piece in list(vocab)[:2000] if piece not in specials]
        self.byte_level = any(piece.startswith("Ġ") for piece in vocab) and all(
            ch in _BYTES for piece in sample for ch in piece
        )

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        hit = self._cache.get(token_id)
        if hit is None:
            hit = self._cache[token_id] = self._text(token_id)
        return hit

    def _text(self, token_id: int) -> tuple[str, list[int]]:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str) or token_id in self.special:
            text = str(piece)
            return text, list(text.encode("utf-8"))
        if self.byte_level and all(ch in _BYTES for ch in piece):
            raw = bytes(_BYTES[ch] for ch in piece)
        elif (m := _BYTE_FALLBACK.fullmatch(piece)) is not None:
            raw = bytes([int(m.group(1), 16)])
        elif "▁" in piece:  # SentencePiece's space
            raw = piece.replace("▁", " ").encode("utf-8")
        else:
            raw = self.tokenizer.decode([token_id]).encode("utf-8")
        return raw.decode("utf-8", errors="replace"), list(raw)


# -- decoding hooks -----------------------------------------------------------------------------------


def penalties(frequency: float, presence: float, bias: dict[int, float]):
    """A LogitsProcessor with OpenAI's penalties (counts over the reply's tokens so far, not the prompt):
    ``logit -= count * frequency + (count > 0) * presence``, then ``logit_bias`` added."""
    import torch
    from transformers import LogitsProcessor

    class _Penalties(LogitsProcessor):
        def __init__(self) -> None:
            self.start: int | None = None
            self.bias: tuple | None = None

        def __call__(self, input_ids, scores):
            if self.start is None:
                self.start = input_ids.shape[1]
            reply = input_ids[:, self.start :]
            if reply.shape[1] and (frequency or presence):
                counts = torch.zeros_like(scores).scatter_add_(1, reply, torch.ones_like(reply, dtype=scores.dtype))
                scores = scores - counts * frequency - (counts > 0).to(scores.dtype) * presence
            if bias:
                if self.bias is None:
                    ids = torch.tensor(list(bias), device=scores.device)
                    values = torch.tensor(list(bias.values()), device=scores.device, dtype=scores.dtype)
                    self.bias = (ids, values)
                scores = scores.clone()
                scores[:, self.bias[0]] += self.bias[1]
            return scores

    return _Penalties()


class LogprobCapture:
    """Log probabilities of each reply token, as OpenAI's ``logprobs.content``: the model's distribution after the
    profile's repetition_penalty, before frequency/presence penalties, logit_bias, temperature and top_p. A backend
    calls :meth:`record` once a step's token is chosen and before its text is streamed. Special tokens (end of
    reply) get no entry, as they are not in the text."""

    def __init__(self, token_text: Callable[[int], tuple[str, list[int]]], top: int) -> None:
        self.token_text = token_text
        """token id -> (text, bytes) as OpenAI gives them"""
        self.top = top
        self.entries: list[dict] = []
        self._lock = threading.Lock()

    def record(self, token_id: int, logprob: float, top: list[tuple[int, float]]) -> None:
        """Token ``token_id`` was chosen with ``logprob``; ``top``: the ``self.top`` likeliest (id, logprob)."""
        entry = self._entry(token_id, logprob)
        entry["top_logprobs"] = [self._entry(i, v) for i, v in top]
        with self._lock:
            self.entries.append(entry)

    def _entry(self, token_id: int, logprob: float) -> dict:
        text, raw = self.token_text(token_id)
        return {"token": text, "logprob": max(logprob, -9999.0), "bytes": raw}

    def take(self, start: int, stop: int | None = None) -> list[dict]:
        with self._lock:
            return list(self.entries[start:stop])

    def __len__(self) -> int:
        with self._lock:
            return len(self.entries)

    def cut_to(self, text: str) -> int:
        """How many entries fall inside ``text`` (the reply cut at a stop sequence): those starting before
        its end."""
        size = len(text.encode("utf-8"))
        at = 0
        with self._lock:
            for n, entry in enumerate(self.entries):
                if at >= size:
                    return n
                at += len(entry["bytes"])
            return len(self.entries)


def transformers_hooks(controls: TokenControls, capture: LogprobCapture | None, special: set[int]) -> dict:
    """``model.generate``'s ``logits_processors`` and ``stopping_criteria`` for ``controls``: a processor keeps the
    step's log-softmax (after the repetition penalty, which transformers applies first) for ``capture``; a
    stopping criterion, which runs once the step's token is chosen, records it; then the penalties."""
    import torch
    from transformers import LogitsProcessor, StoppingCriteria

    processors: list = []
    criteria: list = []
    if capture is not None:
        last: list = [None]

        class _Keep(LogitsProcessor):
            def __call__(self, input_ids, scores):
                last[0] = torch.log_softmax(scores.float(), dim=-1)[0]
                return scores

        class _Record(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                token, row = int(input_ids[0, -1]), last[0]
                if row is not None and token not in special:
                    top: list[tuple[int, float]] = []
                    if capture.top:
                        values, ids = torch.topk(row, min(capture.top, row.shape[0]))
                        top = list(zip(ids.tolist(), values.tolist()))
                    capture.record(token, float(row[token]), top)
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        processors.append(_Keep())
        criteria.append(_Record())
    if controls.penalised:
        processors.append(penalties(controls.frequency_penalty, controls.presence_penalty, controls.logit_bias))
    return {"logits_processors": processors, "stopping_criteria": criteria}
