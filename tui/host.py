"""What the app's parts use of the app, declared as protocols the app satisfies.

The app (:class:`tui.app.TuneloopApp`) owns plain parts: its start (:class:`tui.boot.Boot`, which exists before
the others: the first frame comes before the profile is read), the model (:class:`tui.model.ModelController`),
the replies (:class:`tui.replies.ReplyController`), the judging keys (:class:`tui.judging.JudgingController`),
the function-key dialogs (:class:`tui.menus.Menus`) and what the main screen shows (:class:`tui.view.MainView`).
Each part is handed the app as one of these interfaces and uses nothing else of it: attributes down (the
profile, the session, the widgets), messages up (thread workers post :mod:`tui.messages`, and the app routes
each one to the part that handles it). mypy checks that the app provides every member a part declares, and a
test can drive a part with a small fake host instead of a running app (tests/tui/test_parts.py).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, TypeVar

if TYPE_CHECKING:
    from textual.message import Message
    from textual.notifications import SeverityLevel
    from textual.screen import Screen
    from textual.timer import Timer
    from textual.widget import Widget

    from engine.home import Home
    from engine.profiles import Profile
    from tui.session import ChatSession
    from tui.widgets.chat_view import ChatView
    from tui.widgets.composer import Composer
    from tui.widgets.status_bar import StatusBar


class SaveOutcome:
    """What :meth:`Host.saving` yields: ``ok`` turns False when the write inside it was refused."""

    ok = True


class Host(Protocol):
    """What every part reads and calls on the app."""

    @property
    def home(self) -> Home: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def session(self) -> ChatSession: ...

    @property
    def chat(self) -> ChatView: ...

    @property
    def composer(self) -> Composer: ...

    @property
    def status(self) -> StatusBar: ...

    def saving(self) -> AbstractContextManager[SaveOutcome]:
        """Around a write to the log: a refused write becomes an error notice and ``ok`` False."""

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None: ...

    async def refresh_chat(self) -> None:
        """Push the replayed log down to the widgets."""

    def post_message(self, message: Message) -> bool: ...

    def in_thread(self, work: Callable[[], object], group: str, name: str) -> None:
        """Run ``work`` in a thread worker of ``group`` (a new one cancels the group's previous worker); a
        failure reaches the app's one ``Worker.StateChanged`` handler."""


class ModelHost(Host, Protocol):
    def set_interval(self, interval: float, callback: Callable[[], None] | None = None, *,
                     name: str | None = None, repeat: int = 0, pause: bool = False) -> Timer: ...

    def set_timer(self, delay: float, callback: Callable[[], None] | None = None, *,
                  name: str | None = None, pause: bool = False) -> Timer: ...

    def refresh_bindings(self) -> None: ...


class ReplyHost(Host, Protocol):
    def set_timer(self, delay: float, callback: Callable[[], None] | None = None, *,
                  name: str | None = None, pause: bool = False) -> Timer: ...

    def exit(self, result: Any = None, return_code: int = 0, message: Any = None) -> None: ...


ResultT = TypeVar("ResultT")
WidgetT = TypeVar("WidgetT", bound="Widget")


class ScreenHost(Host, Protocol):
    def push_screen(self, screen: Screen[ResultT],
                    callback: Callable[[ResultT | None], None] | Callable[[ResultT | None], Awaitable[None]] | None = None,
                    ) -> Any: ...


class JudgingHost(ScreenHost, Protocol):
    def copy_to_clipboard(self, text: str) -> None: ...


class MenuHost(ScreenHost, Protocol):
    @property
    def screen(self) -> Screen[Any]:
        """The screen on top."""

    def call_later(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> bool: ...

    async def switch_profile(self, name: str) -> None:
        """Chat with profile ``name`` from now on (its log, its model)."""


class ViewHost(Host, Protocol):
    @property
    def home_problem(self) -> str | None:
        """Why the home folder cannot be written (None: it can)."""

    def query_one(self, selector: str, expect_type: type[WidgetT]) -> WidgetT: ...

    @property
    def is_running(self) -> bool:
        """False once the app is closing (its widgets are being removed)."""


class PartsHost(ModelHost, ReplyHost, JudgingHost, MenuHost, ViewHost, Protocol):
    """The app as all its parts see it (tui.boot.build_parts builds them)."""


class BootHost(Protocol):
    """What :class:`tui.boot.Boot` uses of the app: it runs before the parts, the profile and the session exist."""

    @property
    def home(self) -> Home: ...

    @property
    def chat(self) -> ChatView: ...

    @property
    def status(self) -> StatusBar: ...

    def post_message(self, message: Message) -> bool: ...

    def in_thread(self, work: Callable[[], object], group: str, name: str) -> None: ...

    def exit(self, result: Any = None, return_code: int = 0, message: Any = None) -> None: ...
