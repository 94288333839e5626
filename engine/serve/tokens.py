"""What the server needs to know about the model's tokens: its context length (prompts past it are refused,
replies capped at it), a cheap upper bound on characters per token (a too-long conversation is refused
before it is tokenized), and the decoding hooks behind ``logprobs``/``top_logprobs``,
``frequency_penalty``/``presence_penalty`` and ``logit_bias``. torch is imported inside functions."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

_CONFIG_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def context_length(lm) -> int | None:
    """Tokens the model can attend to (prompt plus reply); None when unknown (a remote backend)."""
    known = getattr(lm, "context_length", None)  # a backend that allocates its context says how long it is
    if isinstance(known, int) and known > 0:
        return known
    model = getattr(lm, "model", None)
    config = getattr(model, "config", None)
    for key in _CONFIG_KEYS:
        value = getattr(config, key, None) if config is not None else None
        if isinstance(value, int) and value > 0:
            return value
    tokenizer = getattr(lm, "tokenizer", None)
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10_000_000:  # tokenizers without a limit say 1e30
        return value
    return None


def max_chars_per_token(tokenizer) -> int:
    """The longest token in characters (the vocabulary's byte-level or SentencePiece strings are at least
    as long as the text they stand for): a text of n characters is at least n / this many tokens."""
    try:
        return max(1, max(len(piece) for piece in tokenizer.get_vocab()))
    except (AttributeError, TypeError, ValueError):
        return 1_000_000  # unknown: the bound never refuses anything


@dataclass(frozen=True)
class ModelLimits:
    context: int | None  # tokens
    chars_per_token: int  # upper bound

    @classmethod
    def of(cls, lm) -> ModelLimits:
        tokenizer = getattr(lm, "tokenizer", None)
        return cls(context_length(lm), max_chars_per_token(tokenizer) if tokenizer is not None else 1_000_000)


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
    """Log probabilities of each reply token, as OpenAI's ``logprobs.content``: a LogitsProcessor keeps the
    step's log-softmax (the model's distribution after the profile's repetition_penalty, before
    frequency/presence penalties, logit_bias, temperature and top_p) and a StoppingCriteria, which runs once
    the step's token is chosen and before the streamer hears of it, records that token's entry. Special tokens
    (end of reply) get no entry, as they are not in the text."""

    def __init__(self, token_text: TokenText, top: int) -> None:
        self.token_text = token_text
        self.top = top
        self.entries: list[dict] = []
        self._lock = threading.Lock()
        self._last = None

    def hooks(self):
        """(logits processor, stopping criteria) for ``model.generate``."""
        import torch
        from transformers import LogitsProcessor, StoppingCriteria

        capture = self

        class _Keep(LogitsProcessor):
            def __call__(self, input_ids, scores):
                capture._last = torch.log_softmax(scores.float(), dim=-1)[0]
                return scores

        class _Record(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                capture._record(int(input_ids[0, -1]))
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        return _Keep(), _Record()

    def _record(self, token_id: int) -> None:
        last = self._last
        if last is None or token_id in self.token_text.special:
            return
        entry = self._entry(token_id, float(last[token_id]))
        top: list[dict] = []
        if self.top:
            import torch

            values, ids = torch.topk(last, min(self.top, last.shape[0]))
            top = [self._entry(int(i), float(v)) for v, i in zip(values.tolist(), ids.tolist())]
        entry["top_logprobs"] = top
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
