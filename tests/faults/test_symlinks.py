"""No write or read outside the home through symbolic links (issue 12).

Someone who can write into the home (another tool, a synced folder, a shared machine) plants links
where tuneloop opens its own files. Each case checks the outcome the user would notice: the file the
link points at is byte-for-byte intact, nothing was appended outside, the command exited 2 with one
sentence naming the link, and rows behind a link never reach ``engine export``.
"""

from __future__ import annotations

import json
import os

import pytest

from engine.errors import UserError
from engine.feedback import FeedbackLog
from engine.safe_files import LinkRefused
from tests.engine_cli import run_engine

from .faultlib import record_edit

VICTIM = b"precious user data that must never be truncated\n"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_bytes(VICTIM)
    return path


def one_sentence(out: str, link) -> None:
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert "Traceback" not in out, out
    assert any(str(link) in line and "symbolic link" in line for line in lines), out


@pytest.mark.parametrize("command", ["finetune", "reward"])
def test_planted_train_lock_link_is_refused_and_its_target_intact(demo_home, victim, command, fault_stats):
    home = demo_home
    record_edit(home)
    lock = home.runs_dir("demo") / ".train.lock"
    lock.parent.mkdir(parents=True, mode=0o700)
    lock.symlink_to(victim)
    code, out = run_engine(command, "--profile", "demo", "--home", str(home.root), "--max-steps", "1")
    assert code == 2, out
    one_sentence(out, lock)
    assert victim.read_bytes() == VICTIM
    assert [p.name for p in home.runs_dir("demo").iterdir()] == [".train.lock"], "a run dir was created"
    fault_stats["symlink attacks refused (target intact)"] += 1


def _import_file(tmp_path) -> os.PathLike:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}) + "\n")
    return rows


def test_linked_events_file_gets_nothing_appended(home, victim, tmp_path, fault_stats):
    folder = home.feedback_dir("demo")
    folder.mkdir(parents=True, mode=0o700)
    (folder / "events.jsonl").symlink_to(victim)
    code, out = run_engine("import", str(_import_file(tmp_path)), "--profile", "demo", "--home", str(home.root))
    assert code == 2, out
    one_sentence(out, folder / "events.jsonl")
    with pytest.raises(LinkRefused):  # what the TUI and `generate --record` call
        FeedbackLog(home, "demo").add_message("c", None, "user", "hello")
    assert victim.read_bytes() == VICTIM
    fault_stats["symlink attacks refused (target intact)"] += 1


def test_linked_feedback_folder_gets_nothing_appended(home, tmp_path, fault_stats):
    outside = tmp_path / "outside-folder"
    outside.mkdir()
    (home.root / "feedback").mkdir(parents=True, mode=0o700)
    home.feedback_dir("demo").symlink_to(outside, target_is_directory=True)
    code, out = run_engine("import", str(_import_file(tmp_path)), "--profile", "demo", "--home", str(home.root))
    assert code == 2, out
    one_sentence(out, home.feedback_dir("demo"))
    with pytest.raises(UserError):
        FeedbackLog(home, "demo").add_message("c", None, "user", "hello")
    assert list(outside.iterdir()) == []
    fault_stats["symlink attacks refused (target intact)"] += 1


def test_jsonl_linked_into_the_feedback_folder_is_not_read(home, tmp_path, fault_stats):
    record_edit(home)  # one real sft row of our own
    foreign = tmp_path / "foreign.jsonl"
    from engine.home import Home

    elsewhere = Home(tmp_path / "elsewhere")
    flog = FeedbackLog(elsewhere, "demo")
    u = flog.add_message("foreign", None, "user", "SECRET QUESTION")
    r = flog.add_message("foreign", u["id"], "assistant", "SECRET ANSWER")
    flog.rate(r["id"], 1)
    os.replace(flog.path, foreign)
    (home.feedback_dir("demo") / "zz-foreign.jsonl").symlink_to(foreign)
    out_file = tmp_path / "export.jsonl"
    code, out = run_engine("export", "--profile", "demo", "--format", "sft", "--out", str(out_file),
                           "--home", str(home.root))
    assert code == 0, out
    assert "SECRET" not in out_file.read_text()
    assert len(out_file.read_text().splitlines()) == 1
    assert "zz-foreign.jsonl" in out and "link" in out, out
    fault_stats["symlink attacks refused (target intact)"] += 1


def test_linked_promoted_pointer_is_not_followed(home, victim, fault_stats):
    from engine import adapters

    home.runs_dir("demo").mkdir(parents=True, mode=0o700)
    adapters.promoted_file(home, "demo").symlink_to(victim)
    with pytest.raises(LinkRefused):
        adapters.promoted_run(home, "demo")
    with pytest.raises(LinkRefused):
        adapters.set_promoted(home, "demo", None)
    assert victim.read_bytes() == VICTIM
    fault_stats["symlink attacks refused (target intact)"] += 1
