"""The running server: its state (model, log, queue), and uvicorn on a socket we bind ourselves, so
a port in use is one sentence, and tests and the benchmark can run it in a thread on a free port."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from engine.errors import UserError
from engine.serve.guard import Limits
from engine.serve.tokens import ModelLimits

if TYPE_CHECKING:
    from engine.home import Home
    from engine.profiles import Profile
    from engine.serve.catalog import ModelCatalog
    from engine.serve.recorder import Recorder
    from engine.serve.scheduler import Scheduler

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_WAITING = 16


@dataclass
class ServeState:
    profile: Profile
    home: Home
    lm: Any  # engine.runtime.LoadedModel (or a RemoteModel: the same surface)
    catalog: ModelCatalog
    scheduler: Scheduler
    recorder: Recorder
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    model_limits: ModelLimits = field(default_factory=lambda: ModelLimits(None, 1_000_000))
    extra: dict = field(default_factory=dict)
    workers: set = field(default_factory=set)  # the completion worker threads alive
    workers_lock: threading.Lock = field(default_factory=threading.Lock)

    def stop_replies(self, timeout: float) -> bool:
        """Cancel every reply and waiting request, and wait up to ``timeout`` s for their threads to end
        (False: one is still inside the model, e.g. a long prompt's first step, which cannot be interrupted)."""
        self.scheduler.cancel_all("shutdown")
        deadline = time.monotonic() + timeout
        while True:
            with self.workers_lock:
                alive = [t for t in self.workers if t.is_alive()]
            if not alive:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            alive[0].join(min(left, 0.2))


def build_state(
    profile,
    home,
    lm,
    *,
    adapter: str | None = "promoted",
    api_key: str | None = None,
    max_waiting: int = DEFAULT_MAX_WAITING,
    limits: Limits | None = None,
) -> ServeState:
    """Everything the app needs around an already loaded model (``adapter``: what the profile's
    name means as a model name, and which adapter is loaded up front)."""
    from engine.feedback import FeedbackLog
    from engine.serve.catalog import ModelCatalog
    from engine.serve.conversations import ConversationIndex
    from engine.serve.recorder import Recorder
    from engine.serve.scheduler import Scheduler

    log = FeedbackLog(home, profile.name)
    default = None if adapter in (None, "none", "base") else adapter
    return ServeState(
        profile=profile,
        home=home,
        lm=lm,
        catalog=ModelCatalog(home, profile, default),
        scheduler=Scheduler(max_waiting),
        recorder=Recorder(log, ConversationIndex.from_log(log)),
        api_key=api_key or None,
        limits=limits or Limits(),
        model_limits=ModelLimits.of(lm),
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); a taken port is one sentence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host."
        ) from None
    sock.set_inheritable(True)
    return sock


def make_server(app, sock: socket.socket, state: ServeState | None = None):
    """uvicorn on ``sock`` with the state's limits (connections, header/body timeouts); when it stops (ctrl+c,
    SIGTERM) every reply is cancelled first, so the graceful shutdown has nothing to wait for."""
    import uvicorn

    from engine.serve.guard import guarded_protocol

    limits = state.limits if state is not None else Limits()
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="off",
        http=guarded_protocol(limits),
        ws="none",
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=5,
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            if state is not None:
                state.scheduler.cancel_all("shutdown")
            await super().shutdown(sockets)

    return Server(config)


class BackgroundServer:
    """uvicorn in a daemon thread on ``sock`` (tests, benchmark). ``url`` is the ``/v1`` base URL."""

    def __init__(self, app, host: str = DEFAULT_HOST, port: int = 0, state: ServeState | None = None) -> None:
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        self.server = make_server(app, self.sock, state if state is not None else getattr(app.state, "tuneloop", None))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="tuneloop-serve", daemon=True
        )

    def __enter__(self) -> Self:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
