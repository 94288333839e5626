"""The run's report: what data was used, the loss curve (drawn in the terminal, and as a PNG when
matplotlib is installed), the gate's comparison and the decision; ``report.json`` for programs.

``report.json`` is written last: its presence marks a run as finished (``runs.RunDir.finished``).
"""

from __future__ import annotations

from pathlib import Path

from engine import runs

BLOCKS = "▁▂▃▄▅▆▇█"


RL_CURVES = ("reward", "kl", "completions/mean_length")
"""What an RL stage logs beside its loss (TRL's names), drawn in the report like the loss."""


def loss_curve(metrics_path: Path, key: str = "loss") -> list[tuple[str, int, float]]:
    """(stage, step, value of ``key``) per logged training step; a step logged twice (after a resume) keeps its
    last value."""
    seen: dict[tuple[str, int], float] = {}
    for rec in runs.read_jsonl(metrics_path):
        if isinstance(rec.get(key), (int, float)) and isinstance(rec.get("step"), int):
            seen[(rec.get("stage", ""), rec["step"])] = float(rec[key])
    return [(stage, step, loss) for (stage, step), loss in seen.items()]


def sparkline(values: list[float], width: int = 60) -> str:
    """A one-line unicode plot; long series are averaged down to ``width`` buckets."""
    if not values:
        return ""
    if len(values) > width:
        size = len(values) / width
        values = [sum(values[int(i * size):int((i + 1) * size)] or [values[-1]]) /
                  max(1, len(values[int(i * size):int((i + 1) * size)])) for i in range(width)]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int((v - lo) / span * (len(BLOCKS) - 1) + 0.5))] for v in values)


def save_png(curve: list[tuple[str, int, float]], path: Path) -> str | None:
    """Draw the loss curve to ``path``; returns a note instead when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "loss.png skipped: matplotlib is not installed (pip install 'tuneloop[plots]')."
    fig, ax = plt.subplots(figsize=(6, 3))
    for stage in dict.fromkeys(s for s, _, _ in curve):
        pts = [(step, loss) for s, step, loss in curve if s == stage]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=stage)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def render(report: dict, curve: list[tuple[str, int, float]], extra: dict | None = None) -> str:
    """The text a person reads at the end of ``engine finetune``."""
    lines = [f"run {report['run_id']} ({report['method']}): {report['steps']} steps"]
    rows = report.get("rows", {})
    lines.append("data: " + ", ".join(f"{k} {v['train']} train / {v['eval']} held out" for k, v in rows.items()
                                      if isinstance(v, dict) and (v.get("train") or v.get("eval"))))
    if report.get("split_note"):
        lines.append("      " + report["split_note"])
    if report.get("adapter_learned"):
        lines.append("      the adapter learned " + report["adapter_learned"] + ".")
    machine = report.get("machine_revisions") or {}
    if machine.get("critiques"):
        lines.append(f"      machine revisions: {machine['revised']} of {machine['critiques']} unrevised critiques "
                     f"revised before training ({', '.join(machine['chosen_by'])}; listed in {machine['file']}; "
                     "--no-machine-revisions leaves them out).")
    if report.get("server"):
        lines.append(f"      model server: {report['server']}")
    if report.get("gguf_lora"):
        lines.append(f"      {report['gguf_lora']}")
    if report.get("stopped"):
        lines.append(f"stopped early: {report['stopped']}")
    for stage in dict.fromkeys(s for s, _, _ in curve):
        values = [loss for s, _, loss in curve if s == stage]
        lines.append(f"loss [{stage}] {values[0]:.3f} {sparkline(values)} {values[-1]:.3f}")
    for name, points in (extra or {}).items():  # RL: reward, KL, reply length per step
        for stage in dict.fromkeys(s for s, _, _ in points):
            values = [v for s, _, v in points if s == stage]
            lines.append(f"{name} [{stage}] {values[0]:.3f} {sparkline(values)} {values[-1]:.3f}")
    if report.get("png_note"):
        lines.append(report["png_note"])
    new, cur = report["eval"].get("new", {}), report["eval"].get("current", {})
    if new:
        lines.append(f"{'metric':<16}{'new':>10}{'current':>10}   ({report.get('current_label', 'current')})")
        for key in new:
            lines.append(f"{key:<16}{_fmt(new[key]):>10}{_fmt(cur.get(key, '-')):>10}")
    reward = (report.get("gate") or {}).get("reward")
    if reward:
        lines.append(f"reward check: skipped ({reward['skipped']})" if "skipped" in reward else
                     f"reward check: new adapter's replies win {reward['win_rate']:.0%} against the current's "
                     f"(reward model {reward.get('reward_run')}, {reward['n']} prompts)")
    rl = (report.get("gate") or {}).get("rl")
    if rl and rl.get("measures"):
        m = rl["measures"]
        lines.append(f"RL checks on {m['prompts']} held-out prompts (reward model {rl.get('reward_run')}, reference "
                     f"{rl.get('reference')}): reward win rate {m['reward_win_rate']:.0%}, length {m['length_new']:.0f} "
                     f"vs {m['length_reference']:.0f} tokens, repeated 4-grams {m['repetition_new']:.0%} vs "
                     f"{m['repetition_reference']:.0%}, KL {m['kl']:.3f} nats/token")
    elif rl and rl.get("skipped"):
        lines.append(f"RL checks: skipped ({rl['skipped']})")
    regression = (report.get("gate") or {}).get("regression")
    if regression:
        lines.append(f"regression check: {regression['changed']} of {regression['known']} ordinary questions the "
                     f"{report.get('current_label', 'current adapter')} answers correctly changed (at most "
                     f"{regression['allowed']} allowed; {regression['prompts']} asked"
                     + (f"; {regression['asked_again']} replies cut before their answer asked again longer"
                        if regression.get("asked_again") else "")
                     + f"); empty or one-word replies {regression['collapsed']} vs {regression['collapsed_reference']}")
        for example in regression.get("examples", [])[:3]:
            lines.append(f"      {example['prompt']!r}: {' '.join(example['now'].split())[:80]!r}")
    refit = (report.get("gate") or {}).get("refit_regression") or {}
    if "changed" in refit:
        lines.append(f"refit on every row: {refit['changed']} of {refit['known']} known answers changed "
                     f"({'kept' if refit['ok'] else 'refused: the candidate is published instead'})")
    context = report.get("in_context") or {}
    if context.get("rows"):
        lines.append(f"context: the rows of {context['rows']} conversation(s) without a system message were trained "
                     "with the profile's system prompt (as the chat asks them).")
    lines.append(("PROMOTED: " if report["promoted"] else "NOT PROMOTED: ") + report["reason"])
    return "\n".join(lines)
