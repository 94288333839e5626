"""See the loop: feedback counts for the profile and the adapters trained from them, with eval numbers.

Counts come from ``engine.feedback.stats.feedback_stats(home, profile)``; adapters from
``home/runs/<profile>/<run>/report.json`` where present (keys run_id, method, eval, promoted).
"""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual import work
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
        given = ev.get("current")
        current = given if isinstance(given, dict) else {}
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


def gate_verdicts(home: Home, profile: str) -> dict[str, str]:
    """What the finetune gate said about each run (engine.runs.RunSummary.verdict): the words F4 shows."""
    from engine.runs import run_summaries

    return {run.run_id: run.verdict for run in run_summaries(home, profile)}


IN_USE_UNKNOWN = object()


def adapters_view(home: Home, profile: str, in_use=IN_USE_UNKNOWN) -> Group:
    """One block per run: id, method, promoted or not by the gate, eval numbers; ● marks the adapter
    the app replies with (``in_use``: a run id, None for the base model; by default the profile's
    promoted.json pointer, which is what the app loads at start)."""
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
    from engine.runs import run_summaries

    summaries = run_summaries(home, profile)
    if not summaries:
        parts.append(Text(f"no training runs yet (run `engine finetune --profile {profile}`)"))
        return Group(*parts)
    for run in summaries:
        in_use = Text(" ● in use", style="green") if run.run_id == current else Text("")
        if run.problem:
            parts.append(Text(f"{run.run_id}: {run.problem}", style="red"))
            continue
        if not run.finished:
            parts.append(Text.assemble(f"{run.run_id}: no report yet", in_use))
            continue
        report = run.report
        verdict = "promoted" if report.get("promoted") else "not promoted"
        parts.append(Text.assemble((run.run_id, "bold"), f" {report.get('method', '?')} {verdict}", in_use))
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

    loaded = False
    """True once the counts and the adapters are shown (they are read in a worker: replaying a long log
    and reading every run's report must not freeze the app)."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"[b]Feedback for {escape(self.profile)}[/b]")
            yield Static("reading the feedback log…", id="stats")
            yield Static("\n[b]Adapters[/b]")
            yield Static("reading the runs…", id="adapters")
            yield Static("\n[dim]Esc closes[/dim]")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        stats = stats_table(self.home, self.profile)
        runs = adapters_view(self.home, self.profile, self.in_use)
        self.app.call_from_thread(self._show, stats, runs)

    def _show(self, stats, runs) -> None:
        self.query_one("#stats", Static).update(stats)
        self.query_one("#adapters", Static).update(runs)
        self.loaded = True
