"""What the app reads before it can chat, and when: the first frame needs none of it (issue 26).

``tuneloop`` paints its first frame with Textual and the light widgets only (the layout, the composer, a status
bar saying "loading…"). Right after that frame (Textual's ``Ready``) a thread worker (group ``boot``) imports
the engine's profile, config and feedback modules and the app's parts (:data:`PART_MODULES`), and reads what
:class:`Start` holds: the profile, the UI config and the replayed feedback log. It posts :class:`Booted` up and
the app builds its parts from it (``TuneloopApp.on_booted``); a bad profile or config ends the app with exit
code 2 (:meth:`Boot.failed`). :func:`tui.app.create_app` without ``lazy`` calls :func:`load_start` itself,
before the app exists (tests build the app that way, and a bad profile is a UserError at once).

Before the parts exist nothing typed is lost: the composer takes keys from the first frame, and an Enter or a
key that needs a part waits, in order, until they exist (:func:`after_boot`).

The first frame does read ``[ui]`` and ``[keys]`` of config.toml, without validating them
(:func:`first_frame`), so a configured theme, a hidden sidebar or a remapped key is right from the first
frame; the validated config (warnings, a malformed file ending the app with exit code 2) comes with the
Start. This module imports nothing heavy at its top: tui/app.py imports it.
"""

from __future__ import annotations

import functools
import importlib
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Concatenate, ParamSpec, Protocol

from textual.message import Message

from engine.errors import UserError
from engine.home import Home
from engine.safe_files import read_bytes

if TYPE_CHECKING:
    from engine.profiles import Profile
    from tui.config import UiConfig
    from tui.generator import GeneratorFactory
    from tui.host import BootHost, PartsHost
    from tui.judging import JudgingController
    from tui.menus import Menus
    from tui.model import ModelController
    from tui.replies import ReplyController
    from tui.session import ChatSession
    from tui.view import MainView

PART_MODULES = ("tui.model", "tui.replies", "tui.judging", "tui.menus", "tui.view", "tui.generator",
                "tui.promotion", "tui.screens.error")
"""Imported in the boot worker, so building the parts on the UI thread costs no import."""


@dataclass
class FirstFrame:
    """``[ui]`` and ``[keys]`` as the first frame shows them (read leniently: the Start validates them)."""

    theme: str | None = None
    sidebar: bool = True
    keys: dict[str, str] = field(default_factory=dict)


def first_frame(home: Home) -> FirstFrame:
    """config.toml's display settings, without pydantic; anything unreadable reads as the defaults."""
    try:  # read as engine.config reads it: never through a link
        data = tomllib.loads(read_bytes(home.config_path, home).decode("utf-8"))
    except (OSError, ValueError, UserError):  # (its sentence comes with the Start, which ends the app)
        return FirstFrame()
    ui, keys = data.get("ui"), data.get("keys")
    ui = ui if isinstance(ui, dict) else {}
    theme, sidebar = ui.get("theme"), ui.get("sidebar", True)
    return FirstFrame(theme if isinstance(theme, str) else None, sidebar if isinstance(sidebar, bool) else True,
                      {k: v for k, v in keys.items() if isinstance(v, str)} if isinstance(keys, dict) else {})


@dataclass
class Start:
    """What the parts are built from: the profile, the validated UI config, the profile's replayed log, and
    why the home cannot be written (None: it can)."""

    profile: Profile
    ui: UiConfig
    session: ChatSession
    home_problem: str | None


def load_start(home: Home, profile_name: str | None) -> Start:
    """Read the profile (default: the home's default profile), config.toml and the feedback log.

    Raises UserError for a bad profile or config (one sentence naming the file)."""
    from engine.profiles import default_profile_name, load_profile
    from tui.bindings import binding_ids
    from tui.config import home_write_problem, load_ui_config
    from tui.session import ChatSession

    profile = load_profile(profile_name or default_profile_name(home), home)
    ui = load_ui_config(home, known_ids=binding_ids())
    for module in PART_MODULES:
        importlib.import_module(module)
    return Start(profile, ui, ChatSession(home, profile.name), home_write_problem(home))


@dataclass
class Booted(Message):
    """The boot worker read the :class:`Start` (posted up to the app, which builds its parts from it)."""

    start: Start


def build_parts(host: PartsHost, factory: GeneratorFactory | None
                ) -> tuple[ModelController, ReplyController, JudgingController, Menus, MainView]:
    """The app's parts (tui/host.py), for a host that holds the Start's profile and session."""
    from tui.generator import load_real_model
    from tui.judging import JudgingController
    from tui.menus import Menus
    from tui.model import ModelController
    from tui.replies import ReplyController
    from tui.view import MainView

    model = ModelController(host, factory or load_real_model)
    replies = ReplyController(host, model)
    judging = JudgingController(host, replies, model)
    return model, replies, judging, Menus(host, model, replies), MainView(host, replies, judging)


class Boot:
    """The app's start, a plain part the app owns (see tui/host.py): the Start read in a worker right after the
    first frame, and what the person did before the parts existed."""

    def __init__(self, host: BootHost, profile_name: str | None, done: bool) -> None:
        self.host = host
        self.profile_name = profile_name
        self.done = done
        """The parts exist (create_app built them before the first frame; else the app did on Booted)."""
        self.waiting: list[Callable[[], Awaitable[None]]] = []
        """Calls made before they did (:func:`after_boot`), run in order once they do."""
        self.sent_early: list[str] = []
        self.exit_message: str | None = None
        """Why the app ended before it could chat (a bad profile or config): tui/__main__.py prints it."""

    def begin(self) -> None:
        """The first frame's status bar: the profile asked for, "loading…"."""
        status = self.host.status
        status.profile, status.adapter, status.load_state = self.profile_name or "", "", "loading…"

    def read(self) -> None:
        """Right after the first frame (the app's Ready): a worker reads the Start and posts it up."""
        host, name = self.host, self.profile_name
        home = host.home
        host.in_thread(lambda: host.post_message(Booted(load_start(home, name))), group="boot", name="load_start")

    async def sent(self, text: str) -> None:
        """Enter before the parts exist: the text is shown queued at once (and sent once they do)."""
        from tui.widgets.message_view import QUEUED_EARLY

        if text and not self.done:
            self.sent_early.append(text)
            await self.host.chat.show_queued([(f"early-{i}", t, QUEUED_EARLY) for i, t in enumerate(self.sent_early)])

    async def finish(self) -> None:
        """The parts exist: what was done meanwhile runs now, in order."""
        self.done = True
        waiting, self.waiting, self.sent_early = self.waiting, [], []
        for call in waiting:
            await call()

    def failed(self, text: str, exit_code: int) -> None:
        """The Start cannot be read (a bad profile or config): the app ends, and tuneloop prints ``text``."""
        self.exit_message = text
        self.host.exit(return_code=exit_code)


class Booting(Protocol):
    """What :func:`after_boot` reads of the app."""

    @property
    def boot(self) -> Boot: ...


P = ParamSpec("P")


def after_boot(method: Callable[Concatenate[Any, P], Awaitable[None] | None]
               ) -> Callable[Concatenate[Any, P], Awaitable[None]]:
    """An app action or handler that needs the parts: called before they exist, it runs once they do, after
    the ones called before it (the keys of a fast typist at start keep their order)."""

    @functools.wraps(method)
    async def run(app: Booting, *args: P.args, **kwargs: P.kwargs) -> None:
        boot = app.boot
        if not boot.done:
            async def later() -> None:
                await run(app, *args, **kwargs)

            boot.waiting.append(later)
            return
        result = method(app, *args, **kwargs)
        if result is not None:
            await result

    return run
