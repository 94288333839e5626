"""The FastAPI app: ``GET /v1/models``, ``POST /v1/chat/completions`` (streamed with SSE or not),
``POST /v1/feedback`` and ``GET /health``. engine.serve.guard checks the key and bounds the body before
any handler runs; the handlers read the body themselves (read_json), validate, queue and relay.
Generation runs in worker threads (engine.serve.completion)."""

# No `from __future__ import annotations` here: FastAPI reads the handlers' annotations at runtime, and
# they name classes imported inside create_app.

import asyncio
import json

from engine.runtime.token_controls import TokenControls
from engine.serve.openai_errors import APIError

MAX_MESSAGES = 4096  # and never more than the context has tokens (each message takes at least one)


def create_app(state):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    from engine.serve import completion
    from engine.serve.guard import Guard, read_json
    from engine.serve.openai_errors import install_error_handlers
    from engine.serve.schema import FeedbackRequest
    from engine.serve.security import authorization, key_matches

    app = FastAPI(title="tuneloop engine serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tuneloop = state
    install_error_handlers(app)
    app.add_middleware(Guard, state=state)  # the key and the body's size and pace, before any handler

    @app.get("/health")
    async def health(request: Request) -> dict:
        if state.api_key and not key_matches(authorization(request.scope["headers"]), state.api_key):
            return {"status": "ok"}  # behind a key, a stranger learns nothing but that it is up
        s = state.scheduler
        return {"status": "ok", "profile": state.profile.name, "generating": s.busy, "waiting": s.waiting}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": state.catalog.entries()}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict:
        return state.catalog.entry(name)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict:
        from starlette.concurrency import run_in_threadpool

        body = _validated(FeedbackRequest, await read_json(request, state))
        events = await run_in_threadpool(state.recorder.feedback, body)
        return {
            "object": "feedback",
            "reply_id": body.reply_id.removeprefix("chatcmpl-"),
            "events": [{"id": e["id"], "type": e["type"]} for e in events],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = _chat_request(state, await read_json(request, state))
        job = completion.CompletionJob(_completion_input(state, body, request), asyncio.get_running_loop())
        if not state.scheduler.admit(job):
            raise APIError(
                429,
                f"the server is busy ({state.scheduler.max_waiting} requests already waiting); retry in a moment.",
                code="queue_full",
            )
        completion.start(state, job)
        watch = ClientWatch(request)
        try:
            # Wait for the first piece (or the end) before answering, so an error still gets its status code.
            first = await _next_event(job, watch)
            if first is not None and first[0] == "error":
                raise first[1]
            if first is not None and not body.stream:
                reply = await _whole_reply(job, watch, first, body)
                if reply is not None:
                    return JSONResponse(reply)
            if first is None or not body.stream:
                return JSONResponse({}, status_code=499)  # the client left; nobody reads this
        finally:
            watch.stop()
        return StreamingResponse(
            _sse(job, first, body),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _validated(model, data):
    from pydantic import ValidationError

    from engine.serve.openai_errors import validation_error

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


def _chat_request(state, data):
    """The parsed request, or the 400 that names what is wrong or unsupported. Conversations that cannot
    fit the context are refused here, before anything is tokenized."""
    from engine.serve.completion import context_message
    from engine.serve.schema import ChatCompletionRequest, check_chat_body

    check_chat_body(data)
    context = state.model_limits.context
    cap = min(MAX_MESSAGES, context) if context else MAX_MESSAGES
    messages = data.get("messages") if isinstance(data, dict) else None
    if isinstance(messages, list) and len(messages) > cap:
        raise APIError(
            400,
            f"the conversation has {len(messages)} messages; this server takes at most {cap}"
            + (f" (the model's context is {context} tokens)." if context else "."),
            param="messages",
            code="context_length_exceeded",
        )
    body = _validated(ChatCompletionRequest, data)
    body.refuse_unsupported()
    if context:
        chars = sum(len(m.text()) for m in body.messages)
        at_least = chars // state.model_limits.chars_per_token
        if at_least >= context:
            raise APIError(
                400, context_message(at_least, context, at_least=True), param="messages", code="context_length_exceeded"
            )
    return body


def _completion_input(state, body, request):
    from engine.errors import UserError
    from engine.runtime import GenerationParams
    from engine.serve.completion import CompletionInput

    adapter = state.catalog.resolve(body.model)
    system = [m.text() for m in body.messages if m.role in ("system", "developer")]
    turns = [{"role": m.role, "content": m.text()} for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1]["role"] != "user":
        raise APIError(400, "the last message must be a user message.", param="messages")
    max_tokens = body.max_completion_tokens or body.max_tokens
    overrides = {
        "max_new_tokens": max_tokens,
        "seed": body.seed,
        "top_p": body.top_p,
        "top_k": body.top_k,
        "repetition_penalty": body.repetition_penalty,
    }
    if body.temperature is not None:  # as OpenAI: temperature 0 is greedy, above 0 samples
        overrides.update(temperature=body.temperature, do_sample=body.temperature > 0)
    try:
        params = GenerationParams.from_profile(state.profile, **overrides)
    except UserError as exc:
        raise APIError(400, str(exc)) from None
    bias = {int(k): v for k, v in (body.logit_bias or {}).items()}
    job = CompletionInput(
        turns=turns,
        system_prompt="\n\n".join(system) if system else None,
        params=params,
        adapter=adapter,
        model_name=body.model,
        stops=body.stops(),
        client=request.headers.get("user-agent"),
        max_tokens_given=max_tokens is not None,
        controls=TokenControls(bool(body.logprobs), body.top_logprobs or 0, body.frequency_penalty or 0.0,
                               body.presence_penalty or 0.0, bias),
    )
    c = job.controls
    if c.active:
        if not getattr(state.lm, "token_controls", False):
            first = next(
                name
                for name, on in (
                    ("logprobs", c.logprobs),
                    ("frequency_penalty", c.frequency_penalty),
                    ("presence_penalty", c.presence_penalty),
                    ("logit_bias", c.logit_bias),
                )
                if on
            )
            raise APIError(
                400,
                f"{first} is not supported with this profile's {getattr(state.lm, 'backend', 'remote')} backend.",
                param=first,
                code="unsupported_parameter",
            )
        vocab = state.lm.vocab_size
        for token in bias:
            if token >= vocab:
                raise APIError(
                    400, f"logit_bias names token {token}, but the vocabulary has {vocab} tokens.", param="logit_bias"
                )
    return job


class ClientWatch:
    """Notices a client that goes away before the response starts (while its request waits in the queue
    or a non-streamed reply is generated): a task reading the request's receive channel, where the server
    delivers ``http.disconnect``. Stopped before a streamed response starts, which watches by itself."""

    def __init__(self, request) -> None:
        self.task = asyncio.ensure_future(self._watch(request.receive))

    @staticmethod
    async def _watch(receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    def stop(self) -> None:
        self.task.cancel()


async def _next_event(job, watch: ClientWatch):
    """The worker's next event, or None if the client left meanwhile (the job is then cancelled)."""
    get = asyncio.ensure_future(job.events.get())
    try:
        done, _ = await asyncio.wait({get, watch.task}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        get.cancel()
        job.cancel()
        raise
    if get in done:
        return get.result()
    get.cancel()
    job.cancel()
    return None


def _usage(result) -> dict:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _logprobs(body, entries) -> dict | None:
    return {"content": entries or [], "refusal": None} if body.logprobs else None


async def _whole_reply(job, watch, event, body) -> dict | None:
    """The response body of a non-streamed completion (None: the client left)."""
    entries: list[dict] = []
    while event is not None and event[0] == "piece":
        entries += event[1][1] or []
        event = await _next_event(job, watch)
    if event is None:
        return None
    if event[0] == "error":
        raise event[1]
    result = event[1]
    entries += result.logprobs or []
    return {
        "id": f"chatcmpl-{result.reply_id}",
        "object": "chat.completion",
        "created": job.created,
        "model": body.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": _logprobs(body, entries),
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": _usage(result),
        "reply_id": result.reply_id,
        "conversation_id": result.conversation_id,
        "adapter": result.record.get("adapter"),
    }


def _chunk(job, body, delta: dict, finish_reason=None, logprobs=None, **extra) -> str:
    data = {
        "id": f"chatcmpl-{job.reply_id}",
        "object": "chat.completion.chunk",
        "created": job.created,
        "model": body.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
        **extra,
    }
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _sse(job, event, body):
    """Server-sent events in OpenAI's chunk shape, ending with ``data: [DONE]``. If the client goes away
    Starlette cancels this generator, and the ``finally`` stops the model."""
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    try:
        yield _chunk(job, body, {"role": "assistant", "content": ""}, logprobs=_logprobs(body, []))
        while True:
            kind, value = event
            if kind == "piece":
                text, entries = value
                yield _chunk(job, body, {"content": text}, logprobs=_logprobs(body, entries))
            elif kind == "done":
                yield _chunk(
                    job,
                    body,
                    {},
                    value.finish_reason,
                    logprobs=_logprobs(body, value.logprobs) if value.logprobs else None,
                    reply_id=value.reply_id,
                    conversation_id=value.conversation_id,
                )
                if include_usage:
                    usage = {
                        "id": f"chatcmpl-{job.reply_id}",
                        "object": "chat.completion.chunk",
                        "created": job.created,
                        "model": body.model,
                        "choices": [],
                        "usage": _usage(value),
                    }
                    yield f"data: {json.dumps(usage)}\n\n"
                yield "data: [DONE]\n\n"
                return
            else:  # an error after the stream began: OpenAI's error object as an event
                yield f"data: {json.dumps(value.body())}\n\n"
                return
            event = await job.events.get()
    finally:
        job.cancel()
