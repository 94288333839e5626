"""What the main screen shows of the app's state, pushed down to its widgets after every change.

:class:`MainView` is a plain part the app owns (see tui/host.py): :meth:`MainView.refresh` shows the replayed
log (the chat column with the reply streaming into it and the messages queued behind it, the conversation
list, the title); :meth:`MainView.show_profile` shows the profile (the status bar, the warning line) and
:meth:`MainView.warn_log_problems` what the log replay skipped. The app's ``refresh_chat`` is
:meth:`MainView.refresh`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual.css.query import NoMatches
from textual.widgets import Static

from engine.adapters import promoted_run
from engine.errors import UserError
from tui.widgets.message_view import QUEUED, QUEUED_HELD, Shown
from tui.widgets.sidebar import Sidebar

if TYPE_CHECKING:
    from tui.host import ViewHost
    from tui.judging import JudgingController
    from tui.replies import ReplyController


class MainView:
    """The main screen's widgets, given the session, the replies and the judging state."""

    def __init__(self, host: ViewHost, replies: ReplyController, judging: JudgingController) -> None:
        self.host = host
        self.replies = replies
        self.judging = judging

    def show_profile(self) -> None:
        host = self.host
        profile, status = host.profile, host.status
        status.profile = profile.name
        status.model = profile.model.id
        status.device = ""
        status.tokens_per_s = None
        status.first_token_s = None
        try:
            status.adapter = promoted_run(host.home, profile.name) or "base"
        except UserError as exc:  # a corrupt promoted.json: the loader reports it too
            status.adapter = "base"
            host.notify(str(exc), severity="warning", timeout=10)
        lines = []
        if host.home_problem:
            lines.append(f"⚠ {escape(host.home_problem)}")
        if profile.model.trust_remote_code:
            lines.append(f"⚠ profile {escape(profile.name)} has trust_remote_code = true: the model runs "
                         "Python code shipped with it.")
        warning = host.query_one("#warning", Static)
        warning.display = bool(lines)
        warning.update("\n".join(lines))

    def warn_log_problems(self) -> None:
        host = self.host
        state = host.session.state
        if state.problems:
            host.notify(f"{len(state.problems)} unreadable record(s) in the feedback log were skipped "
                        f"(first: {state.problems[0]}); `engine stats` lists them.", severity="warning", timeout=10)
        if state.future_versions:
            host.notify(f"{state.future_versions} event(s) from a newer tuneloop were ignored.", severity="warning")

    async def refresh(self) -> None:
        """Push the replayed log down to the widgets (the chat, the sidebar, the title)."""
        try:
            await self._refresh()
        except NoMatches:
            if self.host.is_running:
                raise
            # the app is closing (a reply finished as the person quit): its widgets are gone, nothing to show

    async def _refresh(self) -> None:
        host, replies = self.host, self.replies
        session, chat = host.session, host.chat
        path = session.path()
        job = replies.streaming_job()
        if job is not None and job.target == "chat":
            ids = [m.id for m in path]
            if job.parent_id in ids:
                path = path[: ids.index(job.parent_id) + 1]  # the reply streams right after its prompt
            else:
                await chat.end_streams()  # streaming into another conversation
        pending = replies.pending_parents()
        entries = []
        for i, m in enumerate(path):
            sibs = [s.id for s in session.siblings(m.id)]
            unanswered = i == len(path) - 1 and m.id not in pending and session.unanswered(m)
            entries.append(Shown.of(m, sibs, m.id in self.judging.show_original, unanswered))
        await chat.sync(entries)
        header = QUEUED_HELD if replies.sends_held else QUEUED
        await chat.show_queued([(q.key, q.text, header) for q in replies.waiting
                                if q.conversation_id == session.conversation_id])
        host.query_one("#sidebar", Sidebar).show(session.conversations(), session.conversation_id, session.served)
        conv = session.conversation
        title = escape(conv.title) if conv and conv.title else "[dim]New conversation[/dim]"
        if conv is not None and conv.id in session.served:
            title += " [dim](served through engine serve)[/dim]"
        host.query_one("#title", Static).update(title)
