"""One chat completion: generated in a worker thread, streamed to the event loop, logged at the end.

The worker waits for its turn on the model (engine.serve.scheduler), switches to the adapter the
request's model name means (loading it once, without reloading the base), streams the reply through
the runtime (engine.runtime.streaming), applies stop sequences, and writes the exchange to the
feedback log before it tells the event loop it is done, so the reply id a client receives is
already in the log. A cancel (the client went away, or the server stops) stops the model within one
token; the partial reply is logged with ``stopped: true``, as the chat app does. Before generating, the
prompt is tokenized: past the model's context it is a 400, and max_new_tokens is capped at the room left.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

from engine.errors import UserError
from engine.feedback.events import new_id
from engine.runtime.token_controls import TokenControls
from engine.serve.openai_errors import APIError
from engine.serve.recorder import SOURCE
from engine.serve.stops import StopScanner


@dataclass
class CompletionInput:
    turns: list[dict]  # user/assistant messages, the last a user turn
    system_prompt: str | None  # None: the profile's
    params: object  # engine.runtime.GenerationParams
    adapter: str | None  # run id, None = base model
    model_name: str  # the name the client asked for
    stops: list[str] = field(default_factory=list)
    client: str | None = None  # the client's User-Agent
    max_tokens_given: bool = False  # the client set max_tokens (else the profile's, capped at the context)
    controls: TokenControls = field(default_factory=TokenControls)
    """logprobs, penalties, logit_bias (the in-process backends honour them: ``lm.token_controls``)"""


class CompletionJob:
    """Shared by the request handler (event loop) and its worker thread."""

    def __init__(self, request: CompletionInput, loop: asyncio.AbstractEventLoop) -> None:
        self.input = request
        self.reply_id = new_id()
        self.created = int(time.time())
        self.events: asyncio.Queue = asyncio.Queue()
        self._loop = loop
        self._cancel = threading.Event()
        self._gen = None
        self.scheduler = None
        self.reason: str | None = None  # why it was cancelled: "client" (gone) or "shutdown"

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self, reason: str = "client") -> None:
        """Stop this reply (safe from any thread, any time, more than once)."""
        if self._cancel.is_set():
            return
        self.reason = reason
        self._cancel.set()
        gen = self._gen
        if gen is not None:
            gen.cancel()
        if self.scheduler is not None:
            self.scheduler.wake()

    def emit(self, kind: str, value=None) -> None:
        """From the worker: ("piece", (text, logprob entries or None)), ("done", CompletionResult) or
        ("error", APIError)."""
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop has closed (server shutting down)
            pass


def start(state, job: CompletionJob) -> None:
    """Run ``job`` in a worker thread (the caller has admitted it to the scheduler)."""
    job.scheduler = state.scheduler
    thread = threading.Thread(target=_run_tracked, args=(state, job), name="tuneloop-serve-job", daemon=True)
    with state.workers_lock:
        state.workers.add(thread)
    thread.start()


def _run_tracked(state, job) -> None:
    try:
        run(state, job)
    finally:
        with state.workers_lock:
            state.workers.discard(threading.current_thread())


def _load_adapter(state, run_id: str) -> None:
    """Attach a run's adapter once; a damaged or foreign one is a 400 with a sentence, never a 500."""
    lm = state.lm
    if run_id in lm.adapters:
        return
    try:
        lm.load_adapter(run_id, state.catalog.adapter_dir(run_id))
    except UserError as exc:
        raise APIError(400, str(exc), param="model", code="adapter_unavailable") from None
    except Exception as exc:  # noqa: BLE001 - peft/safetensors raise many kinds on a damaged folder
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise APIError(
            400,
            f"the adapter of run {run_id!r} cannot be loaded ({first}); it may be damaged: pick another model.",
            param="model",
            code="adapter_unavailable",
        ) from None


def fit_to_context(state, req: CompletionInput):
    """The request's params with max_new_tokens capped at the room the context leaves; a prompt that does
    not fit is a 400 naming the limit (before anything is generated)."""
    params = req.params
    context = state.model_limits.context
    lm = state.lm
    if context is None or not hasattr(lm, "prompt_length"):
        return params
    prompt = lm.prompt_length(req.turns, req.system_prompt)
    room = context - prompt
    if room < 1:
        raise APIError(400, context_message(prompt, context), param="messages", code="context_length_exceeded")
    if params.max_new_tokens > room:  # type: ignore[attr-defined]
        params = params.replace(max_new_tokens=room)  # type: ignore[attr-defined]
    return params


