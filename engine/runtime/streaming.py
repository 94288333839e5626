"""Streaming one reply: model.generate in a background thread, text pieces out, cancel within a token.

Why not transformers' TextIteratorStreamer: it decodes inside the generation thread on every token
and holds text back until a space, so a reply without spaces arrives in one piece. Here the
generation thread only hands the new token ids to a lock-free queue (put() costs a few hundred ns);
the consumer decodes incrementally (two short decodes per token, never the whole reply) and drains
whatever has arrived in one go, so streaming costs no measurable tokens/s against plain generate.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

_END = object()


class TokenQueue:
    """A generate() streamer (duck-typed BaseStreamer) that queues new token ids and timestamps. Items are
    tensors (transformers) or lists of ints (llama.cpp, which passes ``skip_prompt=False``: it never puts one)."""

    def __init__(self, skip_prompt: bool = True) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._prompt_seen = not skip_prompt
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.last = None  # the newest token tensor (converted only when asked)
        self.count = 0
        self.done = threading.Event()

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt ids
            self._prompt_seen = True
            return
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now
        self.last = value
        self.count += 1
        self.queue.put(value)

    def end(self) -> None:
        self.done.set()
        self.queue.put(_END)


def cancel_criteria(event: threading.Event):
    """A StoppingCriteria that ends generation at the next step once ``event`` is set."""
    import torch
    from transformers import StoppingCriteria

    class _Cancel(StoppingCriteria):
        def __init__(self) -> None:
            self._cache: dict = {}

        def __call__(self, input_ids, scores, **kwargs):
            key = (input_ids.shape[0], input_ids.device)
            flags = self._cache.get(key)
            if flags is None:  # one tensor pair per batch/device, not an allocation per token
                flags = (torch.zeros(key[0], dtype=torch.bool, device=key[1]),
                         torch.ones(key[0], dtype=torch.bool, device=key[1]))
                self._cache[key] = flags
            return flags[1] if event.is_set() else flags[0]

    return _Cancel()


class IncrementalDecoder:
    """Turns a growing list of token ids into text pieces without re-decoding the whole reply.

    Decodes a short window (from the last emitted boundary) twice per step and emits the new suffix,
    holding text back while it ends in an incomplete UTF-8 sequence. The pieces join to exactly
    ``tokenizer.decode(all_ids, skip_special_tokens=True)`` for byte-level and SentencePiece tokenizers.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def add(self, new_ids: list[int], final: bool = False) -> str:
        self.ids.extend(new_ids)
        prefix = self._decode(self.ids[self.prefix_offset:self.read_offset])
        text = self._decode(self.ids[self.prefix_offset:])
        if len(text) > len(prefix) and (final or not text.endswith("\ufffd")):
            piece = text[len(prefix):]
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return piece
        return ""


COALESCE_S = 0.02  # at most ~50 text pieces a second: smooth for the eye, cheap for the CPU


def _ids(item) -> list[int]:
    return item if isinstance(item, list) else item.reshape(-1).tolist()


class Generation:
    """One streaming reply. Iterate for text pieces; ``cancel()`` stops it; ``record`` after the end.

    The worker thread runs ``run(streamer, stop, started)`` (the model's decoding loop; ``stop`` is
    ``stop_hook(cancel_event)``: by default a transformers StoppingCriteria, for a loop of our own the event
    itself) and ``finish(self)`` fills the record. Leaving the iteration early (break, exception, garbage
    collection) cancels the worker, so a dropped generator never keeps the model busy. ``decoder`` turns
    token ids into text (default: :class:`IncrementalDecoder` on ``tokenizer``).
    """

    def __init__(self, tokenizer, record: dict, run: Callable, finish: Callable[["Generation"], None], *,
                 decoder=None, stop_hook: Callable | None = None, skip_prompt: bool = True) -> None:
        self.record = record
        self.text = ""
        self.stopped = False
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._streamer = TokenQueue(skip_prompt)
        self._decoder = decoder if decoder is not None else IncrementalDecoder(tokenizer)
        self._stop_hook = stop_hook or cancel_criteria
        self._run = run
        self._finish = finish
        self._started_at: float | None = None
        self._done_at: float | None = None
        self._consumed = False
        self.coalesce_s = COALESCE_S
        self.logprobs: Any = None
        """engine.runtime.token_controls.LogprobCapture when the reply was asked for its log probabilities."""
        self._thread = threading.Thread(target=self._work, name="tuneloop-generate", daemon=True)
        self._thread.start()

    # -- worker ----------------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._run(self._streamer, self._stop_hook(self._cancel), self._mark_started)
        except BaseException as exc:  # re-raised in the consumer
            self.error = exc
        finally:
            self._done_at = time.perf_counter()
            self._streamer.end()

    def _mark_started(self) -> None:
        """Called by ``run`` once it holds the model (after waiting for an earlier reply)."""
        self._started_at = time.perf_counter()

    # -- consumer --------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop generating; the model stops within one token and the iteration ends cleanly."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def last_token(self) -> int | None:
        """The id of the last token generated (None before the first)."""
        last = self._streamer.last
        return None if last is None else int(_ids(last)[-1])

    def __iter__(self) -> Iterator[str]:
        if self._consumed:
            raise RuntimeError("a Generation can be iterated only once")
        self._consumed = True
        return self._pieces()

    def _pieces(self) -> Iterator[str]:
        q = self._streamer.queue
        finished = False
        try:
            while not finished:
                if self.coalesce_s > 0 and self._streamer.count:
                    # let a few tokens gather: one wake-up and decode per burst instead of per token
                    # leaves the CPU to the model (matters on small CPU boxes); the end wakes us at once
                    self._streamer.done.wait(self.coalesce_s)
                items = [q.get()]
                while True:  # drain what has arrived: one decode for a burst of tokens
                    try:
                        items.append(q.get_nowait())
                    except queue.Empty:
                        break
                ids: list[int] = []
                for item in items:
                    if item is _END:
                        finished = True
                        break
                    ids.extend(_ids(item))
                piece = self._decoder.add(ids, final=finished)
                if piece:
                    self.text += piece
                    yield piece
        finally:
            if not finished:  # the consumer left early
                self._cancel.set()
            self._thread.join()
            self._complete()
        if self.error is not None:
            raise self.error

    def wait(self) -> str:
        """Consume the whole reply and return its text."""
        for _ in self:
            pass
        return self.text

    def _complete(self) -> None:
        s = self._streamer
        start = self._started_at if self._started_at is not None else self._done_at
        end = self._done_at or time.perf_counter()
        elapsed = max(end - start, 0.0) if start is not None else 0.0
        self.stopped = self._cancel.is_set()
        self.record["completion_tokens"] = s.count
        self.record["ttft_s"] = round(s.first_token_at - start, 6) if s.first_token_at and start else None
        self.record["elapsed_s"] = round(elapsed, 6)
        self.record["tokens_per_s"] = round(s.count / elapsed, 3) if elapsed > 0 and s.count else 0.0
        self.record["stopped"] = self.stopped
        self._finish(self)
