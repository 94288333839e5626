"""The parts a person reads: the gate's decision, the terminal loss curve, progress lines."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

from engine import runs
from engine.train import gate, report


def test_gate_promotes_only_when_not_worse_by_the_margin():
    cur = {"pref_accuracy": 0.5, "dpo_loss": 0.69, "liked_logprob": -5.0}
    ok = gate.decide({"pref_accuracy": 0.9, "dpo_loss": 0.3, "liked_logprob": -9.0}, cur, ["dpo"], 0.0)
    assert ok.promote and "pref_accuracy (margin 0), dpo_loss (margin 0)" in ok.reason  # liked_logprob is not an sft run's check here
    worse = gate.decide({"pref_accuracy": 0.45, "dpo_loss": 0.5}, cur, ["dpo"], 0.0)
    assert not worse.promote and "pref_accuracy is lower than the current adapter's (0.4500 vs 0.5000" in worse.reason
    assert gate.decide({"pref_accuracy": 0.45, "dpo_loss": 0.5}, cur, ["dpo"], 0.0, 0.1).promote
    # a log-prob allowance of 1 nat does not let an accuracy fall: each metric has the margin of its unit
    fell = gate.decide({"pref_accuracy": 0.0, "dpo_loss": 1.2}, cur, ["dpo"], 1.0, 0.0)
    assert not fell.promote and "pref_accuracy is lower" in fell.reason and "margin 0)" in fell.reason
    assert gate.decide({"pref_accuracy": 0.5, "dpo_loss": 1.2}, cur, ["dpo"], 1.0, 0.0).promote
    sft = gate.decide({"liked_logprob": -5.2}, cur, ["sft"], 0.0)
    assert not sft.promote and "liked_logprob is lower" in sft.reason
    assert not gate.decide({}, {}, ["sft"], 0.0).promote


def test_nothing_else_breaks_is_a_check_only_with_its_own_margin():
    cur = {"liked_logprob": -2.0, "kept_logprob": -0.4}
    broke = {"liked_logprob": -1.0, "kept_logprob": -1.3}  # learned the feedback, lost the model's own answers
    assert gate.decide(broke, cur, ["sft"], 1.0).promote  # no gate_kept_margin: measured, not a check
    refused = gate.decide(broke, cur, ["sft"], 1.0, kept_margin=0.5)
    assert not refused.promote and "kept_logprob is lower than the current adapter's (-1.3000 vs -0.4000, margin 0.5)" \
        in refused.reason
    kept = gate.decide({"liked_logprob": -1.0, "kept_logprob": -0.6}, cur, ["sft"], 1.0, kept_margin=0.5)
    assert kept.promote and "kept_logprob (margin 0.5)" in kept.reason


def test_report_draws_the_loss_curve_and_keeps_the_last_value_of_a_repeated_step(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    for step, loss in [(1, 4.0), (2, 3.0), (3, 2.5), (2, 3.1), (3, 2.4), (4, 1.0)]:  # steps 2-3 again after a resume
        runs.append_jsonl(metrics, {"stage": "sft", "step": step, "loss": loss})
    with open(metrics, "a") as f:
        f.write('{"stage": "sft", "step": 5, "lo')  # torn last line from a kill
    curve = report.loss_curve(metrics)
    assert [(s, loss) for _, s, loss in curve] == [(1, 4.0), (2, 3.1), (3, 2.4), (4, 1.0)]
    line = report.sparkline([c[2] for c in curve])
    assert line[0] == "█" and line[-1] == "▁" and len(line) == 4
    assert len(report.sparkline([float(i % 7) for i in range(500)], width=60)) == 60
    text = report.render({"run_id": "r1", "method": "sft", "steps": 4, "rows": {"sft": {"train": 3, "eval": 1}},
                          "eval": {"new": {"loss": 1.0}, "current": {"loss": 2.0}}, "promoted": True,
                          "reason": "not worse", "stopped": "time budget reached"}, curve)
    assert "sft 3 train / 1 held out" in text and "stopped early: time budget reached" in text
    assert "loss [sft] 4.000 █" in text and "PROMOTED: not worse" in text
    note = report.save_png(curve, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").is_file() if note is None else "matplotlib is not installed" in note


def _state(step, total=10, tokens=0):
    return SimpleNamespace(global_step=step, max_steps=total, num_input_tokens_seen=tokens, epoch=step / total)


def test_progress_plain_lines_and_rich_bar_both_show_step_loss_and_budget():
    from engine.train.progress_callback import ProgressCallback

    args, control = SimpleNamespace(), SimpleNamespace()
    out = io.StringIO()
    cb = ProgressCallback("dpo", runs.Deadline.from_options("1h", None), stream=out, tty=False, plain_every=0)
    cb.on_train_begin(args, _state(0), control)
    cb.on_log(args, _state(3, tokens=300), control, logs={"loss": 0.5})
    cb.on_train_end(args, _state(10, tokens=1000), control)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[dpo] step 3/10  loss 0.5000") and "budget 1:00:00" in lines[0]
    assert lines[-1].startswith("[dpo] step 10/10")
    rich_out = io.StringIO()
    cb = ProgressCallback("sft", None, stream=rich_out, tty=True)
    cb.on_train_begin(args, _state(0), control)
    cb.on_log(args, _state(5, tokens=500), control, logs={"loss": 1.25})
    cb.on_train_end(args, _state(10), control)
    assert "sft" in rich_out.getvalue() and "loss 1.2500" in rich_out.getvalue()


def test_each_step_is_printed_once_with_its_own_loss_and_the_run_time_beside_the_stage_time():
    """The Trainer calls on_step_end before it logs the step's loss: the last step was printed twice, first with
    the loss of the step before (issue 28, item 11)."""
    from engine.train.progress_callback import ProgressCallback

    args, control = SimpleNamespace(), SimpleNamespace()
    out = io.StringIO()
    deadline = runs.Deadline.from_options("1h", None)
    deadline.started -= 600  # an earlier stage ran for ten minutes
    cb = ProgressCallback("dpo", deadline, stream=out, tty=False, plain_every=0)
    cb.on_train_begin(args, _state(0, total=2), control)
    for step, loss in ((1, 0.9), (2, 0.4)):
        cb.on_step_end(args, _state(step, total=2), control)
        cb.on_log(args, _state(step, total=2), control, logs={"loss": loss})
    cb.on_log(args, _state(2, total=2), control, logs={"train_loss": 0.65})  # the Trainer's summary
    cb.on_train_end(args, _state(2, total=2), control)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0:2] for line in lines] == [["[dpo] step 1/2", "loss 0.9000"],
                                                         ["[dpo] step 2/2", "loss 0.4000"]]
    assert "stage elapsed 0:00, run 10:00 / budget" in lines[-1]


def test_metrics_records_carry_stage_and_step(tmp_path):
    from engine.train.callbacks import RunCallback

    cb = RunCallback(tmp_path / "metrics.jsonl", "kto")
    cb.on_log(SimpleNamespace(), _state(2), SimpleNamespace(), logs={"loss": 0.7, "learning_rate": 1e-3})
    (rec,) = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rec["stage"] == "kto" and rec["step"] == 2 and rec["loss"] == 0.7
