"""Model work in background threads: loading, replies (one at a time, queued), adapter switches.

Harlequin-style: each job is a named thread worker (``exclusive``, ``exit_on_error=False``) whose
results come back as messages (tui.messages); failures reach the app's single
``Worker.StateChanged`` handler, which shows them in an error modal. This is a mixin of
:class:`tui.app.TuneloopApp`; it owns the reply queue and the stream handle that Esc cancels.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.worker import get_current_worker

from engine.adapters import adapter_path, promoted_run, set_promoted
from engine.errors import UserError
from engine.profiles import Profile
from tui.best_of_chat import no_reward_notice, run_best_of
from tui.generator import build_params
from tui.messages import (
    AdapterActive,
    BestOfFinished,
    ModelNotOnDisk,
    ModelProgress,
    ModelReady,
    Notice,
    PromotedChanged,
    ReplyFinished,
    ReplyProgress,
)
from tui.widgets.message_view import Shown

PROGRESS_EVERY = 0.033
"""Seconds between progress messages of a fast reply (the first piece is posted at once): the screen
updates ~30 times a second however fast the model is, so keys never queue behind per-token work."""
STAGE_TICK = 1.0
"""Seconds between updates of a loading stage's elapsed time in the status bar."""
_now = time.monotonic
STATUS_EVERY = 0.25
"""Seconds between live tokens/s updates in the status bar."""

GENERATING = "[b]Assistant[/b] [dim]generating… (Esc stops)[/dim]"
KEEP = object()  # a job that leaves the active adapter alone
_keys = itertools.count(1)


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


@dataclass
class ReplyJob:
    """One reply to generate for ``parent_id`` (a user message)."""

    parent_id: str
    target: str = "chat"
    """``chat`` (streams into the message list) or a compare slot ``A``/``B``."""
    overrides: dict[str, Any] = field(default_factory=dict)
    adapter: Any = KEEP
    """Adapter to use for this reply only (compare: None = base); restored afterwards."""
    screen: Any = None
    best_of: int = 1
    """Above 1 (chat only): that many sampled replies, scored by the reward model, become siblings."""
    key: str = field(default_factory=lambda: f"reply-{next(_keys)}")
    stop_requested: bool = False
    """Esc was pressed: a best-of job starts no further candidate."""
    revision: tuple[str, str] | None = None
    """(original reply id, critique): a revision of that reply after the critique (language feedback);
    ``parent_id`` is then the original's parent, so the revision becomes its sibling."""


@dataclass
class QueuedSend:
    """A message typed and sent (Enter) while a reply was generating: it waits, shown as queued, and is
    sent as its own turn when the replies before it are done (never joined to the next text typed)."""

    conversation_id: str
    text: str
    key: str = field(default_factory=lambda: f"queued-{next(_keys)}")


