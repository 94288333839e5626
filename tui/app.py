"""The tuneloop chat app: compose the screen, route keys and messages, follow the feedback log.

Importing this module imports Textual and the light widgets only (no pydantic, no engine profile, config or
feedback module, never torch or transformers): ``tuneloop`` paints its first frame at once, reads the profile,
config.toml and the log right after it (tui/boot.py) and then loads the model in a background worker
(tui.model). Build it with :func:`create_app`, which tests use to inject a fake generator.

The app owns plain parts, each handed the app as the interface tui/host.py declares: ``boot`` (tui.boot: the
start, and what is pressed before the others exist), ``model`` (tui.model: loading, the adapter in use),
``replies`` (tui.replies: the reply queue and its worker), ``judging`` (tui.judging: what each key on a
message writes), ``menus`` (tui.menus: F3/F4/F5/F8) and ``view`` (tui.view: the state pushed down to the
widgets). Workers and widgets post messages up; the ``on_*`` handlers below hand each to the part that owns it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from rich.markup import escape
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from engine.errors import UserError
from engine.home import Home
from tui.bindings import APP_BINDINGS, PALETTE
from tui.boot import Boot, Booted, Start, after_boot, build_parts, first_frame, load_start
from tui.host import SaveOutcome
from tui.widgets.chat_view import ChatView
from tui.widgets.composer import Composer
from tui.widgets.sidebar import Sidebar
from tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:  # imported in the boot worker (tui.boot.PART_MODULES), after the first frame
    from engine.profiles import Profile
    from tui import messages as msg
    from tui.config import UiConfig
    from tui.generator import Generator, GeneratorFactory
    from tui.judging import JudgingController
    from tui.menus import Menus
    from tui.model import ModelController
    from tui.replies import ReplyController
    from tui.screens.compare import CompareScreen
    from tui.screens.review import ReviewScreen
    from tui.session import ChatSession
    from tui.view import MainView

NARROW_BELOW = 70


class TuneloopApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tuneloop"
    BINDINGS = APP_BINDINGS
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    """Below NARROW_BELOW columns the sidebar starts hidden (ctrl+b still shows it): the chat keeps the width."""

    profile: Profile
    ui: UiConfig
    session: ChatSession
    home_problem: str | None
    model: ModelController
    replies: ReplyController
    judging: JudgingController
    menus: Menus
    view: MainView
    """What the chat needs (tui/boot.py): set by :meth:`take`, before the first frame or right after it."""

    def __init__(self, home: Home, generator_factory: GeneratorFactory | None, start: Start | None = None,
                 profile_name: str | None = None) -> None:
        super().__init__()
        self.home = home
        self.generator_factory = generator_factory
        self.boot = Boot(self, profile_name, done=start is not None)
        if start is not None:
            self.take(start)
            self.sidebar_at_start = start.ui.sidebar
        else:  # the first frame shows config.toml's look, read without validating it
            look = first_frame(home)
            self.look(look.keys, look.theme)
            self.sidebar_at_start = look.sidebar

    def take(self, start: Start) -> None:
        """The profile, config and log to chat with, and the parts built for them."""
        self.profile, self.ui, self.session, self.home_problem = start.profile, start.ui, start.session, start.home_problem
        self.model, self.replies, self.judging, self.menus, self.view = build_parts(self, self.generator_factory)
        if warning := self.look(start.ui.keys, start.ui.theme):
            start.ui.warnings.append(warning)

    def look(self, keys: dict[str, str], theme: str | None) -> str | None:
        """Apply the keymap and the theme; a warning (markup) for a theme Textual does not have."""
        self.set_keymap(keys)
        if theme in self.available_themes:
            self.theme = theme
        elif theme:  # notify reads markup: "[ui]" would vanish
            return escape(f"{self.home.config_path}: unknown theme {theme!r} in [ui]; "
                          f"try one of {', '.join(sorted(self.available_themes))}.")
        return None

    # ---- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="warning")
        with Horizontal(id="main"):
            yield Sidebar(id="sidebar")
            with Vertical(id="conversation"):
                yield Static("", id="title")
                yield ChatView(id="chat")
                yield Composer(id="composer", placeholder="Message — Enter sends, ctrl+j newline, F1 keys")
        yield StatusBar(id="status")
        yield Footer(compact=True)  # the judging keys fit in 80 columns

    @property
    def chat(self) -> ChatView:
        return self.query_one("#chat", ChatView)

    @property
    def composer(self) -> Composer:
        return self.query_one("#composer", Composer)

    @property
    def lm(self) -> Generator | None:
        """The loaded model (None while it loads): the model part's ``lm``, read-only here."""
        return self.model.lm if self.boot.done else None

    @property
    def status(self) -> StatusBar:
        """The status bar of the main screen (found there even while a modal is on top)."""
        return self.screen_stack[0].query_one("#status", StatusBar)

    async def on_mount(self) -> None:
        if not self.sidebar_at_start:  # (shown: left to the CSS, which hides it on a narrow screen)
            self.query_one("#sidebar").display = False
        self.composer.focus()  # typing works from the first frame
        if self.boot.done:
            await self.show_start()
        else:
            self.boot.begin()

    def on_ready(self) -> None:
        """The first frame is on screen: now read the Start (tuneloop), or load the model (create_app read it)."""
        if self.boot.done:
            self.model.begin()
        else:
            self.boot.read()

    async def on_booted(self, message: Booted) -> None:
        self.take(message.start)
        await self.show_start()
        self.model.begin()
        await self.boot.finish()

    async def show_start(self) -> None:
        """Show the profile and its log."""
        for warning in self.ui.warnings:
            self.notify(warning, severity="warning", timeout=10)
        self.view.warn_log_problems()
        self.view.show_profile()
        await self.refresh_chat()
        self.status.load_state = "loading model…"

    @contextmanager
    def saving(self) -> Iterator[SaveOutcome]:
        """Around a write to the log: a write that fails (NotSaved, one sentence naming the file) becomes
        an error notice and ``outcome.ok`` False; the app goes on."""
        outcome = SaveOutcome()
        try:
            yield outcome
        except UserError as exc:
            outcome.ok = False
            self.notify(str(exc), title="Not saved", severity="error", timeout=15)

    def in_thread(self, work: Callable[[], object], group: str, name: str) -> None:
        """A thread worker of ``group`` (exclusive: a new one cancels the previous); failures reach
        :meth:`on_worker_state_changed`."""
        self.run_worker(work, name=name, group=group, exclusive=True, exit_on_error=False, thread=True)

    async def refresh_chat(self) -> None:
        """Push the replayed log down to the widgets (tui/view.py)."""
        await self.view.refresh()

    # ---- messages up: each to the part that owns it ------------------------------------------------
    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        await self.boot.sent(event.text)
        await self.submit(event.text)

    @after_boot
    async def submit(self, text: str) -> None:
        await self.replies.submit(text)

    @after_boot
    async def on_chat_view_act(self, event: ChatView.Act) -> None:
        await self.judging.act(event.action, event.message_id)

    async def on_compare_screen_picked(self, event: CompareScreen.Picked) -> None:
        await self.judging.compare_picked(event)

    def on_model_progress(self, message: msg.ModelProgress) -> None:
        self.model.progress(message)

    def on_model_not_on_disk(self, message: msg.ModelNotOnDisk) -> None:
        self.model.not_on_disk(message)

    async def on_model_ready(self, message: msg.ModelReady) -> None:
        if self.model.ready(message):
            await self.replies.pump()

    def on_adapter_active(self, message: msg.AdapterActive) -> None:
        self.model.adapter_active(message)

    def on_promoted_changed(self, message: msg.PromotedChanged) -> None:
        self.model.promoted_changed(message)

    async def on_reply_progress(self, message: msg.ReplyProgress) -> None:
        await self.replies.progress(message)

    async def on_reply_finished(self, message: msg.ReplyFinished) -> None:
        await self.replies.finished(message)

    async def on_best_of_finished(self, message: msg.BestOfFinished) -> None:
        await self.replies.best_of_finished(message)

    def on_notice(self, message: msg.Notice) -> None:
        self.notify(message.text, severity=message.severity, timeout=10)

    @after_boot
    async def on_sidebar_opened(self, event: Sidebar.Opened) -> None:
        if event.conversation_id is None:
            self.session.new_conversation()
        else:
            self.session.open(event.conversation_id)
        self.chat.selected_id = None
        await self.refresh_chat()
        self.composer.focus()

    # ---- app actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.boot.done:  # (the footer of the first frame asks too)
            return action not in ("stop", "use_promoted")
        if action == "stop":  # Esc only stops a reply on the main screen; elsewhere it closes things
            return self.replies.active_stream is not None and len(self.screen_stack) == 1
        if action == "use_promoted":  # in the footer only while a promotion is on offer
            return self.model.offer_pending and len(self.screen_stack) == 1
        return True

    async def action_quit(self) -> None:
        if self.boot.done:
            self.replies.quit()
        else:
            self.exit()

    def action_stop(self) -> None:
        self.replies.stop()

    def action_select(self, delta: int) -> None:
        chat = self.chat
        if chat.has_focus:
            chat.action_move(delta)
        else:
            chat.focus()
            if chat.selected_id is None:
                chat.action_move(delta)
            else:
                chat.select(chat.selected_id)  # bring it into view

    @after_boot
    async def action_new_conversation(self) -> None:
        self.session.new_conversation()
        self.chat.selected_id = None
        await self.refresh_chat()
        self.composer.focus()

    @after_boot
    def action_rename(self) -> None:
        self.menus.rename()

    @after_boot
    def action_loop(self) -> None:
        self.menus.loop()

    def action_use_promoted(self) -> None:
        model = self.model
        if model.offer_pending and model.lm is not None and not self.replies.busy:
            model.switch_adapter(model.promoted_offer)
        elif self.replies.busy:
            self.notify("Wait for the current reply to finish.", severity="warning")

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display

    @after_boot
    def action_help(self) -> None:
        self.menus.help(self.ui.keys)

    @after_boot
    def action_choose_adapter(self) -> None:
        self.menus.choose_adapter()

    @after_boot
    def action_choose_profile(self) -> None:
        self.menus.choose_profile()

    @after_boot
    def action_review(self) -> None:
        self.menus.review()

    def on_profile_list(self, message: msg.ProfileList) -> None:
        self.menus.profile_list(message)

    def on_review_list(self, message: msg.ReviewList) -> None:
        self.menus.review_list(message)

    def on_review_screen_judged(self, event: ReviewScreen.Judged) -> None:
        self.menus.review_judged(event)

    async def switch_profile(self, name: str) -> None:
        from engine.profiles import load_profile
        from tui.session import ChatSession

        try:
            profile = load_profile(name, self.home)
        except UserError as exc:
            self.show_error("That profile cannot be used", str(exc))
            return
        waiting = self.replies.drop_all()
        if waiting:  # typed for the other model: kept, in the composer, one paragraph each
            for queued in reversed(waiting):
                self.composer.give_back(queued.text)
            self.notify(f"{len(waiting)} queued message(s) were not sent: they are back in the composer.",
                        severity="warning", timeout=10)
        await self.chat.end_streams()
        self.profile = profile
        self.session = ChatSession(self.home, profile.name)
        self.model.forget()
        self.view.warn_log_problems()
        self.judging.show_original.clear()
        self.chat.selected_id = None
        self.view.show_profile()
        await self.refresh_chat()
        self.composer.focus()  # a new conversation list: what comes next is typing, not judging
        self.model.start_loading()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in PALETTE:
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))

    # ---- errors ----------------------------------------------------------------------------------
    def show_error(self, title: str, message: str, offer_demo: bool = False) -> None:
        from tui.screens.error import ErrorScreen

        async def done(choice: str | None) -> None:
            if choice == "demo":
                await self.switch_profile("demo")

        self.push_screen(ErrorScreen(title, message, offer_demo), done)

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place background failures arrive: shown in a modal, never a crash."""
        if event.state != WorkerState.ERROR:
            return
        exc = event.worker.error
        text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        group = event.worker.group
        if group == "boot":  # a bad profile or config: nothing to chat with
            self.boot.failed(text, exc.exit_code if isinstance(exc, UserError) else 1)
            return
        if not self.screen_stack or not self.screen_stack[0].query("#status"):
            return  # the app is closing (its screen is gone): a worker failing now has nowhere to be shown
        if group == "model" and self.home_problem and isinstance(exc, (OSError, UserError)):
            self.status.load_state = "home folder not writable"
            self.show_error(f"The home folder {self.home.root} cannot be written", f"{self.home_problem}\n\n({text})")
        elif group == "model":
            self.status.load_state = "model failed to load"
            self.show_error(f"The model of profile {self.profile.name!r} could not be loaded", text,
                            offer_demo=self.profile.name != "demo")
        elif group == "reply":
            await self.replies.failed()
            self.show_error("The reply failed", text)
        elif group == "adapter":
            self.show_error("The adapter could not be used", text)
        else:
            self.show_error("Something failed", text)


def create_app(home: Home | str | Path | None, profile_name: str | None = None,
               generator_factory: GeneratorFactory | None = None, *, lazy: bool = False) -> TuneloopApp:
    """Build the app for ``home`` and ``profile_name`` (default: the home's default profile); a bad profile or
    config is a UserError here. ``lazy`` (``tuneloop`` in a terminal): they are read right after the first frame
    instead, and a bad one ends the app (``app.return_code``, and ``app.boot.exit_message`` says why)."""
    home = home if isinstance(home, Home) else Home.resolve(home)
    if lazy:
        return TuneloopApp(home, generator_factory, profile_name=profile_name)
    return TuneloopApp(home, generator_factory, load_start(home, profile_name))
