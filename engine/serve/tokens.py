"""What the server needs to know about the model's tokens: its context length (prompts past it are refused,
replies capped at it) and a cheap upper bound on characters per token (a too-long conversation is refused
before it is tokenized). The decoding controls behind ``logprobs``, the penalties and ``logit_bias`` are each
backend's (engine/runtime/token_controls.py)."""

from __future__ import annotations

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