class RepliesMixin:
    """Needs on the app: home, profile, session, lm, chat, status, show_error, refresh_chat."""

    def init_replies(self) -> None:
        self.lm = None
        self.queue: list[ReplyJob] = []
        self.current: ReplyJob | None = None
        self.active_stream = None
        self.loaded_adapters: set[str] = set()
        self.load_note = ""  # "downloading" while the model comes from the hub
        self.promoted_offer: str | None = None  # promoted.json changed to this run (None: base) while the app ran
        self.offer_pending = False
        self.best_of_warned: set[str] = set()  # profiles told once that best-of needs a reward model
        self._status_at = 0.0  # when the status bar's live tokens/s last changed
        self._stage: tuple[str, float] = ("", 0.0)  # the model loader's stage and when it began
        self._stage_text = ""  # that stage as the status bar shows it, without the elapsed time
        self._stage_shown = ""  # what the status bar last showed for it (another text there: not ours)
        self._stage_timer = None
        self.waiting: list[QueuedSend] = []  # messages typed while busy, sent one by one afterwards
        self.sends_held = False  # a reply failed: the waiting messages wait for the person (Enter)
        self.given_back: tuple[str | None, str] = (None, "")  # (message, text) put back after its reply failed

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.queue)

    # ---- loading ---------------------------------------------------------------------------------
    def start_loading(self) -> None:
        self._stage, self._stage_text, self._stage_shown = ("", 0.0), "", "loading model…"
        self.status.load_state = "loading model…"
        self.load_note = ""
        self.load_generator(self.profile)

    @work(thread=True, exclusive=True, exit_on_error=False, group="model")
    def load_generator(self, profile: Profile) -> None:
        def progress(stage: str, fraction: float | None = None) -> None:
            self.post_message(ModelProgress(stage, fraction))

        from engine.runtime.availability import hub_offline, profile_availability

        remote = profile.model.backend == "openai"  # a server answers: nothing to find on this machine
        if not remote and not profile_availability(profile).on_disk:  # said before the loader goes quiet on the network
            self.post_message(ModelNotOnDisk(profile.name, profile.model.id, hub_offline()))

        lm = self._load_in_daemon_thread(profile, progress)
        if lm is None:
            return  # cancelled (the person quit or switched profile): nobody waits for it
        warning = getattr(lm, "note", None)  # the profile did not get the backend it asked for (one line)
        promoted = promoted_run(self.home, profile.name)
        if promoted and getattr(lm, "adapter", None) != promoted:
            try:
                lm.load_adapter(promoted, adapter_path(self.home, profile.name, promoted))
                lm.use_adapter(promoted)
            except UserError as exc:
                warning = f"the promoted adapter could not be used, replying with the base model: {exc}"
        self.post_message(ModelReady(profile.name, lm, warning))

    def _load_in_daemon_thread(self, profile: Profile, progress):
        """Run the factory in a daemon thread and wait for it here, checking for cancellation.

        A model load cannot be interrupted; run directly in the worker it would keep the event
        loop's executor (and so the process) alive after the person quits.
        """
        result: dict = {}

        def target() -> None:
            try:
                result["lm"] = self.generator_factory(profile, self.home, progress)
            except BaseException as exc:  # handed to the worker, which reports it
                result["error"] = exc

        thread = threading.Thread(target=target, name="tuneloop-load-model", daemon=True)
        thread.start()
        worker = get_current_worker()
        while thread.is_alive():
            thread.join(0.1)
            if worker.is_cancelled:
                return None
        if "error" in result:
            raise result["error"]
        return result["lm"]

    def on_model_progress(self, message: ModelProgress) -> None:
        now = _now()
        if message.stage != self._stage[0]:
            self._stage = (message.stage, now)
        pct = f" {message.fraction * 100:.0f}%" if message.fraction is not None else ""
        self._stage_text = f"{self.load_note or 'loading'}: {message.stage}{pct}"
        self._stage_shown = ""
        self._show_stage(force=True)
        if self._stage_timer is None:
            self._stage_timer = self.set_interval(STAGE_TICK, self._show_stage)

    def _show_stage(self, force: bool = False) -> None:
        """The loading stage with how long it has run: a step that reports no fraction of its own (building
        a model from a GGUF file takes tens of seconds on a CPU) visibly goes on instead of sitting at 10%.
        The timer stops once the model is ready or the status bar shows something else (a failure)."""
        if self.lm is not None or not (force or self.status.load_state == self._stage_shown):
            if self._stage_timer is not None:
                self._stage_timer.stop()
                self._stage_timer = None
            return
        elapsed = _now() - self._stage[1]
        text = self._stage_text + (f" · {elapsed:.0f} s" if elapsed >= 2 else "")
        self.status.load_state = self._stage_shown = text

    def on_model_not_on_disk(self, message: ModelNotOnDisk) -> None:
        if message.profile != self.profile.name:
            return
        if message.offline:
            self.load_note = "not on disk, HF_HUB_OFFLINE=1"
            self.status.load_state = "not on disk: cannot download (HF_HUB_OFFLINE=1)"
            self.notify(f"{message.model_id} (profile {message.profile}) is not on disk and HF_HUB_OFFLINE=1 "
                        "forbids downloading it: unset HF_HUB_OFFLINE to download it once, or pick another "
                        "profile (F5).", title="Model not available offline", severity="error", timeout=20)
        else:
            self.load_note = "downloading"
            self.status.load_state = "not on disk: downloading from the model hub…"
            self.notify(f"{message.model_id} (profile {message.profile}) is not on disk: downloading it from the "
                        "model hub (once; this can take minutes for a large model).", title="Downloading",
                        timeout=20)

    async def on_model_ready(self, message: ModelReady) -> None:
        if message.profile != self.profile.name:
            return  # a load for a profile the person has switched away from
        self.lm = message.generator
        self.loaded_adapters = {self.lm.adapter} if getattr(self.lm, "adapter", None) else set()
        self.status.load_state = ""
        self.status.model = str(getattr(self.lm, "model_id", self.profile.model.id))
        self.status.device = str(getattr(self.lm, "device", ""))
        self.status.adapter = self.lm.adapter or "base"
        if message.warning:
            self.notify(message.warning, severity="warning", timeout=10)
        await self.pump()

    # ---- replies ---------------------------------------------------------------------------------
    async def enqueue(self, *jobs: ReplyJob) -> None:
        self.queue.extend(jobs)
        started = self._start_next()  # before any drawing: the model works while the screen updates
        for job in jobs:
            if job.target == "chat":
                if job is started:
                    header = GENERATING
                elif self.lm:
                    header = "[b]Assistant[/b] [dim]…[/dim]"
                else:
                    header = "[b]Assistant[/b] [yellow]waiting for the model to load…[/yellow]"
                await self.chat.begin_stream(job.key, header)

    async def pump(self) -> None:
        """Start the next queued reply if the model is ready and nothing is generating; when no reply is
        left to generate, send the next message typed meanwhile (unless a failure holds them)."""
        job = self._start_next()
        if job is not None and job.target == "chat" and (view := self.chat.stream_view(job.key)) is not None:
            await view.show(Shown(None, "assistant", "", GENERATING))
        if not self.busy and self.waiting and not self.sends_held and self.lm is not None:
            queued = self.waiting.pop(0)
            await self.send_now(queued.conversation_id, queued.text)

    async def send_now(self, conversation_id: str, text: str) -> bool:
        """Write the user message and queue its reply; a message that cannot be saved goes back to the composer."""
        with self.saving() as saved:
            user = self.session.add_user(text, conversation_id)
        if not saved.ok:
            self.composer.give_back(text)  # nothing typed is lost
            return False
        # Start the reply before drawing the message: the model works while the screen catches up.
        await self.enqueue(ReplyJob(user.id, best_of=self.profile.generation.best_of))
        await self.refresh_chat()
        return True

    def _start_next(self) -> ReplyJob | None:
        if self.current is not None or not self.queue or self.lm is None:
            return None
        job = self.current = self.queue.pop(0)
        if job.revision is not None:
            original_id, critique = job.revision
            messages = self.session.revision_prompt_for(original_id, critique, self.profile.revision_prompt)
        else:
            messages = self.session.prompt_for(job.parent_id)
        self.generate(job, messages)
        return job

    @work(thread=True, exclusive=True, exit_on_error=False, group="reply")
    def generate(self, job: ReplyJob, messages: list[dict]) -> None:
        lm = self.lm
        restore = KEEP
        if job.adapter is not KEEP:
            restore = lm.adapter
            lm.use_adapter(job.adapter)
        try:
            params = build_params(self.profile, **job.overrides)
            note = ""
            if job.best_of > 1 and job.target == "chat":
                candidates = self._best_of(lm, job, messages, params)
                if candidates is not None:
                    self.post_message(BestOfFinished(job.key, [(c.text, c.record) for c in candidates]))
                    return
                # what the notice says, the header says too (each progress carries it: they replace each other)
                note = f"best of {job.best_of}: no reward model yet, replying once"
                self.post_message(ReplyProgress(job.key, "", note=note))
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
                    self.post_message(ReplyProgress(job.key, "".join(parts), pieces, now - first, note=note))
            text = "".join(parts)
            record = dict(stream.record)
        finally:
            self.active_stream = None
            if restore is not KEEP:
                lm.use_adapter(restore)
        self.post_message(ReplyFinished(job.key, text, record))

    def _best_of(self, lm, job: ReplyJob, messages: list[dict], params):
        """In the reply worker: n candidates best first, or None (no reward model: one reply instead)."""
        n, profile = job.best_of, self.profile

        def on_stream(stream, index: int) -> None:
            self.active_stream = stream
            self.post_message(ReplyProgress(job.key, "", note=f"best of {n}: reply {index + 1}/{n}"))

        posted = [0.0]

        def on_text(index: int, text: str, pieces: int, seconds: float) -> None:
            now = time.monotonic()
            if pieces == 1 or now - posted[0] >= PROGRESS_EVERY:
                posted[0] = now
                self.post_message(ReplyProgress(job.key, text, pieces, seconds, note=f"best of {n}: reply {index + 1}/{n}"))

        self.post_message(ReplyProgress(job.key, "", note=f"best of {n}: preparing the reward model"))
        candidates = run_best_of(lm, self.home, profile, messages, n, params, on_stream, on_text,
                                 lambda: job.stop_requested)
        if candidates is None and profile.name not in self.best_of_warned:
            self.best_of_warned.add(profile.name)
            self.post_message(Notice(no_reward_notice(profile.name, n), "warning"))
        return candidates

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, severity=message.severity, timeout=10)

    async def on_reply_progress(self, message: ReplyProgress) -> None:
        job = self.current
        if job is None or job.key != message.key:
            return
        now = time.monotonic()
        if message.seconds > 0.5 and now - self._status_at >= STATUS_EVERY:
            self._status_at = now
            self.status.tokens_per_s = (message.pieces - 1) / message.seconds  # exact rate on finish
        if job.target == "chat":
            if (view := self.chat.stream_view(job.key)) is not None:
                if message.note and message.note not in view.shown.header:
                    await view.show(Shown(None, "assistant", "", f"[b]Assistant[/b] [dim]{message.note}… (Esc stops)[/dim]"))
                await view.stream_to(message.text)
        elif job.screen is not None and job.screen.is_attached:
            await job.screen.progress(job.target, message.text)

    async def on_reply_finished(self, message: ReplyFinished) -> None:
        job = self.current
        if job is None or job.key != message.key:
            return
        record = {"profile": self.profile.name, **message.record}
        with self.saving() as saved:
            if job.revision is not None:
                original_id, critique = job.revision
                msg = self.session.add_revision(original_id, message.text, record, critique,
                                                self.profile.revision_prompt)
            else:
                msg = self.session.add_reply(job.parent_id, message.text, record, show=job.target == "chat")
        self.current = None
        if not saved.ok:
            await self._reply_not_saved(job)
            return
        self.show_speed(record)
        if job.target == "chat":
            self.sends_held = False  # replies come again: the waiting messages may go
            if self.given_back[0] == job.parent_id and self.composer.text.strip() == self.given_back[1]:
                self.composer.clear()  # answered after all (r on it): the copy in the composer is not needed
            self.given_back = (None, "")
            await self.chat.end_streams()
            self.chat.selected_id = msg.id
        elif job.screen is not None and job.screen.is_attached:
            await job.screen.finished(job.target, msg.id, message.text)
        await self._reply_done()

    async def on_best_of_finished(self, message: BestOfFinished) -> None:
        """Every candidate becomes a sibling reply (written best first); the reward model's favourite is shown."""
        job = self.current
        if job is None or job.key != message.key:
            return
        ids = []
        with self.saving():
            for text, record in message.candidates:
                msg = self.session.add_reply(job.parent_id, text, {"profile": self.profile.name, **record}, show=False)
                ids.append(msg.id)
        self.current = None
        await self.chat.end_streams()
        if ids:
            self.session.show(ids[0])
            self.chat.selected_id = ids[0]
            self.show_speed(message.candidates[0][1])
        await self._reply_done()

    def show_speed(self, record: dict) -> None:
        """The status bar's speed after a reply: decoding speed, and the time to the first token apart."""
        rate = decode_rate(record)
        if rate is not None:
            self.status.tokens_per_s = rate
        ttft = record.get("ttft_s")
        self.status.first_token_s = float(ttft) if isinstance(ttft, (int, float)) else None

    async def _reply_not_saved(self, job: ReplyJob) -> None:
        """The reply could not be written (the notice says why): it is not shown as a stored message;
        a compare whose reply is missing cannot be judged, so its screen closes."""
        if job.target == "chat":
            await self.chat.end_streams()
        else:
            self.queue = [j for j in self.queue if j.screen is not job.screen]
            if job.screen is not None and job.screen.is_current:
                job.screen.dismiss(None)
        await self._reply_done()

    async def _reply_done(self) -> None:
        if getattr(self, "quitting", False):
            self.exit()
            return
        await self.refresh_chat()
        await self.pump()

    async def reply_failed(self) -> None:
        """The reply worker raised: drop the job (the error modal says why) and go on. A message left with
        no reply (a server that is down) is marked so on screen, its text goes back to the composer (Enter
        sends it again, in its place), and messages typed meanwhile are held, not sent into the failure."""
        job = self.current
        self.current = None
        self.active_stream = None
        await self.chat.end_streams()
        if job is not None and job.target == "chat" and job.revision is None:
            msg = self.session.message(job.parent_id)
            if self.session.unanswered(msg) and not any(j.parent_id == msg.id for j in self.queue):
                self.sends_held = bool(self.waiting)
                if not self.composer.text.strip():
                    self.composer.give_back(msg.final_text)
                    self.given_back = (msg.id, msg.final_text)
        await self.refresh_chat()
        await self.pump()

    async def action_quit(self) -> None:
        """Quit; a reply being generated is stopped first so its partial text is saved. Messages still
        queued are not sent: the first ctrl+q says so, the second quits."""
        if self.waiting and not getattr(self, "quit_warned", False):
            self.quit_warned = True
            self.notify(f"{len(self.waiting)} message(s) you queued are not sent yet: ctrl+q again quits "
                        "without them.", severity="warning", timeout=10)
            return
        if self.active_stream is None and self.current is None:
            self.exit()
            return
        # A reply is generating, or has just ended and waits to be saved: let it be saved, then exit.
        self.quitting = True
        if self.current is not None:
            self.current.stop_requested = True  # a best-of job starts no further candidate
        if self.active_stream is not None:
            self.active_stream.cancel()
        self.set_timer(3.0, self.exit)  # in case the runtime does not end the stream

    def action_stop(self) -> None:
        """Esc: stop the reply within one token; the partial text is saved, marked stopped."""
        if self.current is not None:
            self.current.stop_requested = True
        if self.active_stream is not None:
            self.active_stream.cancel()

    # ---- adapters --------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="adapter")
    def switch_adapter(self, run_id: str | None) -> None:
        """Reply with ``run_id`` (None: the base model) from now on, and point the profile's promoted.json
        at it (the same as ``engine adapters use``), so the choice lasts past a restart."""
        lm, profile = self.lm, self.profile.name
        if run_id is not None and run_id not in self.loaded_adapters:
            lm.load_adapter(run_id, adapter_path(self.home, profile, run_id))
            self.loaded_adapters.add(run_id)
        lm.use_adapter(run_id)
        kept = None
        try:
            if promoted_run(self.home, profile) != run_id:
                set_promoted(self.home, profile, run_id, reason="chosen in tuneloop (F4)")
            kept = True
        except (OSError, UserError) as exc:
            kept = str(getattr(exc, "strerror", None) or exc)
        self.post_message(AdapterActive(run_id, kept))

    def on_adapter_active(self, message: AdapterActive) -> None:
        self.status.adapter = message.run_id or "base"
        self.offer_pending = False
        self.refresh_bindings()
        what = message.run_id or "the base model"
        if message.kept is True:
            self.notify(f"now replying with {what}; kept for the next start too (runs/{self.profile.name}/promoted.json)")
        else:
            self.notify(f"now replying with {what} in this session only: the choice could not be saved ({message.kept})",
                        severity="warning", timeout=10)

    def poll_promoted(self) -> None:
        """Timer: one stat of promoted.json; read it in a worker only when it changed."""
        if self.promotion_watch.changed():
            self.read_promoted(self.profile.name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="watch")
    def read_promoted(self, profile: str) -> None:
        try:
            self.post_message(PromotedChanged(profile, promoted_run(self.home, profile)))
        except UserError as exc:
            self.post_message(PromotedChanged(profile, None, str(exc)))

    def on_promoted_changed(self, message: PromotedChanged) -> None:
        if message.profile != self.profile.name or self.lm is None:
            return  # another profile's, or the loader is about to read it anyway
        if message.error:
            self.notify(message.error, severity="warning", timeout=10)
            return
        self.promoted_offer = message.run_id
        self.offer_pending = message.run_id != self.lm.adapter  # else: our own F4 choice
        if self.offer_pending:
            new = message.run_id or "the base model"
            self.notify(f"profile {self.profile.name} now has {new} promoted (you are replying with "
                        f"{self.lm.adapter or 'the base model'}): press F6 to switch to it, F4 to choose.",
                        title="New adapter", timeout=30)
        self.refresh_bindings()
