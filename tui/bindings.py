"""The app's own key bindings and palette commands, and every remappable binding grouped as the help screen
(F1) shows them."""

from __future__ import annotations

from textual.binding import Binding, BindingType

APP_BINDINGS: list[BindingType] = [
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

PALETTE: list[tuple[str, str, str]] = [
    ("Switch profile", "Load another model profile", "choose_profile"),
    ("Switch adapter", "Base model, the promoted adapter or any trained run", "choose_adapter"),
    ("New conversation", "Start a fresh conversation", "new_conversation"),
    ("Rename conversation", "Give this conversation a title", "rename"),
    ("Feedback and adapters", "Counts since the last training run, eval numbers", "loop"),
    ("Review machine revisions", "Approve or reject the revisions written overnight", "review"),
    ("Keys", "Every key and its id for remapping", "help"),
]
"""The app's entries in the command palette (ctrl+p): title, help, the app action it runs."""


def binding_sections() -> list[tuple[str, list[Binding]]]:
    """Every remappable binding, grouped as the help screen shows them."""
    from tui.screens.compare import CompareScreen
    from tui.screens.edit import EditScreen
    from tui.screens.reason import ReasonScreen
    from tui.screens.review import ReviewScreen
    from tui.widgets.chat_view import CHAT_BINDINGS
    from tui.widgets.composer import Composer

    sections = [("Anywhere", APP_BINDINGS), ("Composer", Composer.BINDINGS),
                ("Message list (selected message)", CHAT_BINDINGS), ("Edit screen", EditScreen.BINDINGS),
                ("Reason screen", ReasonScreen.BINDINGS), ("Compare screen", CompareScreen.BINDINGS),
                ("Review screen (F8)", ReviewScreen.BINDINGS)]
    # (every one is a Binding with an id: the tuple forms Textual also accepts are not used here)
    return [(title, [b for b in bindings if isinstance(b, Binding)]) for title, bindings in sections]


def binding_ids() -> set[str]:
    """The ids a config.toml ``[keys]`` table may remap."""
    return {b.id for _, bindings in binding_sections() for b in bindings if b.id}
