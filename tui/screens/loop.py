"""See the loop: feedback counts for the profile and the adapters trained from them, with eval numbers.

Counts come from ``engine.feedback.stats.feedback_stats(home, profile)``; adapters from
``home/runs/<profile>/<run>/report.json`` where present (keys run_id, method, eval, promoted).
"""

from __future__ import annotations

import json

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.adapters import promoted_run
from engine.errors import UserError
from engine.home import Home


def stats_table(home: Home, profile: str):
    """Counts as a table: one row per kind, columns "total" and "since last run"."""
    try:
        from engine.feedback.stats import feedback_stats

        stats = feedback_stats(home, profile)
    except (ImportError, UserError) as exc:
        return Text(f"feedback counts unavailable: {exc}")
    total = stats.get("total") or {}
    since = stats.get("since_last_run") or {}
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("")
    table.add_column("total", justify="right")
    table.add_column("since last run", justify="right")
    for key, value in total.items():
        table.add_row(str(key).replace("_", " "), str(value), str(since.get(key, "-")))
    notes = []
    last = stats.get("last_run")
    notes.append(f"last training run: {last['run_id']}" if last else "no training run yet: everything is new")
    if stats.get("problems"):
        notes.append(f"{stats['problems']} problem(s) reading the log")
    notes += list(stats.get("warnings") or [])
    return Group(table, Text("\n".join(notes), style="dim"))


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def eval_table(ev) -> Table | Text:
    """engine finetune's ``{"new": {metric: v}, "current": {...}}`` as metric / new / current rows;
    any other shape as one line."""
    if isinstance(ev, dict) and isinstance(ev.get("new"), dict):
        current = ev.get("current") if isinstance(ev.get("current"), dict) else {}
        table = Table(box=None, show_header=True, header_style="dim", pad_edge=False, padding=(0, 2))
        table.add_column("    metric")
        table.add_column("new", justify="right")
        table.add_column("current", justify="right")
        for key, value in ev["new"].items():
            if not isinstance(value, (dict, list)):
                table.add_row(f"    {key}", _num(value), _num(current.get(key, "-")))
        return table
    if isinstance(ev, dict):
        return Text("    eval: " + (", ".join(f"{k}={_num(v)}" for k, v in ev.items()) or "-"))
    return Text(f"    eval: {ev if ev is not None else '-'}")


def gate_verdict(home: Home, profile: str, run_id: str) -> str:
    """What the finetune gate said about a run, from its report.json: the words F3 and F4 show."""
    path = home.run_dir(profile, run_id) / "report.json"
    if not path.is_file():
        return "no report yet"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return "report unreadable"
    return "passed the gate" if report.get("promoted") else "refused by the gate"


IN_USE_UNKNOWN = object()


def adapters_view(home: Home, profile: str, in_use=IN_USE_UNKNOWN) -> Group:
    """One block per run: id, method, promoted or not by the gate, eval numbers; ● marks the adapter
    the app replies with (``in_use``: a run id, None for the base model; by default the profile's
    promoted.json pointer, which is what the app loads at start)."""
    root = home.runs_dir(profile)
    parts: list = []
    try:
        pointer = promoted_run(home, profile)
    except UserError as exc:
        pointer = None
        parts.append(Text(str(exc), style="red"))
    current = pointer if in_use is IN_USE_UNKNOWN else in_use
    parts.append(Text.assemble("replying with: ", (current or "the base model (no adapter)", "bold green")))
    if pointer != current:
        parts.append(Text(f"promoted.json points at {pointer or 'the base model'} (used at the next start; "
                          "F6 or F4 switches now)", style="yellow"))
    if not root.is_dir():
        parts.append(Text(f"no training runs yet (run `engine finetune --profile {profile}`)"))
        return Group(*parts)
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        in_use = Text(" ● in use", style="green") if run.name == current else Text("")
        report_path = run / "report.json"
        if not report_path.is_file():
            parts.append(Text.assemble(f"{run.name}: no report yet", in_use))
            continue
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            parts.append(Text(f"{run.name}: report.json is unreadable", style="red"))
            continue
        verdict = "promoted" if report.get("promoted") else "not promoted"
        parts.append(Text.assemble((str(report.get("run_id", run.name)), "bold"),
                                   f" {report.get('method', '?')} {verdict}", in_use))
        parts.append(eval_table(report.get("eval")))
        if report.get("reason"):
            parts.append(Text(f"    {report['reason']}", style="dim"))
    return Group(*(parts or [Text("no training runs yet")]))


class LoopScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close", id="loop.close")]

    DEFAULT_CSS = """
    LoopScreen { align: center middle; }
    LoopScreen > VerticalScroll { width: 80%; height: 80%; border: thick $accent; background: $surface; padding: 0 1; }
    """

    def __init__(self, home: Home, profile: str, in_use=IN_USE_UNKNOWN) -> None:
        super().__init__()
        self.home = home
        self.profile = profile
        self.in_use = in_use

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"[b]Feedback for {escape(self.profile)}[/b]")
            yield Static(stats_table(self.home, self.profile), id="stats")
            yield Static("\n[b]Adapters[/b]")
            yield Static(adapters_view(self.home, self.profile, self.in_use), id="adapters")
            yield Static("\n[dim]Esc closes[/dim]")
