"""One chat completion: generated in a worker thread, streamed to the event loop, logged at the end.

The worker waits for its turn on the model (engine.serve.scheduler), switches to the adapter the
request's model name means (loading it once, without reloading the base), streams the reply through
the runtime (engine.runtime.streaming), applies stop sequences, and writes the exchange to the
feedback log before it tells the event loop it is done, so the reply id a client receives is
already in the log. A cancel (the client went away) stops the model within one token; the partial
reply is logged with ``stopped: true``, as the chat app does.
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

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop this reply (safe from any thread, any time, more than once)."""
        if self._cancel.is_set():
            return
        self._cancel.set()
        gen = self._gen
        if gen is not None:
            gen.cancel()
        if self.scheduler is not None:
            self.scheduler.wake()

    def emit(self, kind: str, value=None) -> None:
        """From the worker: ("piece", text), ("done", CompletionResult) or ("error", APIError)."""
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop has closed (server shutting down)
            pass


def start(state, job: CompletionJob) -> None:
    """Run ``job`` in a worker thread (the caller has admitted it to the scheduler)."""
    job.scheduler = state.scheduler
    threading.Thread(target=run, args=(state, job), name="tuneloop-serve-job", daemon=True).start()


def run(state, job: CompletionJob) -> None:
    if not state.scheduler.wait_turn(job):
        return
    client_left = False
    try:
        req = job.input
        lm = state.lm
        if req.adapter is not None and req.adapter not in lm.adapters:
            lm.load_adapter(req.adapter, state.catalog.adapter_dir(req.adapter))
        lm.use_adapter(req.adapter)  # safe: only the job holding the turn touches the model
        gen = lm.stream(req.turns, req.params, req.system_prompt)
        job._gen = gen
        if job.cancelled:
            gen.cancel()
        scanner = StopScanner(req.stops)
        for piece in gen:
            out = scanner.feed(piece)
            if out:
                job.emit("piece", out)
            if scanner.hit is not None and not gen.cancelled:
                gen.cancel()  # the rest of the reply is cut anyway
        client_left = job.cancelled
        tail = scanner.flush()
        if tail:
            job.emit("piece", tail)
        record = {"profile": state.profile.name, **gen.record, "source": SOURCE, "served_model": req.model_name}
        if req.client:
            record["client"] = req.client[:200]
        if scanner.hit is not None:  # a stop sequence ended it, not the client
            record.update(finish_reason="stop", stopped=False, stop_sequence=scanner.hit)
        try:
            result = state.recorder.record(job, scanner.text, record)
        except UserError as exc:  # the log cannot be written (disk full, permissions): the server's problem
            job.emit("error", APIError(500, str(exc), code="feedback_log_unwritable"))
            return
        job.emit("done", result)
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
