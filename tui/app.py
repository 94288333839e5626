"""The tuneloop chat app: compose the screen, route keys and messages, follow the feedback log.

Importing this module must not import torch or transformers: the screen paints at once and the
model loads in a background worker (tui.model). Build it with :func:`create_app`, which tests use
to inject a fake generator.

The app owns four plain parts, each handed the app as the interface tui/host.py declares: ``model``
(tui.model: loading, the adapter in use), ``replies`` (tui.replies: the reply queue and its worker),
``judging`` (tui.judging: what each key on a message writes) and ``menus`` (tui.menus: F3/F4/F5/F8).
Workers and widgets post messages up; the ``on_*`` handlers below hand each to the part that owns it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rich.markup import escape
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from engine.adapters import promoted_run
from engine.errors import UserError
from engine.home import Home
from engine.profiles import Profile, load_profile
from tui import messages as msg
from tui.bindings import APP_BINDINGS, PALETTE, binding_ids, binding_sections
from tui.config import UiConfig, home_write_problem, load_ui_config
from tui.generator import Generator, GeneratorFactory, load_real_model
from tui.host import SaveOutcome
from tui.judging import JudgingController
from tui.menus import Menus
from tui.model import ModelController
from tui.promotion import POLL_SECONDS
from tui.replies import ReplyController
from tui.screens.compare import CompareScreen
from tui.screens.error import ErrorScreen
from tui.screens.help import HelpScreen
from tui.screens.review import ReviewScreen
from tui.session import ChatSession
from tui.widgets.chat_view import ChatView
from tui.widgets.composer import Composer
from tui.widgets.message_view import QUEUED, QUEUED_HELD, Shown
from tui.widgets.sidebar import Sidebar
from tui.widgets.status_bar import StatusBar

NARROW_BELOW = 70


class TuneloopApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tuneloop"
    BINDINGS = APP_BINDINGS
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    """Below NARROW_BELOW columns the sidebar starts hidden (ctrl+b still shows it): the chat keeps the width."""

    def __init__(self, home: Home, profile: Profile, generator_factory: GeneratorFactory, ui: UiConfig) -> None:
        super().__init__()
        self.home = home
        self.profile = profile
        self.ui = ui
        self.session = ChatSession(home, profile.name)
        self.home_problem = home_write_problem(home)
        self.model = ModelController(self, generator_factory)
        self.replies = ReplyController(self, self.model)
        self.judging = JudgingController(self, self.replies, self.model)
        self.menus = Menus(self, self.model, self.replies)
        if ui.keys:
            self.set_keymap(ui.keys)
        if ui.theme:
            if ui.theme in self.available_themes:
                self.theme = ui.theme
            else:  # notify reads markup: "[ui]" would vanish
                ui.warnings.append(escape(f"{home.config_path}: unknown theme {ui.theme!r} in [ui]; "
                                          f"try one of {', '.join(sorted(self.available_themes))}."))

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
        return self.model.lm

    @property
    def status(self) -> StatusBar:
        """The status bar of the main screen (found there even while a modal is on top)."""
        return self.screen_stack[0].query_one("#status", StatusBar)

    async def on_mount(self) -> None:
        if not self.ui.sidebar:  # (shown: left to the CSS, which hides it on a narrow screen)
            self.query_one("#sidebar").display = False
        for warning in self.ui.warnings:
            self.notify(warning, severity="warning", timeout=10)
        self.warn_log_problems()
        self.show_profile()
        await self.refresh_chat()
        self.composer.focus()
        self.status.load_state = "loading model…"
        # After the first frame: the loader imports torch, which holds the GIL for long stretches
        # and would otherwise delay the first paint by most of a second.
        self.call_after_refresh(self._load_after_first_frame)
        self.set_interval(POLL_SECONDS, self.model.poll_promoted)

    def _load_after_first_frame(self) -> None:
        self.set_timer(0.05, self.model.start_loading)

    def show_profile(self) -> None:
        status = self.status
        status.profile = self.profile.name
        status.model = self.profile.model.id
        status.device = ""
        status.tokens_per_s = None
        status.first_token_s = None
        try:
            status.adapter = promoted_run(self.home, self.profile.name) or "base"
        except UserError as exc:  # a corrupt promoted.json: the loader reports it too
            status.adapter = "base"
            self.notify(str(exc), severity="warning", timeout=10)
        lines = []
        if self.home_problem:
            lines.append(f"⚠ {escape(self.home_problem)}")
        if self.profile.model.trust_remote_code:
            lines.append(f"⚠ profile {escape(self.profile.name)} has trust_remote_code = true: the model runs "
                         "Python code shipped with it.")
        warning = self.query_one("#warning", Static)
        warning.display = bool(lines)
        warning.update("\n".join(lines))

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

    def warn_log_problems(self) -> None:
        state = self.session.state
        if state.problems:
            self.notify(f"{len(state.problems)} unreadable record(s) in the feedback log were skipped "
                        f"(first: {state.problems[0]}); `engine stats` lists them.", severity="warning", timeout=10)
        if state.future_versions:
            self.notify(f"{state.future_versions} event(s) from a newer tuneloop were ignored.", severity="warning")

    async def refresh_chat(self) -> None:
        """Push the replayed log down to the widgets (the chat, the sidebar, the title)."""
        session, replies = self.session, self.replies
        path = session.path()
        job = replies.streaming_job()
        if job is not None and job.target == "chat":
            ids = [m.id for m in path]
            if job.parent_id in ids:
                path = path[: ids.index(job.parent_id) + 1]  # the reply streams right after its prompt
            else:
                await self.chat.end_streams()  # streaming into another conversation
        pending = replies.pending_parents()
        entries = []
        for i, m in enumerate(path):
            sibs = [s.id for s in session.siblings(m.id)]
            unanswered = i == len(path) - 1 and m.id not in pending and session.unanswered(m)
            entries.append(Shown.of(m, sibs, m.id in self.judging.show_original, unanswered))
        await self.chat.sync(entries)
        header = QUEUED_HELD if replies.sends_held else QUEUED
        await self.chat.show_queued([(q.key, q.text, header) for q in replies.waiting
                                     if q.conversation_id == session.conversation_id])
        self.query_one(Sidebar).show(session.conversations(), session.conversation_id, session.served)
        conv = session.conversation
        title = escape(conv.title) if conv and conv.title else "[dim]New conversation[/dim]"
        if conv is not None and conv.id in session.served:
            title += " [dim](served through engine serve)[/dim]"
        self.query_one("#title", Static).update(title)

    # ---- messages up: each to the part that owns it ------------------------------------------------
    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        await self.replies.submit(event.text)

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
        if action == "stop":  # Esc only stops a reply on the main screen; elsewhere it closes things
            return self.replies.active_stream is not None and len(self.screen_stack) == 1
        if action == "use_promoted":  # in the footer only while a promotion is on offer
            return self.model.offer_pending and len(self.screen_stack) == 1
        return True

    async def action_quit(self) -> None:
        self.replies.quit()

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

    async def action_new_conversation(self) -> None:
        self.session.new_conversation()
        self.chat.selected_id = None
        await self.refresh_chat()
        self.composer.focus()

    def action_rename(self) -> None:
        self.menus.rename()

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

    def action_help(self) -> None:
        self.push_screen(HelpScreen(binding_sections(), self.ui.keys, self.home.config_path))

    def action_choose_adapter(self) -> None:
        self.menus.choose_adapter()

    def action_choose_profile(self) -> None:
        self.menus.choose_profile()

    def action_review(self) -> None:
        self.menus.review()

    def on_profile_list(self, message: msg.ProfileList) -> None:
        self.menus.profile_list(message)

    def on_review_list(self, message: msg.ReviewList) -> None:
        self.menus.review_list(message)

    def on_review_screen_judged(self, event: ReviewScreen.Judged) -> None:
        self.menus.review_judged(event)

    async def switch_profile(self, name: str) -> None:
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
        self.warn_log_problems()
        self.judging.show_original.clear()
        self.chat.selected_id = None
        self.show_profile()
        await self.refresh_chat()
        self.composer.focus()  # a new conversation list: what comes next is typing, not judging
        self.model.start_loading()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in PALETTE:
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))

    # ---- errors ----------------------------------------------------------------------------------
    def show_error(self, title: str, message: str, offer_demo: bool = False) -> None:
        async def done(choice: str | None) -> None:
            if choice == "demo":
                await self.switch_profile("demo")

        self.push_screen(ErrorScreen(title, message, offer_demo), done)

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place background failures arrive: shown in a modal, never a crash."""
        if event.state != WorkerState.ERROR:
            return
        if not self.screen_stack or not self.screen_stack[0].query("#status"):
            return  # the app is closing (its screen is gone): a worker failing now has nowhere to be shown
        exc = event.worker.error
        text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        group = event.worker.group
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
               generator_factory: GeneratorFactory | None = None) -> TuneloopApp:
    """Build the app for ``home`` and ``profile_name`` (default: the home's default profile).

    Raises UserError for a bad profile or config, before anything is drawn.
    """
    from engine.profiles import default_profile_name

    home = home if isinstance(home, Home) else Home.resolve(home)
    name = profile_name or default_profile_name(home)
    profile = load_profile(name, home)
    ui = load_ui_config(home, known_ids=binding_ids())
    return TuneloopApp(home, profile, generator_factory or load_real_model, ui)
