"""What a client must do before the server works for it, and how long it may take.

- ``Guard`` (ASGI middleware, outermost): the API key is checked on the raw header bytes before anything
  reads the body (only ``/health`` goes without, and says nothing but "ok" then); a declared
  ``Content-Length`` over ``Limits.max_body_bytes`` is a 413 before the body is read; the body is counted as
  it arrives (chunked bodies too: 413 past the limit) and each piece must come within ``read_timeout_s``
  (408). Those early answers close the connection, so the rest of a refused body is never read.
- ``read_json``: the handlers' one way to a body: bytes (bounded, as above), JSON (nesting bounded), no lone
  surrogates (400 naming the field).
- ``guarded_protocol``: uvicorn's h11 protocol with a watchdog per connection: request headers must be
  complete within ``read_timeout_s`` of the connection (or of the previous response) and a body within
  ``body_timeout_s`` of its headers, whether or not the app reads it; otherwise the connection is closed.
  With uvicorn's ``limit_concurrency`` (``max_connections``: more get a 503), slow or silent clients cannot
  hold the server.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from engine.serve.openai_errors import APIError
from engine.serve.security import authorization, key_matches

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * MIB
    read_timeout_s: float = 15.0  # headers, and each piece of a body
    body_timeout_s: float = 120.0  # a whole body, from its headers
    max_connections: int = 64  # open connections (uvicorn's limit_concurrency): more get a 503


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


def unauthorized() -> APIError:
    return APIError(
        401, "missing or wrong API key; send it as 'Authorization: Bearer <key>'.", code="invalid_api_key", close=True
    )


def too_large(limits: Limits) -> APIError:
    return APIError(
        413,
        f"the request body is larger than this server accepts ({limits.max_body_bytes // MIB} MiB).",
        code="request_too_large",
        close=True,
    )


def timed_out(limits: Limits) -> APIError:
    return APIError(
        408,
        f"the request body did not arrive in time (nothing for {limits.read_timeout_s:g} s); send it at once.",
        code="request_timeout",
        close=True,
    )


async def send_error(send, err: APIError) -> None:
    body = json.dumps(err.body()).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers().items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: authenticate, then bound the body (size, time), before the app sees the request."""

    OPEN_PATHS = ("/health",)

    def __init__(self, app, state) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits: Limits = self.state.limits
        headers = scope.get("headers", [])
        key = self.state.api_key
        if key and scope.get("path") not in self.OPEN_PATHS and not key_matches(authorization(headers), key):
            await send_error(send, unauthorized())
            return
        length = None
        for name, value in headers:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await send_error(send, APIError(400, "Content-Length is not a number.", close=True))
                    return
        if length is not None and length > limits.max_body_bytes:
            await send_error(send, too_large(limits))
            return
        await self.app(scope, BoundedReceive(receive, limits), send)


class BoundedReceive:
    """The app's ``receive``: counts the body's bytes and times each piece until the body is complete
    (BodyTooLarge, BodyTimeout); after that it is the server's ``receive`` (disconnect notices)."""

    def __init__(self, receive, limits: Limits) -> None:
        self.receive = receive
        self.limits = limits
        self.seen = 0
        self.complete = False

    async def __call__(self):
        if self.complete:
            return await self.receive()
        try:
            message = await asyncio.wait_for(self.receive(), self.limits.read_timeout_s)
        except TimeoutError:
            raise BodyTimeout() from None
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limits.max_body_bytes:
                raise BodyTooLarge()
            if not message.get("more_body", False):
                self.complete = True
        else:
            self.complete = True
        return message


def parse_json(raw: bytes) -> object:
    """JSON from a body, or the 400 that says why not."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise APIError(400, "the request body is nested too deeply.", code="invalid_json") from None
    except UnicodeDecodeError:
        raise APIError(400, "the request body is not UTF-8 text.", code="invalid_json") from None
    except ValueError:
        raise APIError(400, "the request body is not valid JSON.", code="invalid_json") from None


async def read_json(request, state) -> object:
    """The request's body as JSON, read within the limits; 413/408/400 (OpenAI's shape) otherwise."""
    from starlette.requests import ClientDisconnect

    from engine.serve.schema import lone_surrogate_at

    try:
        raw = await request.body()
    except BodyTooLarge:
        raise too_large(state.limits) from None
    except BodyTimeout:
        raise timed_out(state.limits) from None
    except ClientDisconnect:
        raise APIError(400, "the client left before sending the whole body.", close=True) from None
    data = parse_json(raw)
    where = lone_surrogate_at(data)
    if where is not None:
        raise APIError(
            400,
            f"'{where}' holds a lone surrogate (such as \\ud800), which is not valid Unicode text.",
            param=None if where == "body" else where,
            code="invalid_value",
        )
    return data


def guarded_protocol(limits: Limits):
    """uvicorn's h11 protocol class with the per-connection watchdog described above."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    tick = max(0.05, min(1.0, limits.read_timeout_s / 4))

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._phase: tuple | None = None
            self._since = self.loop.time()
            self._watch = self.loop.call_later(tick, self._check)

        def connection_lost(self, exc) -> None:
            self._watch.cancel()
            super().connection_lost(exc)

        def _check(self) -> None:
            if self.transport.is_closing():
                return
            state = self.conn.their_state
            now = self.loop.time()
            phase = (state, self.cycle)  # a new request is a new phase even if the state looks the same
            if phase != self._phase:
                self._phase, self._since = phase, now
            if state is h11.IDLE:
                limit = limits.read_timeout_s  # waiting for (the rest of) a request's headers
            elif state is h11.SEND_BODY:
                limit = limits.body_timeout_s
            else:
                limit = None  # the request is in: the app is working or answering
            if limit is not None and now - self._since > limit:
                if self.cycle is not None and not self.cycle.response_complete:
                    self.cycle.disconnected = True
                    self.cycle.message_event.set()
                self.transport.close()
                return
            self._watch = self.loop.call_later(tick, self._check)

    return GuardedH11Protocol
