"""The tuneloop chat app: compose the screen, route keys and messages, follow the feedback log.

Importing this module must not import torch or transformers: the screen paints at once and the
model loads in a background worker (tui.replies). Build it with :func:`create_app`, which tests use
to inject a fake generator.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from rich.markup import escape
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from engine.adapters import promoted_run, run_ids
from engine.errors import UserError
from engine.home import Home, ensure_dir
from engine.profiles import Profile, load_profile, profile_names
from tui.config import UiConfig, load_ui_config
from tui.generator import GeneratorFactory, load_real_model
from tui.judging import JudgingMixin
from tui.messages import ProfileList, ReviewList
from tui.promotion import POLL_SECONDS, PromotionWatch
from tui.replies import QueuedSend, RepliesMixin
from tui.screens.choose import ChooseScreen
from tui.screens.error import ErrorScreen
from tui.screens.help import HelpScreen
from tui.screens.loop import IN_USE_UNKNOWN, LoopScreen, gate_verdicts
from tui.screens.prompt import PromptScreen
from tui.screens.review import ReviewScreen
from tui.session import ChatSession
from tui.widgets.chat_view import CHAT_BINDINGS, ChatView
from tui.widgets.composer import Composer
from tui.widgets.message_view import QUEUED, QUEUED_HELD, Shown
from tui.widgets.sidebar import Sidebar
from tui.widgets.status_bar import StatusBar

APP_BINDINGS = [
    Binding("f1", "help", "Help", id="app.help", tooltip="All keys and their ids"),
    Binding("ctrl+up", "select(-1)", "Prev msg", id="app.select_prev", priority=True, show=False,
            tooltip="Select the previous message (focuses the message list)"),
    Binding("ctrl+down", "select(1)", "Next msg", id="app.select_next", priority=True, show=False,
            tooltip="Select the next message (focuses the message list)"),
    Binding("escape", "stop", "Stop", id="app.stop", priority=True, tooltip="Stop the reply being generated"),
    Binding("ctrl+n", "new_conversation", "New", id="app.new", tooltip="Start a new conversation"),
    Binding("f2", "rename", "Rename", id="app.rename", tooltip="Rename this conversation"),
    Binding("f3", "loop", "Loop", id="app.loop", tooltip="Feedback counts and adapters"),
    Binding("f4", "choose_adapter", "Adapter", id="app.adapter", tooltip="Switch adapter (base, promoted, runs)"),
    Binding("f5", "choose_profile", "Profile", id="app.profile", tooltip="Switch profile (reloads the model)"),
    # priority: the composer (a TextArea) takes F6 for "select line" otherwise; check_action lets F6
    # through to it whenever no promotion is on offer
    Binding("f6", "use_promoted", "Use new adapter", id="app.use_promoted", priority=True,
            tooltip="Reply with the adapter just promoted by engine finetune (offered when it happens)"),
    Binding("ctrl+b", "toggle_sidebar", "Sidebar", id="app.sidebar", show=False, tooltip="Show/hide conversations"),
    Binding("f8", "review", "Review", id="app.review", show=False,
            tooltip="Morning review: approve or reject the revisions engine finetune wrote for your critiques"),
]


def binding_sections() -> list[tuple[str, list[Binding]]]:
    """Every remappable binding, grouped as the help screen shows them."""
    from tui.screens.compare import CompareScreen
    from tui.screens.edit import EditScreen
    from tui.screens.reason import ReasonScreen
    from tui.screens.review import ReviewScreen

    return [("Anywhere", APP_BINDINGS), ("Composer", Composer.BINDINGS),
            ("Message list (selected message)", CHAT_BINDINGS), ("Edit screen", EditScreen.BINDINGS),
            ("Reason screen", ReasonScreen.BINDINGS), ("Compare screen", CompareScreen.BINDINGS),
            ("Review screen (F8)", ReviewScreen.BINDINGS)]


NARROW_BELOW = 70


def home_write_problem(home: Home) -> str | None:
    """One sentence if the home folder cannot be written (then nothing can be saved), else None."""
    try:
        ensure_dir(home.root)
        writable = os.access(home.root, os.W_OK)
        reason = "permission denied"
    except OSError as exc:
        writable, reason = False, exc.strerror or str(exc)
    except UserError:  # engine.home's own sentence for a folder it cannot create or write in
        writable, reason = False, "it is not a folder you can write in"
    if writable:
        return None
    return (f"The home folder {home.root} cannot be written ({reason}): nothing you send or judge can be "
            "saved. Start with --home DIR (or set TUNELOOP_HOME) to a folder you can write.")


class SaveOutcome:
    ok = True


class TuneloopApp(RepliesMixin, JudgingMixin, App):
    CSS_PATH = "app.tcss"
    TITLE = "tuneloop"
    BINDINGS = APP_BINDINGS
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    """Below NARROW_BELOW columns the sidebar starts hidden (ctrl+b still shows it): the chat keeps the width."""

    def __init__(self, home: Home, profile: Profile, generator_factory: GeneratorFactory,
                 ui: UiConfig) -> None:
        super().__init__()
        self.home = home
        self.profile = profile
        self.generator_factory = generator_factory
        self.ui = ui
        self.session = ChatSession(home, profile.name)
        self.home_problem = home_write_problem(home)
        self.promotion_watch = PromotionWatch(home, profile.name)
        self.show_original: set[str] = set()
        self.init_replies()
        if ui.keys:
            self.set_keymap(ui.keys)
        if ui.theme:
            if ui.theme in self.available_themes:
                self.theme = ui.theme
            else:
                from rich.markup import escape  # notify reads markup: "[ui]" would vanish

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
        self.set_interval(POLL_SECONDS, self.poll_promoted)

    def _load_after_first_frame(self) -> None:
        self.set_timer(0.05, self.start_loading)

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
    def saving(self):
        """Around a write to the log: a write that fails (NotSaved, one sentence naming the file) becomes
        an error notice and ``outcome.ok`` False; the app goes on."""
        outcome = SaveOutcome()
        try:
            yield outcome
        except UserError as exc:
            outcome.ok = False
            self.notify(str(exc), title="Not saved", severity="error", timeout=15)

    def warn_log_problems(self) -> None:
        state = self.session.state
        if state.problems:
            self.notify(f"{len(state.problems)} unreadable record(s) in the feedback log were skipped "
                        f"(first: {state.problems[0]}); `engine stats` lists them.", severity="warning", timeout=10)
        if state.future_versions:
            self.notify(f"{state.future_versions} event(s) from a newer tuneloop were ignored.", severity="warning")

    async def refresh_chat(self) -> None:
        """Push the replayed log down to the widgets (the chat, the sidebar, the title)."""
        session = self.session
        path = session.path()
        job = self.current or (self.queue[0] if self.queue else None)
        if job is not None and job.target == "chat":
            ids = [m.id for m in path]
            if job.parent_id in ids:
                path = path[: ids.index(job.parent_id) + 1]  # the reply streams right after its prompt
            else:
                await self.chat.end_streams()  # streaming into another conversation
        pending = {j.parent_id for j in ([self.current] if self.current else []) + self.queue}
        entries = []
        for i, m in enumerate(path):
            sibs = [s.id for s in session.siblings(m.id)]
            unanswered = i == len(path) - 1 and m.id not in pending and session.unanswered(m)
            entries.append(Shown.of(m, sibs, m.id in self.show_original, unanswered))
        await self.chat.sync(entries)
        header = QUEUED_HELD if self.sends_held else QUEUED
        await self.chat.show_queued([(q.key, q.text, header) for q in self.waiting
                                     if q.conversation_id == session.conversation_id])
        self.query_one(Sidebar).show(session.conversations(), session.conversation_id, session.served)
        conv = session.conversation
        title = escape(conv.title) if conv and conv.title else "[dim]New conversation[/dim]"
        if conv is not None and conv.id in session.served:
            title += " [dim](served through engine serve)[/dim]"
        self.query_one("#title", Static).update(title)

    # ---- composer / sidebar ----------------------------------------------------------------------
    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        """Enter: send the text; while a reply generates, queue it as its own message (shown as queued,
        sent when the replies before it are done). Enter on an empty composer sends a held queue."""
        if event.text and not (self.busy or self.waiting):
            await self.send_now(self.session.conversation_id, event.text)
            return
        if event.text:
            self.waiting.append(QueuedSend(self.session.conversation_id, event.text))
        if not event.text and not self.waiting:
            return
        if not self.busy:
            self.sends_held = False  # the person sends again after a failure: the queue goes, in order
        await self.pump()
        await self.refresh_chat()

    async def on_sidebar_opened(self, event: Sidebar.Opened) -> None:
        if event.conversation_id is None:
            self.session.new_conversation()
        else:
            self.session.open(event.conversation_id)
        self.chat.selected_id = None
        await self.refresh_chat()
        self.composer.focus()

    # ---- app actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters) -> bool | None:
        if action == "stop":  # Esc only stops a reply on the main screen; elsewhere it closes things
            return self.active_stream is not None and len(self.screen_stack) == 1
        if action == "use_promoted":  # in the footer only while a promotion is on offer
            return self.offer_pending and len(self.screen_stack) == 1
        return True

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
        conv = self.session.conversation
        if conv is None:
            self.notify("Send a message first; then the conversation can be renamed.", severity="warning")
            return

        async def done(title: str | None) -> None:
            if title:
                with self.saving():
                    self.session.rename(title)
                await self.refresh_chat()

        self.push_screen(PromptScreen("New title for this conversation:", conv.title or ""), done)

    @property
    def adapter_in_use(self):
        """The run id the model replies with (None: base model); before it has loaded, what it will load."""
        return self.lm.adapter if self.lm is not None else IN_USE_UNKNOWN

    def action_loop(self) -> None:
        self.push_screen(LoopScreen(self.home, self.profile.name, self.adapter_in_use))

    def action_use_promoted(self) -> None:
        if self.offer_pending and self.lm is not None and not self.busy:
            self.switch_adapter(self.promoted_offer)
        elif self.busy:
            self.notify("Wait for the current reply to finish.", severity="warning")

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display

    def action_help(self) -> None:
        self.push_screen(HelpScreen(binding_sections(), self.ui.keys, self.home.config_path))

    def action_choose_adapter(self) -> None:
        if self.lm is None:
            self.notify("The model is still loading.", severity="warning")
            return
        if self.busy:
            self.notify("Wait for the current reply to finish.", severity="warning")
            return
        profile, in_use = self.profile.name, self.lm.adapter
        try:
            pointer = promoted_run(self.home, profile)
        except UserError:
            pointer = in_use
        notes = {None: ""}
        if pointer != in_use:
            notes[pointer] = "  ★ newly promoted"
        notes[in_use] = "  ● in use"
        items = [("__base__", "base model (no adapter)" + notes.get(None, ""))]
        verdicts = gate_verdicts(self.home, profile)
        for run in reversed(run_ids(self.home, profile)):
            items.append((run, f"{run}  ({verdicts.get(run, 'no report yet')}){notes.get(run, '')}"))

        def done(choice: str | None) -> None:
            if choice is not None:
                self.switch_adapter(None if choice == "__base__" else choice)

        title = ("Reply with which adapter? (the choice is kept for the next start: it becomes the profile's "
                 "promoted adapter, like `engine adapters use`)")
        self.push_screen(ChooseScreen(title, items, in_use or "__base__"), done)

    def action_choose_profile(self) -> None:
        self.list_profiles(self.profile.name)

    def action_review(self) -> None:
        from engine.train.revise import log_ids

        self.list_review(self.profile.name, *log_ids(self.session.state))

    @work(thread=True, exclusive=True, exit_on_error=False, group="review")
    def list_review(self, profile: str, known: set, revised: set) -> None:
        """F8's items: the machine revisions of the profile's runs not reviewed yet (files read off the UI thread)."""
        from engine.train.revise import review_items

        self.post_message(ReviewList(profile, review_items(self.home, profile, known, revised)))

    def on_review_list(self, message: ReviewList) -> None:
        if message.profile != self.profile.name:
            return
        if not message.items:
            self.notify("No machine revisions to review: engine finetune writes them for critiques (👎 with a "
                        "comment) you did not revise in the chat.")
            return
        originals = {i.original_id: self.session.message(i.original_id).final_text for i in message.items}
        self.push_screen(ReviewScreen(message.items, originals), lambda _: self.call_later(self.refresh_chat))

    def on_review_screen_judged(self, event: ReviewScreen.Judged) -> None:
        item = event.item
        with self.saving() as saved:
            self.session.review_machine_revision(item.original_id, item.critique, item.revision, item.run_id,
                                                 event.approve)
        if saved.ok and isinstance(self.screen, ReviewScreen):
            self.screen.advance(event.approve)

    @work(thread=True, exclusive=True, exit_on_error=False, group="profiles")
    def list_profiles(self, current: str) -> None:
        """F5's items: each profile with its model, whether that is on disk, and the one in use."""
        from engine.runtime.availability import hub_offline, profile_availability

        missing = "not on disk, and HF_HUB_OFFLINE=1: cannot download" if hub_offline() else \
            "not on disk: downloads when chosen"
        items = []
        for name in profile_names(self.home):
            try:
                profile = load_profile(name, self.home)
            except UserError:
                items.append((name, f"{name}  (cannot be read: F5 then Enter says why)"))
                continue
            if profile.model.backend == "openai":  # nothing on this machine: a server answers
                where = f"remote: {profile.model.base_url}"
            else:
                where = "on disk" if profile_availability(profile).on_disk else missing
            mark = "● " if name == current else "  "
            in_use = ", in use" if name == current else ""
            items.append((name, f"{mark}{name}  {profile.model.id}  ({where}{in_use})"))
        self.post_message(ProfileList(items))

    def on_profile_list(self, message: ProfileList) -> None:
        async def done(choice: str | None) -> None:
            if choice == self.profile.name:  # Enter on the profile in use: nothing to reload
                self.notify(f"Already chatting with profile {self.profile.name}.")
            elif choice is not None:
                await self.switch_profile(choice)

        title = f"Switch to which profile? (● is in use: {self.profile.name}; Enter on it keeps it)"
        self.push_screen(ChooseScreen(title, message.items, self.profile.name), done)

    async def switch_profile(self, name: str) -> None:
        try:
            profile = load_profile(name, self.home)
        except UserError as exc:
            self.show_error("That profile cannot be used", str(exc))
            return
        if self.current is not None:
            self.current.stop_requested = True  # a best-of job starts no further candidate
        if self.active_stream is not None:
            self.active_stream.cancel()
        self.queue.clear()
        self.current = None
        if self.waiting:  # typed for the other model: kept, in the composer, one paragraph each
            for queued in reversed(self.waiting):
                self.composer.give_back(queued.text)
            self.notify(f"{len(self.waiting)} queued message(s) were not sent: they are back in the composer.",
                        severity="warning", timeout=10)
        self.waiting.clear()
        self.sends_held = False
        await self.chat.end_streams()
        self.profile = profile
        self.session = ChatSession(self.home, profile.name)
        self.promotion_watch = PromotionWatch(self.home, profile.name)
        self.offer_pending = False
        self.warn_log_problems()
        self.lm = None
        self.show_original.clear()
        self.chat.selected_id = None
        self.show_profile()
        await self.refresh_chat()
        self.composer.focus()  # a new conversation list: what comes next is typing, not judging
        self.start_loading()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Switch profile", "Load another model profile", self.action_choose_profile)
        yield SystemCommand("Switch adapter", "Base model, the promoted adapter or any trained run",
                            self.action_choose_adapter)
        yield SystemCommand("New conversation", "Start a fresh conversation", self.action_new_conversation)
        yield SystemCommand("Rename conversation", "Give this conversation a title", self.action_rename)
        yield SystemCommand("Feedback and adapters", "Counts since the last training run, eval numbers",
                            self.action_loop)
        yield SystemCommand("Review machine revisions", "Approve or reject the revisions written overnight",
                            self.action_review)
        yield SystemCommand("Keys", "Every key and its id for remapping", self.action_help)

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
            await self.reply_failed()
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
    known = {b.id for _, bindings in binding_sections() for b in bindings if b.id}
    ui = load_ui_config(home, known_ids=known)
    return TuneloopApp(home, profile, generator_factory or load_real_model, ui)
