"""The items of the F4 (adapter) and F5 (profile) lists: plain functions of the home, no Textual.

``profile_items`` looks at the file system for every profile (is its model on disk), so the app calls it
in a thread worker; ``adapter_items`` reads small files (promoted.json, each run's report.json).
"""

from __future__ import annotations

from engine.adapters import promoted_run, run_ids
from engine.errors import UserError
from engine.home import Home
from engine.profiles import load_profile, profile_names
from tui.screens.loop import gate_verdicts

BASE = "__base__"
"""The F4 item for the base model (no adapter)."""


def adapter_items(home: Home, profile: str, in_use: str | None) -> list[tuple[str, str]]:
    """F4: the base model, then every run newest first, with its gate verdict; ● in use, ★ newly promoted."""
    try:
        pointer = promoted_run(home, profile)
    except UserError:
        pointer = in_use
    notes: dict[str | None, str] = {None: ""}
    if pointer != in_use:
        notes[pointer] = "  ★ newly promoted"
    notes[in_use] = "  ● in use"
    items = [(BASE, "base model (no adapter)" + notes.get(None, ""))]
    verdicts = gate_verdicts(home, profile)
    for run in reversed(run_ids(home, profile)):
        items.append((run, f"{run}  ({verdicts.get(run, 'no report yet')}){notes.get(run, '')}"))
    return items


def profile_items(home: Home, current: str) -> list[tuple[str, str]]:
    """F5: each profile with its model, whether that is on disk (or the server it talks to), and ● in use."""
    from engine.runtime.availability import hub_offline, profile_availability

    missing = "not on disk, and HF_HUB_OFFLINE=1: cannot download" if hub_offline() else \
        "not on disk: downloads when chosen"
    items = []
    for name in profile_names(home):
        try:
            profile = load_profile(name, home)
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
    return items
