"""Replies: generated one at a time in a thread worker, queued behind each other, stoppable with Esc.

:class:`ReplyController` is a plain part the app owns (see tui/host.py); it holds the reply queue, the job
generating, the stream Esc cancels and the messages typed meanwhile. Harlequin-style, each reply runs in a
named thread worker (group ``reply``, ``exclusive``, ``exit_on_error=False``) whose results come back as
messages (tui.messages: progress, finished, best-of finished) that the app routes here; a failure reaches the
app's single ``Worker.StateChanged`` handler, which calls :meth:`ReplyController.failed`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.profiles import Profile
from tui.best_of_chat import no_reward_notice, run_best_of
from tui.generator import Generator, build_params
from tui.jobs import KEEP, Keep, QueuedSend, ReplyJob, Stoppable
from tui.messages import BestOfFinished, Notice, ReplyFinished, ReplyProgress
from tui.widgets.message_view import Shown

if TYPE_CHECKING:
    from engine.home import Home
    from engine.reward.best_of import Candidate
    from tui.host import ReplyHost
    from tui.model import ModelController

PROGRESS_EVERY = 0.033
"""Seconds between progress messages of a fast reply (the first piece is posted at once): the screen
updates ~30 times a second however fast the model is, so keys never queue behind per-token work."""
STATUS_EVERY = 0.25
"""Seconds between live tokens/s updates in the status bar."""

GENERATING = "[b]Assistant[/b] [dim]generating… (Esc stops)[/dim]"


def decode_rate(record: dict) -> float | None:
    """Tokens per second while decoding: the tokens after the first over the time after the first one.
    The record's own ``tokens_per_s`` counts the wait for the first token (prompt processing, a
    server's queue) too, which made a short reply look slow (0.6 tok/s for 8 tokens)."""
    try:
        tokens = int(record.get("completion_tokens") or 0)
        elapsed, ttft = float(record.get("elapsed_s") or 0.0), record.get("ttft_s")
        if tokens > 1 and ttft is not None and elapsed - float(ttft) > 0:
            return (tokens - 1) / (elapsed - float(ttft))
        rate = record.get("tokens_per_s")
        return float(rate) if rate is not None else None
    except (TypeError, ValueError):
        return None


