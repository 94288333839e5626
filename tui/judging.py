"""What each judging key does to the selected message: one log event, then the screen follows the log.

A mixin of :class:`tui.app.TuneloopApp` handling :class:`ChatView.Act` and the compare pick.
"""

from __future__ import annotations

import random

from tui.best_of_chat import best_of_n_for
from tui.replies import ReplyJob
from tui.screens.compare import SLOTS, CompareScreen
from tui.screens.edit import EditScreen
from tui.screens.prompt import PromptScreen
from tui.screens.reason import Reason, ReasonScreen
from tui.widgets.chat_view import ChatView


class JudgingMixin:
    async def on_chat_view_act(self, event: ChatView.Act) -> None:
        action, mid = event.action, event.message_id
        if action == "compose":
            self.composer.focus()
            return
        if mid is None:
            self.notify("No message selected yet.", severity="warning")
            return
        msg = self.session.message(mid)
        judge = JUDGES[action]  # ChatView only posts the actions its bindings name
        with self.saving():
            await judge(self, msg)
        await self.refresh_chat()

    def _reply_only(self, msg) -> bool:
        if msg.role != "assistant":
            self.notify("Select a reply (ctrl+up/down) to judge it.", severity="warning")
            return False
        return True

    async def judge_like(self, msg) -> None:
        if self._reply_only(msg):
            self.session.toggle_rating(msg.id, 1)

    async def judge_dislike(self, msg) -> None:
        if self._reply_only(msg):
            self.session.toggle_rating(msg.id, -1)

    async def judge_reason(self, msg) -> None:
        if not self._reply_only(msg):
            return

        async def save(reason: Reason | None) -> None:
            if reason is not None:
                with self.saving():
                    self.session.rate(msg.id, reason.value, reason.tags, reason.comment)
                await self.refresh_chat()

        self.push_screen(ReasonScreen(msg.rating, list(msg.tags), msg.comment), save)

    async def judge_edit(self, msg) -> None:
        if not self._reply_only(msg):
            return
        pending_revision = msg.revision_of is not None and msg.outcome not in ("accepted", "edited")

        async def save(text: str | None) -> None:
            if text is not None:
                with self.saving() as saved:
                    if pending_revision and text == msg.content:  # saved unchanged: accepted as it is
                        self.session.resolve_revision(msg.id, "accepted")
                    elif pending_revision:  # the edit wins, the critique is kept, the revision is chosen
                        self.session.resolve_revision(msg.id, "edited", text)
                    else:
                        self.session.edit(msg.id, text)
                if not saved.ok:
                    self.copy_to_clipboard(text)  # the corrected text is not lost
                    self.notify("Your corrected text is on the clipboard.", severity="warning")
                self.show_original.discard(msg.id)
                await self.refresh_chat()

        self.push_screen(EditScreen(msg.final_text), save)

    async def judge_original(self, msg) -> None:
        if msg.edited is None:
            self.notify("This message has not been edited.")
        else:
            self.show_original ^= {msg.id}

    async def judge_show(self, msg) -> None:
        """Left/right: the chat already selected sibling ``msg``; show it (and the path under it)."""
        self.session.show(msg.id)

    async def judge_pick(self, msg) -> None:
        if not self._reply_only(msg):
            return
        if msg.revision_of is not None and msg.outcome not in ("accepted", "edited"):
            self.session.resolve_revision(msg.id, "accepted")  # the revision over the original (a discarded one too)
            return
        if len(self.session.siblings(msg.id)) < 2:
            self.notify("Nothing to pick from: regenerate (r) first.", severity="warning")
            return
        self.session.pick(msg.id)

    async def judge_critique(self, msg) -> None:
        """Language feedback: a critique in words, then a revision streams in as a sibling of the reply
        (on a revision: another revision of the same original, the critique offered again)."""
        if not self._reply_only(msg) or not self._can_generate():
            return
        original = self.session.message(msg.revision_of) if msg.revision_of else msg
        value = msg.critique or (original.comment if original.rating == -1 else None) or ""
        again = any(s.revision_of == original.id for s in self.session.siblings(original.id))
        sample = again and not self.profile.generation.do_sample

        async def revise(critique: str | None) -> None:
            if critique and self._can_generate():
                overrides = {"do_sample": True} if sample else {}  # another revision must differ
                await self.enqueue(ReplyJob(original.parent_id, overrides=overrides,
                                            revision=(original.id, critique)))
                await self.refresh_chat()

        self.push_screen(PromptScreen("What is wrong with this reply? The model writes a revision "
                                      "(Enter asks for it, Esc cancels).", value), revise)

    async def judge_discard(self, msg) -> None:
        if msg.revision_of is None:
            self.notify("Only a revision can be discarded: press v on a reply to critique it.", severity="warning")
            return
        if msg.outcome in ("accepted", "edited"):
            self.notify("This revision was accepted: pick another reply (p) instead.", severity="warning")
            return
        self.session.resolve_revision(msg.id, "discarded")
        self.chat.selected_id = msg.revision_of

    async def judge_copy(self, msg) -> None:
        self.copy_to_clipboard(msg.final_text)
        self.notify("Copied to the clipboard.")

    def _prompt_of(self, msg) -> str:
        return msg.id if msg.role == "user" else msg.parent_id

    def _can_generate(self) -> bool:
        if self.busy:
            self.notify("Wait for the current reply to finish (Esc stops it).", severity="warning")
            return False
        return True

    async def judge_regenerate(self, msg) -> None:
        """A new sibling reply. A greedy profile would only repeat itself, so regenerations sample
        (fresh seed, the profile's temperature); the record says so."""
        if self._can_generate():
            overrides = {} if self.profile.generation.do_sample else {"do_sample": True}
            await self.enqueue(ReplyJob(self._prompt_of(msg), overrides=overrides))

    async def judge_best_of(self, msg) -> None:
        """n new sibling replies to the same prompt, scored by the reward model (no reward model: one
        reply and a notice). A later pick among them is a ``choice`` of kind ``best_of``."""
        if self._can_generate():
            await self.enqueue(ReplyJob(self._prompt_of(msg), best_of=best_of_n_for(self.profile)))

    async def judge_compare(self, msg) -> None:
        if not self._can_generate():
            return
        if self.lm is None:
            self.notify("The model is still loading.", severity="warning")
            return
        parent = self._prompt_of(msg)
        active = self.lm.adapter
        if active:
            variants = [("base", {}, None), (active, {}, active)]
        else:
            seeds = random.sample(range(1, 10_000), 2)
            variants = [(f"seed {s}", {"seed": s, "do_sample": True}, ...) for s in seeds]
        random.shuffle(variants)
        screen = CompareScreen({slot: label for slot, (label, _, _) in zip(SLOTS, variants)})
        self.push_screen(screen)
        jobs = []
        for slot, (_, overrides, adapter) in zip(SLOTS, variants):
            job = ReplyJob(parent, target=slot, overrides=overrides, screen=screen)
            if adapter is not ...:
                job.adapter = adapter
            jobs.append(job)
        await self.enqueue(*jobs)

    async def on_compare_screen_picked(self, event: CompareScreen.Picked) -> None:
        screen = event.screen
        ids = screen.message_ids
        sources = {ids[s]: screen.sources[s] for s in SLOTS}
        with self.saving() as saved:
            self.session.choose_among(ids[event.slot], [ids[s] for s in SLOTS], "compare", sources)
        if not saved.ok:
            screen.chosen = None  # not saved: the person may pick again
            return
        self.chat.selected_id = ids[event.slot]
        screen.reveal(event.slot)
        await self.refresh_chat()

JUDGES = {
    "like": JudgingMixin.judge_like,
    "dislike": JudgingMixin.judge_dislike,
    "reason": JudgingMixin.judge_reason,
    "edit": JudgingMixin.judge_edit,
    "original": JudgingMixin.judge_original,
    "show": JudgingMixin.judge_show,
    "pick": JudgingMixin.judge_pick,
    "critique": JudgingMixin.judge_critique,
    "discard": JudgingMixin.judge_discard,
    "copy": JudgingMixin.judge_copy,
    "regenerate": JudgingMixin.judge_regenerate,
    "best_of": JudgingMixin.judge_best_of,
    "compare": JudgingMixin.judge_compare,
}
"""What each ``ChatView.Act`` action does: one entry per judging binding (``chat.<action>`` in tui/config.py)."""
