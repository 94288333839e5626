"""The running server: its state (model, log, queue), and uvicorn on a socket we bind ourselves, so
a port in use is one sentence, and tests and the benchmark can run it in a thread on a free port."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from engine.errors import UserError

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
    extra: dict = field(default_factory=dict)


def build_state(
    profile,
    home,
    lm,
    *,
    adapter: str | None = "promoted",
    api_key: str | None = None,
    max_waiting: int = DEFAULT_MAX_WAITING,
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


def make_server(app, sock: socket.socket):
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="off"
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """uvicorn in a daemon thread on ``sock`` (tests, benchmark). ``url`` is the ``/v1`` base URL."""

    def __init__(self, app, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        self.server = make_server(app, self.sock)
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
