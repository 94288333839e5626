"""`engine stats` and feedback_stats: counts in total and since the last training run."""

from __future__ import annotations

import json

from engine.feedback import FeedbackLog
from engine.feedback.stats import feedback_stats
from engine.safe_files import write_private
from tests.engine_cli import run_engine_capsys as run


def exchange(log: FeedbackLog, conv: str, rating: int = 0, edit: str | None = None):
    u = log.add_message(conv, None, "user", f"question {conv}")
    a = log.add_message(conv, u["id"], "assistant", f"answer {conv}", {"system_prompt": ""})
    b = log.add_message(conv, u["id"], "assistant", f"other {conv}", {"system_prompt": ""})
    if rating:
        log.rate(a["id"], rating)
    if edit:
        log.edit(a["id"], edit)
    return a, b


def write_manifest(home, run_id: str, **fields) -> None:
    write_private(home.run_dir("demo", run_id) / "manifest.json", json.dumps(fields))


def test_totals_without_a_run(home):
    log = FeedbackLog(home, "demo")
    a, b = exchange(log, "c1", rating=1)
    log.rate(b["id"], -1)
    log.choose(a["id"], [a["id"], b["id"]], "regenerate")
    exchange(log, "c2", edit="fixed")
    s = feedback_stats(home, "demo")
    assert s["total"] == {
        "conversations": 2, "replies": 4, "liked": 1, "disliked": 1, "edited": 1, "picked": 1,
        "sft_rows": 2, "preference_rows": 2, "unpaired_rows": 4,
    }
    assert s["last_run"] is None and s["since_last_run"] == s["total"]
    assert s["problems"] == 0 and s["warnings"] == []


def test_counts_since_the_newest_run_with_a_cutoff(home):
    log = FeedbackLog(home, "demo")
    a, b = exchange(log, "c1", rating=1)
    first_cutoff = log.read().cutoff_ts
    log.rate(b["id"], -1)
    cutoff = log.read().cutoff_ts
    write_manifest(home, "20260101-000000-sft", log_cutoff_ts=first_cutoff)
    write_manifest(home, "20260102-000000-dpo", log_cutoff_ts=cutoff)
    write_manifest(home, "20260103-000000-kto", status="failed before freezing data")  # no cutoff: skipped
    (home.run_dir("demo", "20260104-000000-sft")).mkdir()
    (home.run_dir("demo", "20260104-000000-sft") / "manifest.json").write_text("{corrupt")

    s = feedback_stats(home, "demo")
    assert s["last_run"] == {"run_id": "20260102-000000-dpo", "log_cutoff_ts": cutoff}
    assert s["since_last_run"] == dict.fromkeys(s["since_last_run"], 0)  # nothing new yet

    exchange(log, "c2", rating=-1, edit="better")  # after the run
    log.rate(a["id"], 0)  # clearing is neither a like nor a dislike
    s = feedback_stats(home, "demo")
    assert s["since_last_run"] == {
        "conversations": 1, "replies": 2, "liked": 0, "disliked": 1, "edited": 1, "picked": 0,
        "sft_rows": 1,  # c2's edit (c1's cleared like removed a row; removals are not counted)
        "preference_rows": 1,  # c2's edit over its original
        "unpaired_rows": 2,  # c2: the edited text liked, the original disliked
    }
    assert s["total"]["liked"] == 0 and s["total"]["disliked"] == 2 and s["total"]["conversations"] == 2


def test_cli_stats_table_json_and_warnings(home, capsys):
    log = FeedbackLog(home, "demo")
    exchange(log, "c1", rating=1)
    with open(log.path, "ab") as f:
        f.write(b"not json\n")
    code, out, err = run(capsys, "stats", "--profile", "demo")
    assert code == 0
    liked = next(line for line in out.splitlines() if line.strip().startswith("liked"))
    assert liked.split()[1:] == ["1", "1"]
    assert "since last run (none yet)" in out
    assert "warning: 1 unreadable feedback line(s) skipped (events.jsonl:5): not valid JSON." in err

    write_manifest(home, "20260101-000000-sft", log_cutoff_ts=log.read().cutoff_ts)
    code, out, _ = run(capsys, "stats", "-p", "demo", "--json")
    data = json.loads(out)
    assert data["total"]["sft_rows"] == 1 and data["since_last_run"]["sft_rows"] == 0
    assert data["last_run"]["run_id"] == "20260101-000000-sft" and data["problems"] == 1

    log.rate("no-such-message", 1)
    code, out, err = run(capsys, "stats", "-p", "demo")
    assert "warning: 1 feedback event(s) refer to unknown messages and are ignored" in err and "no-such-message" in err

    code, out, err = run(capsys, "stats", "-p", "../x")
    assert code == 2 and "profile name" in err


def test_stats_of_an_empty_profile(home):
    s = feedback_stats(home, "nobody")
    assert s["total"] == dict.fromkeys(s["total"], 0) and s["events"] == 0
    assert not home.root.exists()  # asking creates nothing
