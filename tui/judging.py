"""What each judging key does to the selected message: one log event, then the screen follows the log.

:class:`JudgingController` is a plain part the app owns (see tui/host.py): the app routes each
:class:`~tui.widgets.chat_view.ChatView.Act` and each compare pick here. Keys that ask for new replies
(regenerate, best-of, critique, compare) hand :class:`~tui.jobs.ReplyJob` s to the reply controller.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from engine.feedback import Message
from tui.best_of_chat import best_of_n_for
from tui.jobs import KEEP, Keep, ReplyJob
from tui.screens.compare import SLOTS, CompareScreen
from tui.screens.edit import EditScreen
from tui.screens.prompt import PromptScreen
from tui.screens.reason import Reason, ReasonScreen

if TYPE_CHECKING:
    from tui.host import JudgingHost
    from tui.model import ModelController
    from tui.replies import ReplyController


class JudgingController:
    """The judging keys' effects; ``show_original`` holds the edited replies shown as first written (o)."""

    def __init__(self, host: JudgingHost, replies: ReplyController, model: ModelController) -> None:
        self.host = host
        self.replies = replies
        self.model = model
        self.show_original: set[str] = set()

    async def act(self, action: str, message_id: str | None) -> None:
        """A judging key pressed on ``message_id`` (``ChatView.Act``)."""
        host = self.host
        if action == "compose":
            host.composer.focus()
            return
        if message_id is None:
            host.notify("No message selected yet.", severity="warning")
            return
        msg = host.session.message(message_id)
        judge = JUDGES[action]  # ChatView only posts the actions its bindings name
        with host.saving():
            await judge(self, msg)
        await host.refresh_chat()

    def _reply_only(self, msg: Message) -> bool:
        if msg.role != "assistant":
            self.host.notify("Select a reply (ctrl+up/down) to judge it.", severity="warning")
            return False
        return True

    async def judge_like(self, msg: Message) -> None:
        if self._reply_only(msg):
            self.host.session.toggle_rating(msg.id, 1)

    async def judge_dislike(self, msg: Message) -> None:
        if self._reply_only(msg):
            self.host.session.toggle_rating(msg.id, -1)

    async def judge_reason(self, msg: Message) -> None:
        if not self._reply_only(msg):
            return
        host = self.host

        async def save(reason: Reason | None) -> None:
            if reason is not None:
                with host.saving():
                    host.session.rate(msg.id, reason.value, reason.tags, reason.comment)
                await host.refresh_chat()

        host.push_screen(ReasonScreen(msg.rating, list(msg.tags), msg.comment), save)

    async def judge_edit(self, msg: Message) -> None:
        if not self._reply_only(msg):
            return
        host = self.host
        pending_revision = msg.revision_of is not None and msg.outcome not in ("accepted", "edited")

        async def save(text: str | None) -> None:
            if text is not None:
                with host.saving() as saved:
                    if pending_revision and text == msg.content:  # saved unchanged: accepted as it is
                        host.session.resolve_revision(msg.id, "accepted")
                    elif pending_revision:  # the edit wins, the critique is kept, the revision is chosen
                        host.session.resolve_revision(msg.id, "edited", text)
                    else:
                        host.session.edit(msg.id, text)
                if not saved.ok:
                    host.copy_to_clipboard(text)  # the corrected text is not lost
                    host.notify("Your corrected text is on the clipboard.", severity="warning")
                self.show_original.discard(msg.id)
                await host.refresh_chat()

        host.push_screen(EditScreen(msg.final_text), save)

    async def judge_original(self, msg: Message) -> None:
        if msg.edited is None:
            self.host.notify("This message has not been edited.")
        else:
            self.show_original ^= {msg.id}

    async def judge_show(self, msg: Message) -> None:
        """Left/right: the chat already selected sibling ``msg``; show it (and the path under it)."""
        self.host.session.show(msg.id)

    async def judge_pick(self, msg: Message) -> None:
        if not self._reply_only(msg):
            return
        session = self.host.session
        if msg.revision_of is not None and msg.outcome not in ("accepted", "edited"):
            session.resolve_revision(msg.id, "accepted")  # the revision over the original (a discarded one too)
            return
        if len(session.siblings(msg.id)) < 2:
            self.host.notify("Nothing to pick from: regenerate (r) first.", severity="warning")
            return
        session.pick(msg.id)

    async def judge_critique(self, msg: Message) -> None:
        """Language feedback: a critique in words, then a revision streams in as a sibling of the reply
        (on a revision: another revision of the same original, the critique offered again)."""
        if not self._reply_only(msg) or not self._can_generate():
            return
        host = self.host
        original = host.session.message(msg.revision_of) if msg.revision_of else msg
        value = msg.critique or (original.comment if original.rating == -1 else None) or ""
        again = any(s.revision_of == original.id for s in host.session.siblings(original.id))
        sample = again and not host.profile.generation.do_sample

        async def revise(critique: str | None) -> None:
            if critique and self._can_generate() and original.parent_id is not None:
                overrides = {"do_sample": True} if sample else {}  # another revision must differ
                await self.replies.enqueue(ReplyJob(original.parent_id, overrides=overrides,
                                                    revision=(original.id, critique)))
                await host.refresh_chat()

        host.push_screen(PromptScreen("What is wrong with this reply? The model writes a revision "
                                      "(Enter asks for it, Esc cancels).", value), revise)

    async def judge_discard(self, msg: Message) -> None:
        host = self.host
        if msg.revision_of is None:
            host.notify("Only a revision can be discarded: press v on a reply to critique it.", severity="warning")
            return
        if msg.outcome in ("accepted", "edited"):
            host.notify("This revision was accepted: pick another reply (p) instead.", severity="warning")
            return
        host.session.resolve_revision(msg.id, "discarded")
        host.chat.selected_id = msg.revision_of

    async def judge_copy(self, msg: Message) -> None:
        self.host.copy_to_clipboard(msg.final_text)
        self.host.notify("Copied to the clipboard.")

    def _prompt_of(self, msg: Message) -> str:
        """The user message a new reply to ``msg`` answers (``msg`` itself when it is one)."""
        return msg.id if msg.role == "user" or msg.parent_id is None else msg.parent_id

    def _can_generate(self) -> bool:
        if self.replies.busy:
            self.host.notify("Wait for the current reply to finish (Esc stops it).", severity="warning")
            return False
        return True

    async def judge_regenerate(self, msg: Message) -> None:
        """A new sibling reply. A greedy profile would only repeat itself, so regenerations sample
        (fresh seed, the profile's temperature); the record says so."""
        if self._can_generate():
            overrides = {} if self.host.profile.generation.do_sample else {"do_sample": True}
            await self.replies.enqueue(ReplyJob(self._prompt_of(msg), overrides=overrides))

    async def judge_best_of(self, msg: Message) -> None:
        """n new sibling replies to the same prompt, scored by the reward model (no reward model: one
        reply and a notice). A later pick among them is a ``choice`` of kind ``best_of``."""
        if self._can_generate():
            await self.replies.enqueue(ReplyJob(self._prompt_of(msg), best_of=best_of_n_for(self.host.profile)))

    async def judge_compare(self, msg: Message) -> None:
        if not self._can_generate():
            return
        host, lm = self.host, self.model.lm
        if lm is None:
            host.notify("The model is still loading.", severity="warning")
            return
        parent = self._prompt_of(msg)
        active = lm.adapter
        variants: list[tuple[str, dict[str, Any], str | None | Keep]]
        if active:
            variants = [("base", {}, None), (active, {}, active)]
        else:
            seeds = random.sample(range(1, 10_000), 2)
            variants = [(f"seed {s}", {"seed": s, "do_sample": True}, KEEP) for s in seeds]
        random.shuffle(variants)
        screen = CompareScreen({slot: label for slot, (label, _, _) in zip(SLOTS, variants)})
        host.push_screen(screen)
        jobs = [ReplyJob(parent, target=slot, overrides=overrides, screen=screen, adapter=adapter)
                for slot, (_, overrides, adapter) in zip(SLOTS, variants)]
        await self.replies.enqueue(*jobs)

    async def compare_picked(self, event: CompareScreen.Picked) -> None:
        screen = event.screen
        ids = screen.message_ids
        sources = {ids[s]: screen.sources[s] for s in SLOTS}
        with self.host.saving() as saved:
            self.host.session.choose_among(ids[event.slot], [ids[s] for s in SLOTS], "compare", sources)
        if not saved.ok:
            screen.chosen = None  # not saved: the person may pick again
            return
        self.host.chat.selected_id = ids[event.slot]
        screen.reveal(event.slot)
        await self.host.refresh_chat()


JUDGES: dict[str, Callable[[JudgingController, Message], Awaitable[None]]] = {
    "like": JudgingController.judge_like,
    "dislike": JudgingController.judge_dislike,
    "reason": JudgingController.judge_reason,
    "edit": JudgingController.judge_edit,
    "original": JudgingController.judge_original,
    "show": JudgingController.judge_show,
    "pick": JudgingController.judge_pick,
    "critique": JudgingController.judge_critique,
    "discard": JudgingController.judge_discard,
    "copy": JudgingController.judge_copy,
    "regenerate": JudgingController.judge_regenerate,
    "best_of": JudgingController.judge_best_of,
    "compare": JudgingController.judge_compare,
}
"""What each ``ChatView.Act`` action does: one entry per judging binding (``chat.<action>`` in tui/config.py)."""
