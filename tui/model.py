"""The model the app replies with: loading it, the adapter it uses, promotions offered.

:class:`ModelController` is a plain part the app owns (see tui/host.py). Loading runs the generator factory
in a thread worker (group ``model``; the heavy imports happen there, so the screen paints first), shows its
stage in the status bar and posts :class:`~tui.messages.ModelReady`; the app routes that back here and then
lets the replies start. F4/F6 switch the adapter in a worker (group ``adapter``) and point promoted.json at it;
a promoted.json changed by another process is offered (a notice and F6), never applied silently.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from textual.worker import get_current_worker

from engine.adapters import adapter_path, promoted_run, set_promoted
from engine.errors import UserError
from engine.profiles import Profile
from tui.generator import Generator, GeneratorFactory, Progress
from tui.messages import AdapterActive, ModelNotOnDisk, ModelProgress, ModelReady, PromotedChanged
from tui.promotion import POLL_SECONDS, PromotionWatch
from tui.screens.loop import IN_USE_UNKNOWN

if TYPE_CHECKING:
    from textual.timer import Timer

    from tui.host import ModelHost

STAGE_TICK = 1.0
"""Seconds between updates of a loading stage's elapsed time in the status bar."""
_now = time.monotonic


class ModelController:
    """The loaded model (``lm``, None while loading) and everything about which adapter it replies with."""

    def __init__(self, host: ModelHost, factory: GeneratorFactory) -> None:
        self.host = host
        self.factory = factory
        self.lm: Generator | None = None
        self.loaded_adapters: set[str] = set()
        self.load_note = ""
        """"downloading" (or why it cannot) while the model is not on disk; prefixes the loading stage."""
        self.promotion_watch = PromotionWatch(host.home, host.profile.name)
        self.promoted_offer: str | None = None
        """promoted.json changed to this run (None: base) while the app ran."""
        self.offer_pending = False
        """That change is on offer (F6 in the footer)."""
        self._stage: tuple[str, float] = ("", 0.0)  # the loader's stage and when it began
        self._stage_text = ""  # that stage as the status bar shows it, without the elapsed time
        self._stage_shown = ""  # what the status bar last showed for it (another text there: not ours)
        self._stage_timer: Timer | None = None

    @property
    def adapter_in_use(self) -> Any:
        """The run id the model replies with (None: base model); before it has loaded, IN_USE_UNKNOWN."""
        return self.lm.adapter if self.lm is not None else IN_USE_UNKNOWN

    def forget(self) -> None:
        """Another profile is chosen: its model is loaded next, its promoted.json watched."""
        self.promotion_watch = PromotionWatch(self.host.home, self.host.profile.name)
        self.offer_pending = False
        self.lm = None

    # ---- loading ---------------------------------------------------------------------------------
    def begin(self) -> None:
        """At start, once the screen shows the profile (the loader imports torch, which holds the GIL for long
        stretches and would delay a frame by most of a second): load the model, watch promoted.json."""
        self.host.set_timer(0.05, self.start_loading)
        self.host.set_interval(POLL_SECONDS, self.poll_promoted)

    def start_loading(self) -> None:
        self._stage, self._stage_text, self._stage_shown = ("", 0.0), "", "loading model…"
        self.host.status.load_state = "loading model…"
        self.load_note = ""
        profile = self.host.profile
        self.host.in_thread(lambda: self._load(profile), group="model", name="load_generator")

    def _load(self, profile: Profile) -> None:
        """In the worker: the factory (in a daemon thread), then the promoted adapter; ModelReady up."""
        host = self.host

        def progress(stage: str, fraction: float | None = None) -> None:
            host.post_message(ModelProgress(stage, fraction))

        from engine.runtime.availability import hub_offline, profile_availability

        remote = profile.model.backend == "openai"  # a server answers: nothing to find on this machine
        if not remote and not profile_availability(profile).on_disk:  # said before the loader goes quiet on the network
            host.post_message(ModelNotOnDisk(profile.name, profile.model.id, hub_offline()))

        lm = self._load_in_daemon_thread(profile, progress)
        if lm is None:
            return  # cancelled (the person quit or switched profile): nobody waits for it
        warning = getattr(lm, "note", None)  # the profile did not get the backend it asked for (one line)
        promoted = promoted_run(host.home, profile.name)
        if promoted and getattr(lm, "adapter", None) != promoted:
            try:
                lm.load_adapter(promoted, adapter_path(host.home, profile.name, promoted))
                lm.use_adapter(promoted)
            except UserError as exc:
                warning = f"the promoted adapter could not be used, replying with the base model: {exc}"
        host.post_message(ModelReady(profile.name, lm, warning))

    def _load_in_daemon_thread(self, profile: Profile, progress: Progress) -> Generator | None:
        """Run the factory in a daemon thread and wait for it here, checking for cancellation.

        A model load cannot be interrupted; run directly in the worker it would keep the event
        loop's executor (and so the process) alive after the person quits.
        """
        result: dict[str, Any] = {}
        home = self.host.home

        def target() -> None:
            try:
                result["lm"] = self.factory(profile, home, progress)
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
        lm: Generator = result["lm"]
        return lm

    def progress(self, message: ModelProgress) -> None:
        now = _now()
        if message.stage != self._stage[0]:
            self._stage = (message.stage, now)
        pct = f" {message.fraction * 100:.0f}%" if message.fraction is not None else ""
        self._stage_text = f"{self.load_note or 'loading'}: {message.stage}{pct}"
        self._stage_shown = ""
        self._show_stage(force=True)
        if self._stage_timer is None:
            self._stage_timer = self.host.set_interval(STAGE_TICK, self._show_stage)

    def _show_stage(self, force: bool = False) -> None:
        """The loading stage with how long it has run: a step that reports no fraction of its own (building
        a model from a GGUF file takes tens of seconds on a CPU) visibly goes on instead of sitting at 10%.
        The timer stops once the model is ready or the status bar shows something else (a failure)."""
        status = self.host.status
        if self.lm is not None or not (force or status.load_state == self._stage_shown):
            if self._stage_timer is not None:
                self._stage_timer.stop()
                self._stage_timer = None
            return
        elapsed = _now() - self._stage[1]
        text = self._stage_text + (f" · {elapsed:.0f} s" if elapsed >= 2 else "")
        status.load_state = self._stage_shown = text

    def not_on_disk(self, message: ModelNotOnDisk) -> None:
        host = self.host
        if message.profile != host.profile.name:
            return
        if message.offline:
            self.load_note = "not on disk, HF_HUB_OFFLINE=1"
            host.status.load_state = "not on disk: cannot download (HF_HUB_OFFLINE=1)"
            host.notify(f"{message.model_id} (profile {message.profile}) is not on disk and HF_HUB_OFFLINE=1 "
                        "forbids downloading it: unset HF_HUB_OFFLINE to download it once, or pick another "
                        "profile (F5).", title="Model not available offline", severity="error", timeout=20)
        else:
            self.load_note = "downloading"
            host.status.load_state = "not on disk: downloading from the model hub…"
            host.notify(f"{message.model_id} (profile {message.profile}) is not on disk: downloading it from the "
                        "model hub (once; this can take minutes for a large model).", title="Downloading",
                        timeout=20)

    def ready(self, message: ModelReady) -> bool:
        """The loaded model becomes ``lm``; False for a load of a profile the person switched away from."""
        host = self.host
        if message.profile != host.profile.name:
            return False
        lm: Generator = message.generator
        self.lm = lm
        adapter = getattr(lm, "adapter", None)
        self.loaded_adapters = {adapter} if adapter else set()
        status = host.status
        status.load_state = ""
        status.model = str(getattr(lm, "model_id", host.profile.model.id))
        status.device = str(getattr(lm, "device", ""))
        status.adapter = lm.adapter or "base"
        if message.warning:
            host.notify(message.warning, severity="warning", timeout=10)
        return True

    # ---- adapters --------------------------------------------------------------------------------
    def switch_adapter(self, run_id: str | None) -> None:
        """Reply with ``run_id`` (None: the base model) from now on, and point the profile's promoted.json
        at it (the same as ``engine adapters use``), so the choice lasts past a restart."""
        lm, home, profile = self.lm, self.host.home, self.host.profile.name
        if lm is None:
            return  # (the callers check: the model is still loading)

        def work() -> None:
            if run_id is not None and run_id not in self.loaded_adapters:
                lm.load_adapter(run_id, adapter_path(home, profile, run_id))
                self.loaded_adapters.add(run_id)
            lm.use_adapter(run_id)
            kept: bool | str
            try:
                if promoted_run(home, profile) != run_id:
                    set_promoted(home, profile, run_id, reason="chosen in tuneloop (F4)")
                kept = True
            except (OSError, UserError) as exc:
                kept = str(getattr(exc, "strerror", None) or exc)
            self.host.post_message(AdapterActive(run_id, kept))

        self.host.in_thread(work, group="adapter", name="switch_adapter")

    def adapter_active(self, message: AdapterActive) -> None:
        host = self.host
        host.status.adapter = message.run_id or "base"
        self.offer_pending = False
        host.refresh_bindings()
        what = message.run_id or "the base model"
        if message.kept is True:
            host.notify(f"now replying with {what}; kept for the next start too (runs/{host.profile.name}/promoted.json)")
        else:
            host.notify(f"now replying with {what} in this session only: the choice could not be saved ({message.kept})",
                        severity="warning", timeout=10)

    def poll_promoted(self) -> None:
        """Timer: one stat of promoted.json; read it in a worker only when it changed."""
        if self.promotion_watch.changed():
            home, profile = self.host.home, self.host.profile.name

            def read() -> None:
                try:
                    self.host.post_message(PromotedChanged(profile, promoted_run(home, profile)))
                except UserError as exc:
                    self.host.post_message(PromotedChanged(profile, None, str(exc)))

            self.host.in_thread(read, group="watch", name="read_promoted")

    def promoted_changed(self, message: PromotedChanged) -> None:
        host, lm = self.host, self.lm
        if message.profile != host.profile.name or lm is None:
            return  # another profile's, or the loader is about to read it anyway
        if message.error:
            host.notify(message.error, severity="warning", timeout=10)
            return
        self.promoted_offer = message.run_id
        self.offer_pending = message.run_id != lm.adapter  # else: our own F4 choice
        if self.offer_pending:
            new = message.run_id or "the base model"
            host.notify(f"profile {host.profile.name} now has {new} promoted (you are replying with "
                        f"{lm.adapter or 'the base model'}): press F6 to switch to it, F4 to choose.",
                        title="New adapter", timeout=30)
        host.refresh_bindings()
