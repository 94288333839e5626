"""The dialogs the function keys open: F1 (keys), F2 (rename), F3 (feedback and adapters), F4 (adapter),
F5 (profile), F8 (the morning review of machine revisions).

:class:`Menus` is a plain part the app owns (see tui/host.py). Lists that take file-system looks (F5: is each
model on disk; F8: the runs' revision files) are computed in thread workers and come back as messages
(:class:`~tui.messages.ProfileList`, :class:`~tui.messages.ReviewList`) that the app routes here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tui.bindings import binding_sections
from tui.choices import BASE, adapter_items, profile_items
from tui.messages import ProfileList, ReviewList
from tui.screens.choose import ChooseScreen
from tui.screens.help import HelpScreen
from tui.screens.loop import LoopScreen
from tui.screens.prompt import PromptScreen
from tui.screens.review import ReviewScreen

if TYPE_CHECKING:
    from tui.host import MenuHost
    from tui.model import ModelController
    from tui.replies import ReplyController


class Menus:
    def __init__(self, host: MenuHost, model: ModelController, replies: ReplyController) -> None:
        self.host = host
        self.model = model
        self.replies = replies

    def help(self, keys: dict[str, str]) -> None:
        """F1: every key and its id, with the config.toml ``[keys]`` remaps in effect."""
        self.host.push_screen(HelpScreen(binding_sections(), keys, self.host.home.config_path))

    def rename(self) -> None:
        """F2: a new title for the open conversation (a ``title`` event)."""
        host = self.host
        conv = host.session.conversation
        if conv is None:
            host.notify("Send a message first; then the conversation can be renamed.", severity="warning")
            return

        async def done(title: str | None) -> None:
            if title:
                with host.saving():
                    host.session.rename(title)
                await host.refresh_chat()

        host.push_screen(PromptScreen("New title for this conversation:", conv.title or ""), done)

    def loop(self) -> None:
        """F3: counts since the last training run, and the adapters (● the one in use)."""
        host = self.host
        host.push_screen(LoopScreen(host.home, host.profile.name, self.model.adapter_in_use))

    def choose_adapter(self) -> None:
        """F4: reply with another adapter (the choice becomes the profile's promoted adapter)."""
        host, lm = self.host, self.model.lm
        if lm is None:
            host.notify("The model is still loading.", severity="warning")
            return
        if self.replies.busy:
            host.notify("Wait for the current reply to finish.", severity="warning")
            return

        def done(choice: str | None) -> None:
            if choice is not None:
                self.model.switch_adapter(None if choice == BASE else choice)

        title = ("Reply with which adapter? (the choice is kept for the next start: it becomes the profile's "
                 "promoted adapter, like `engine adapters use`)")
        items = adapter_items(host.home, host.profile.name, lm.adapter)
        host.push_screen(ChooseScreen(title, items, lm.adapter or BASE), done)

    def choose_profile(self) -> None:
        """F5: each profile with its model, whether that is on disk, and the one in use (listed in a worker)."""
        host = self.host
        home, current = host.home, host.profile.name
        host.in_thread(lambda: host.post_message(ProfileList(profile_items(home, current))), group="profiles",
                       name="list_profiles")

    def profile_list(self, message: ProfileList) -> None:
        host = self.host

        async def done(choice: str | None) -> None:
            if choice == host.profile.name:  # Enter on the profile in use: nothing to reload
                host.notify(f"Already chatting with profile {host.profile.name}.")
            elif choice is not None:
                await host.switch_profile(choice)

        title = f"Switch to which profile? (● is in use: {host.profile.name}; Enter on it keeps it)"
        host.push_screen(ChooseScreen(title, message.items, host.profile.name), done)

    def review(self) -> None:
        """F8: the machine revisions of the profile's runs not reviewed yet (files read in a worker)."""
        from engine.train.revise import log_ids, review_items

        host = self.host
        home, profile = host.home, host.profile.name
        known, revised = log_ids(host.session.state)
        host.in_thread(lambda: host.post_message(ReviewList(profile, review_items(home, profile, known, revised))),
                       group="review", name="list_review")

    def review_list(self, message: ReviewList) -> None:
        host = self.host
        if message.profile != host.profile.name:
            return
        if not message.items:
            host.notify("No machine revisions to review: engine finetune writes them for critiques (👎 with a "
                        "comment) you did not revise in the chat.")
            return
        originals = {i.original_id: host.session.message(i.original_id).final_text for i in message.items}

        def done(_: Any) -> None:
            host.call_later(host.refresh_chat)

        host.push_screen(ReviewScreen(message.items, originals), done)

    def review_judged(self, event: ReviewScreen.Judged) -> None:
        host, item = self.host, event.item
        with host.saving() as saved:
            host.session.review_machine_revision(item.original_id, item.critique, item.revision, item.run_id,
                                                 event.approve)
        if saved.ok and isinstance(host.screen, ReviewScreen):
            host.screen.advance(event.approve)