def context_message(tokens: int, context: int, at_least: bool = False) -> str:
    size = f"at least {tokens}" if at_least else str(tokens)
    return (
        f"the conversation is {size} tokens long, and this model's context is {context} tokens (prompt and reply "
        "together); shorten it or start a new conversation."
    )


class _LogprobFeed:
    """Hands out the captured logprob entries along with the text they belong to."""

    def __init__(self, capture) -> None:
        self.capture = capture
        self.sent = 0
        self.offset = 0  # bytes of text the handed-out entries cover

    def upto(self, text_bytes: int) -> list[dict]:
        out = []
        for entry in self.capture.take(self.sent):
            if self.offset >= text_bytes:
                break
            out.append(entry)
            self.offset += len(entry["bytes"])
            self.sent += 1
        return out

    def rest(self, limit: int | None) -> list[dict]:
        out = self.capture.take(self.sent, limit)
        self.sent += len(out)
        return out


def run(state, job: CompletionJob) -> None:
    if not state.scheduler.wait_turn(job):
        if job.reason == "shutdown":  # its handler still waits: tell it, so the server stops at once
            job.emit("error", APIError(503, "the server is stopping.", code="server_stopping"))
        return
    client_left = False
    try:
        req = job.input
        lm = state.lm
        if req.adapter is not None:
            _load_adapter(state, req.adapter)
        lm.use_adapter(req.adapter)  # safe: only the job holding the turn touches the model
        params = fit_to_context(state, req)
        if job.cancelled:
            client_left = True
            return
        if req.controls.active:
            gen = lm.stream(req.turns, params, req.system_prompt, controls=req.controls)
        else:
            gen = lm.stream(req.turns, params, req.system_prompt)
        capture = gen.logprobs
        job._gen = gen
        if job.cancelled:
            gen.cancel()
        scanner = StopScanner(req.stops)
        feed = _LogprobFeed(capture) if capture is not None else None
        sent_bytes = 0
        for piece in gen:
            out = scanner.feed(piece)
            if out:
                sent_bytes += len(out.encode("utf-8"))
                job.emit("piece", (out, feed.upto(sent_bytes) if feed else None))
            if scanner.hit is not None and not gen.cancelled:
                gen.cancel()  # the rest of the reply is cut anyway
        client_left = job.cancelled
        tail = scanner.flush()
        if tail:
            sent_bytes += len(tail.encode("utf-8"))
            job.emit("piece", (tail, feed.upto(sent_bytes) if feed else None))
        record = {"profile": state.profile.name, **gen.record, "source": SOURCE, "served_model": req.model_name}
        if req.client:
            record["client"] = req.client[:200]
        if scanner.hit is not None:  # a stop sequence ended it, not the client
            record.update(finish_reason="stop", stopped=False, stop_sequence=scanner.hit)
        c = req.controls
        if c.penalised:
            record["penalties"] = {
                "frequency_penalty": c.frequency_penalty,
                "presence_penalty": c.presence_penalty,
                "logit_bias": {str(k): v for k, v in c.logit_bias.items()},
            }
        try:
            result = state.recorder.record(job, scanner.text, record)
        except UserError as exc:  # the log cannot be written (disk full, permissions): the server's problem
            job.emit("error", APIError(500, str(exc), code="feedback_log_unwritable"))
            return
        if feed is not None:
            limit = capture.cut_to(scanner.text) if scanner.hit is not None else None  # type: ignore[union-attr]
            result.logprobs = feed.rest(limit)
        if job.reason == "shutdown":
            job.emit(
                "error",
                APIError(503, "the server is stopping; the partial reply is in the log.", code="server_stopping"),
            )
            return
        job.emit("done", result)
    except APIError as exc:
        job.emit("error", exc)
    except UserError as exc:
        job.emit("error", APIError(400, str(exc)))
    except Exception as exc:  # noqa: BLE001 - a bug: details on the server's stderr, one sentence to the client
        traceback.print_exception(exc, file=sys.stderr)
        job.emit(
            "error",
            APIError(
                500, "the server failed while generating this reply; its log has the details.", code="internal_error"
            ),
        )
    finally:
        state.scheduler.done(cancelled=client_left)
