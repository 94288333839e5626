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


def _fmt_eval(ev) -> str:
    """``{"new": {"loss": 1.2}, "current": {...}}`` (engine finetune's shape) or a flat dict of metrics."""
    def flat(d: dict) -> str:
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()
                         if not isinstance(v, (dict, list)))

    if not isinstance(ev, dict):
        return str(ev) if ev is not None else "-"
    nested = [f"{k}: {flat(v)}" for k, v in ev.items() if isinstance(v, dict) and v]
    top = flat(ev)
    return "; ".join(([top] if top else []) + nested) or "-"


def adapter_lines(home: Home, profile: str) -> list[str]:
    root = home.runs_dir(profile)
    if not root.is_dir():
        return ["no training runs yet (run `engine finetune --profile " + escape(profile) + "`)"]
    try:
        current = promoted_run(home, profile)
    except UserError as exc:
        current = None
        lines = [escape(str(exc))]
    else:
        lines = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        report_path = run / "report.json"
        mark = " [green]● in use[/green]" if run.name == current else ""
        if report_path.is_file():
            try:
                report = json.loads(report_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                lines.append(f"{escape(run.name)}: report.json is unreadable")
                continue
            promoted = " promoted" if report.get("promoted") else " not promoted"
            lines.append(f"{escape(str(report.get('run_id', run.name)))} {escape(str(report.get('method', '?')))}"
                         f"{promoted}{mark}\n    eval: {escape(_fmt_eval(report.get('eval')))}"
                         + (f"\n    {escape(str(report['reason']))}" if report.get("reason") else ""))
        else:
            lines.append(f"{escape(run.name)}: no report yet{mark}")
    return lines or ["no training runs yet"]


class LoopScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close", id="loop.close")]

    DEFAULT_CSS = """
    LoopScreen { align: center middle; }
    LoopScreen > VerticalScroll { width: 80%; height: 80%; border: thick $accent; background: $surface; padding: 0 1; }
    """

    def __init__(self, home: Home, profile: str) -> None:
        super().__init__()
        self.home = home
        self.profile = profile

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"[b]Feedback for {escape(self.profile)}[/b]")
            yield Static(stats_table(self.home, self.profile), id="stats")
            yield Static("\n[b]Adapters[/b]")
            yield Static("\n".join(adapter_lines(self.home, self.profile)), id="adapters")
            yield Static("\n[dim]Esc closes[/dim]")
