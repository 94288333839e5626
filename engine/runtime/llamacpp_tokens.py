"""llama.cpp's tokens on the way out: their bytes and text (:class:`TokenPieces`), and engine serve's decoding
controls applied to the logits llama.cpp samples from (:class:`LogitControls`). numpy only, no torch."""

from __future__ import annotations

import codecs
import ctypes
from typing import Any

from engine.runtime.token_controls import LogprobCapture, TokenControls


class TokenPieces:
    """Token ids -> text pieces: each token's bytes (special tokens say nothing) through an incremental UTF-8
    decoder, so a character split over tokens is held back until it is whole."""

    def __init__(self, vocab, llama_cpp) -> None:
        self.vocab = vocab
        self.llama_cpp = llama_cpp
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self.buf = ctypes.create_string_buffer(256)

    def piece(self, token: int) -> bytes:
        n = self.llama_cpp.llama_token_to_piece(self.vocab, token, self.buf, len(self.buf), 0, False)
        if n < 0:  # longer than the buffer: grow it once
            self.buf = ctypes.create_string_buffer(-n)
            n = self.llama_cpp.llama_token_to_piece(self.vocab, token, self.buf, len(self.buf), 0, False)
        return self.buf.raw[:max(n, 0)]

    def add(self, ids: list[int], final: bool = False) -> str:
        return self.utf8.decode(b"".join(self.piece(t) for t in ids), final=final)

    def text(self, token: int) -> tuple[str, list[int]]:
        """One token's text and bytes, as OpenAI's logprobs give them."""
        raw = self.piece(token)
        return raw.decode("utf-8", errors="replace"), list(raw)


class LogitControls:
    """engine serve's controls on one llama.cpp reply. :meth:`before` runs when a step's logits are ready and
    before the sampler reads them: it keeps their log-softmax for ``logprobs`` (after the profile's repetition
    penalty over prompt and reply, as transformers has it) and subtracts OpenAI's frequency/presence penalties
    (counts over the reply's tokens) and adds ``logit_bias`` in place, so the sampler chain (temperature, top-k,
    top-p, the draw) sees them. :meth:`after` counts the chosen token and records its entry. (llama.cpp's own
    repetition penalty runs in the chain, after these: transformers applies it before them; the two differ only
    when both are set.)"""

    def __init__(self, llama_cpp, ctx, n_vocab: int, controls: TokenControls, capture: LogprobCapture | None,
                 prompt: list[int], repetition_penalty: float, special) -> None:
        import numpy as np

        self.np, self.lib, self.ctx, self.n_vocab = np, llama_cpp, ctx, n_vocab
        self.controls, self.capture, self.special = controls, capture, special
        self.counts = np.zeros(n_vocab, dtype=np.float32)
        self.seen = np.zeros(n_vocab, dtype=bool)
        self.seen[[t for t in prompt if 0 <= t < n_vocab]] = True
        self.penalty = repetition_penalty
        self.bias_ids = np.array(list(controls.logit_bias), dtype=np.int64)
        self.bias = np.array(list(controls.logit_bias.values()), dtype=np.float32)
        self.last: Any = None

    def before(self) -> None:
        np = self.np
        logits = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        if self.capture is not None:
            x = logits.astype(np.float64)
            if self.penalty != 1.0:
                hit = x[self.seen]
                x[self.seen] = np.where(hit > 0, hit / self.penalty, hit * self.penalty)
            top = x.max()
            self.last = x - (top + np.log(np.exp(x - top).sum()))
        c = self.controls
        if c.frequency_penalty or c.presence_penalty:
            logits -= self.counts * c.frequency_penalty + (self.counts > 0) * np.float32(c.presence_penalty)
        if self.bias_ids.size:
            logits[self.bias_ids] += self.bias

    def after(self, token: int) -> None:
        if 0 <= token < self.n_vocab:
            self.counts[token] += 1
            self.seen[token] = True
        if self.capture is None or self.last is None or self.special(token):
            return
        row, n = self.last, self.capture.top
        top: list[tuple[int, float]] = []
        if n:
            ids = self.np.argpartition(-row, n - 1)[:n]
            ids = ids[self.np.argsort(-row[ids], kind="stable")]
            top = [(int(i), float(row[i])) for i in ids]
        self.capture.record(token, float(row[token]), top)