class ReplyController:
    """The replies to generate (``queue``), the one generating (``current``) and what waits for them."""

    def __init__(self, host: ReplyHost, model: ModelController) -> None:
        self.host = host
        self.model = model
        self.queue: list[ReplyJob] = []
        self.current: ReplyJob | None = None
        self.active_stream: Stoppable | None = None
        """The stream generating now (set by the worker): Esc, quit and a profile switch cancel it."""
        self.waiting: list[QueuedSend] = []
        """Messages typed while busy, sent one by one afterwards."""
        self.sends_held = False
        """A reply failed: the waiting messages wait for the person (Enter)."""
        self.given_back: tuple[str | None, str] = (None, "")
        """(message, text) put back in the composer after its reply failed."""
        self.best_of_warned: set[str] = set()
        """Profiles told once that best-of needs a reward model."""
        self.quitting = False
        self.quit_warned = False
        self._status_at = 0.0  # when the status bar's live tokens/s last changed

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.queue)

    def streaming_job(self) -> ReplyJob | None:
        """The reply the chat shows streaming (or about to): the current one, else the next queued."""
        return self.current or (self.queue[0] if self.queue else None)

    def pending_parents(self) -> set[str]:
        """Messages a reply is generating or queued for (not "unanswered")."""
        return {j.parent_id for j in ([self.current] if self.current else []) + self.queue}

    # ---- sending ---------------------------------------------------------------------------------
    async def submit(self, text: str) -> None:
        """Enter: send the text; while a reply generates, queue it as its own message (shown as queued,
        sent when the replies before it are done). Enter on an empty composer sends a held queue."""
        conversation_id = self.host.session.conversation_id
        if text and not (self.busy or self.waiting):
            await self.send_now(conversation_id, text)
            return
        if text:
            self.waiting.append(QueuedSend(conversation_id, text))
        if not text and not self.waiting:
            return
        if not self.busy:
            self.sends_held = False  # the person sends again after a failure: the queue goes, in order
        await self.pump()
        await self.host.refresh_chat()

    async def send_now(self, conversation_id: str, text: str) -> bool:
        """Write the user message and queue its reply; a message that cannot be saved goes back to the composer."""
        host = self.host
        with host.saving() as saved:
            user = host.session.add_user(text, conversation_id)
        if not saved.ok:
            host.composer.give_back(text)  # nothing typed is lost
            return False
        # Start the reply before drawing the message: the model works while the screen catches up.
        await self.enqueue(ReplyJob(user.id, best_of=host.profile.generation.best_of))
        await host.refresh_chat()
        return True

    async def enqueue(self, *jobs: ReplyJob) -> None:
        self.queue.extend(jobs)
        started = self._start_next()  # before any drawing: the model works while the screen updates
        for job in jobs:
            if job.target == "chat":
                if job is started:
                    header = GENERATING
                elif self.model.lm:
                    header = "[b]Assistant[/b] [dim]…[/dim]"
                else:
                    header = "[b]Assistant[/b] [yellow]waiting for the model to load…[/yellow]"
                await self.host.chat.begin_stream(job.key, header)

    async def pump(self) -> None:
        """Start the next queued reply if the model is ready and nothing is generating; when no reply is
        left to generate, send the next message typed meanwhile (unless a failure holds them)."""
        job = self._start_next()
        if job is not None and job.target == "chat" and (view := self.host.chat.stream_view(job.key)) is not None:
            await view.show(Shown(None, "assistant", "", GENERATING))
        if not self.busy and self.waiting and not self.sends_held and self.model.lm is not None:
            queued = self.waiting.pop(0)
            await self.send_now(queued.conversation_id, queued.text)

    def _start_next(self) -> ReplyJob | None:
        lm = self.model.lm
        if self.current is not None or not self.queue or lm is None:
            return None
        job = self.current = self.queue.pop(0)
        host = self.host
        profile, home, session = host.profile, host.home, host.session
        if job.revision is not None:
            original_id, critique = job.revision
            messages = session.revision_prompt_for(original_id, critique, profile.revision_prompt)
        else:
            messages = session.prompt_for(job.parent_id)
        host.in_thread(lambda: self._generate(lm, profile, home, job, messages), group="reply", name="generate")
        return job

    # ---- in the reply worker's thread ------------------------------------------------------------
    def _generate(self, lm: Generator, profile: Profile, home: Home, job: ReplyJob, messages: list[dict]) -> None:
        post = self.host.post_message
        restore: str | None | Keep = KEEP
        if not isinstance(job.adapter, Keep):
            restore = lm.adapter
            lm.use_adapter(job.adapter)
        try:
            params = build_params(profile, **job.overrides)
            note = ""
            if job.best_of > 1 and job.target == "chat":
                candidates = self._best_of(lm, profile, home, job, messages, params)
                if candidates is not None:
                    post(BestOfFinished(job.key, [(c.text, c.record) for c in candidates]))
                    return
                # what the notice says, the header says too (each progress carries it: they replace each other)
                note = f"best of {job.best_of}: no reward model yet, replying once"
                post(ReplyProgress(job.key, "", note=note))
            stream = lm.stream(messages, params=params)
            self.active_stream = stream
            parts: list[str] = []
            pieces, first, posted = 0, None, 0.0
            for piece in stream:
                now = time.monotonic()
                first = first or now
                parts.append(piece)
                pieces += 1
                if pieces == 1 or now - posted >= PROGRESS_EVERY:
                    posted = now
                    post(ReplyProgress(job.key, "".join(parts), pieces, now - first, note=note))
            text = "".join(parts)
            record = dict(stream.record)
        finally:
            self.active_stream = None
            if not isinstance(restore, Keep):
                lm.use_adapter(restore)
        post(ReplyFinished(job.key, text, record))

    def _best_of(self, lm: Generator, profile: Profile, home: Home, job: ReplyJob, messages: list[dict],
                 params: Any) -> list[Candidate] | None:
        """n candidates best first, or None (no reward model: one reply instead)."""
        n, post = job.best_of, self.host.post_message

        def on_stream(stream: Stoppable, index: int) -> None:
            self.active_stream = stream
            post(ReplyProgress(job.key, "", note=f"best of {n}: reply {index + 1}/{n}"))

        posted = [0.0]

        def on_text(index: int, text: str, pieces: int, seconds: float) -> None:
            now = time.monotonic()
            if pieces == 1 or now - posted[0] >= PROGRESS_EVERY:
                posted[0] = now
                post(ReplyProgress(job.key, text, pieces, seconds, note=f"best of {n}: reply {index + 1}/{n}"))

        post(ReplyProgress(job.key, "", note=f"best of {n}: preparing the reward model"))
        candidates = run_best_of(lm, home, profile, messages, n, params, on_stream, on_text,
                                 lambda: job.stop_requested)
        if candidates is None and profile.name not in self.best_of_warned:
            self.best_of_warned.add(profile.name)
            post(Notice(no_reward_notice(profile.name, n), "warning"))
        return candidates

    # ---- results, on the UI thread ---------------------------------------------------------------
    async def progress(self, message: ReplyProgress) -> None:
        job = self.current
        if job is None or job.key != message.key:
            return
        now = time.monotonic()
        if message.seconds > 0.5 and now - self._status_at >= STATUS_EVERY:
            self._status_at = now
            self.host.status.tokens_per_s = (message.pieces - 1) / message.seconds  # exact rate on finish
        if job.target == "chat":
            if (view := self.host.chat.stream_view(job.key)) is not None:
                if message.note and message.note not in view.shown.header:
                    await view.show(Shown(None, "assistant", "", f"[b]Assistant[/b] [dim]{message.note}… (Esc stops)[/dim]"))
                await view.stream_to(message.text)
        elif job.screen is not None and job.screen.is_attached:
            await job.screen.progress(job.target, message.text)

    async def finished(self, message: ReplyFinished) -> None:
        job = self.current
        if job is None or job.key != message.key:
            return
        host = self.host
        record = {"profile": host.profile.name, **message.record}
        with host.saving() as saved:
            if job.revision is not None:
                original_id, critique = job.revision
                msg = host.session.add_revision(original_id, message.text, record, critique,
                                                host.profile.revision_prompt)
            else:
                msg = host.session.add_reply(job.parent_id, message.text, record, show=job.target == "chat")
        self.current = None
        if not saved.ok:
            await self._not_saved(job)
            return
        self.show_speed(record)
        if job.target == "chat":
            self.sends_held = False  # replies come again: the waiting messages may go
            if self.given_back[0] == job.parent_id and host.composer.text.strip() == self.given_back[1]:
                host.composer.clear()  # answered after all (r on it): the copy in the composer is not needed
            self.given_back = (None, "")
            await host.chat.end_streams()
            host.chat.selected_id = msg.id
        elif job.screen is not None and job.screen.is_attached:
            await job.screen.finished(job.target, msg.id, message.text)
        await self._done()

    async def best_of_finished(self, message: BestOfFinished) -> None:
        """Every candidate becomes a sibling reply (written best first); the reward model's favourite is shown."""
        job = self.current
        if job is None or job.key != message.key:
            return
        host = self.host
        ids = []
        with host.saving():
            for text, record in message.candidates:
                msg = host.session.add_reply(job.parent_id, text, {"profile": host.profile.name, **record}, show=False)
                ids.append(msg.id)
        self.current = None
        await host.chat.end_streams()
        if ids:
            host.session.show(ids[0])
            host.chat.selected_id = ids[0]
            self.show_speed(message.candidates[0][1])
        await self._done()

    def show_speed(self, record: dict) -> None:
        """The status bar's speed after a reply: decoding speed, and the time to the first token apart."""
        status = self.host.status
        rate = decode_rate(record)
        if rate is not None:
            status.tokens_per_s = rate
        ttft = record.get("ttft_s")
        status.first_token_s = float(ttft) if isinstance(ttft, (int, float)) else None

    async def _not_saved(self, job: ReplyJob) -> None:
        """The reply could not be written (the notice says why): it is not shown as a stored message;
        a compare whose reply is missing cannot be judged, so its screen closes."""
        if job.target == "chat":
            await self.host.chat.end_streams()
        else:
            self.queue = [j for j in self.queue if j.screen is not job.screen]
            if job.screen is not None and job.screen.is_current:
                job.screen.dismiss(None)
        await self._done()

    async def _done(self) -> None:
        if self.quitting:
            self.host.exit()
            return
        await self.host.refresh_chat()
        await self.pump()

    async def failed(self) -> None:
        """The reply worker raised: drop the job (the error modal says why) and go on. A message left with
        no reply (a server that is down) is marked so on screen, its text goes back to the composer (Enter
        sends it again, in its place), and messages typed meanwhile are held, not sent into the failure."""
        host = self.host
        job = self.current
        self.current = None
        self.active_stream = None
        await host.chat.end_streams()
        if job is not None and job.target == "chat" and job.revision is None:
            msg = host.session.message(job.parent_id)
            if host.session.unanswered(msg) and not any(j.parent_id == msg.id for j in self.queue):
                self.sends_held = bool(self.waiting)
                if not host.composer.text.strip():
                    host.composer.give_back(msg.final_text)
                    self.given_back = (msg.id, msg.final_text)
        await host.refresh_chat()
        await self.pump()

    # ---- stopping --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Esc: stop the reply within one token; the partial text is saved, marked stopped."""
        if self.current is not None:
            self.current.stop_requested = True  # a best-of job starts no further candidate
        if self.active_stream is not None:
            self.active_stream.cancel()

    def quit(self) -> None:
        """Quit; a reply being generated is stopped first so its partial text is saved. Messages still
        queued are not sent: the first ctrl+q says so, the second quits."""
        host = self.host
        if self.waiting and not self.quit_warned:
            self.quit_warned = True
            host.notify(f"{len(self.waiting)} message(s) you queued are not sent yet: ctrl+q again quits "
                        "without them.", severity="warning", timeout=10)
            return
        if self.active_stream is None and self.current is None:
            host.exit()
            return
        # A reply is generating, or has just ended and waits to be saved: let it be saved, then exit.
        self.quitting = True
        self.stop()
        host.set_timer(3.0, host.exit)  # in case the runtime does not end the stream

    def drop_all(self) -> list[QueuedSend]:
        """Another profile is chosen: stop the reply, drop the queue; returns the messages that were
        waiting (typed for the other model, handed back to the person)."""
        self.stop()
        self.queue.clear()
        self.current = None
        waiting, self.waiting = self.waiting, []
        self.sends_held = False
        return waiting
