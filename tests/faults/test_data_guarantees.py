"""The Data guarantees under concurrency, after a stopped import, and at the edges of the file system (issues
29 and 30): two imports of one file started together commit once; a re-import clears the stopped import's
warning; ``export --out`` writes only a new or regular file; ``generate --prompts`` and ``score`` refuse
pipes and devices instead of blocking; a preference row that mixes formats is refused; a home that is a
file, not a folder, is one sentence; ``engine profiles`` lists the good profiles beside a marked bad one;
a killed report write's temp file is cleaned up on resume.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from engine import runs
from engine.feedback import FeedbackLog
from engine.feedback import import_rows as import_mod
from engine.feedback.import_rows import import_file
from tests.engine_cli import run_engine

from .faultlib import fake_unfinished_run


def preference_file(tmp_path, n: int = 600, name: str = "pairs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"prompt": f"Question {i}?", "chosen": f"Good answer {i}.",
                                        "rejected": f"Bad answer {i}."}) + "\n" for i in range(n)))
    return path


def commits(home) -> list[dict]:
    return [e for e in FeedbackLog(home, "demo").read().events if e.get("type") == "import"]


@pytest.mark.slow  # a second or more of real time: CI runs it, the fast loop does not
def test_two_imports_of_one_file_started_together_commit_once(home, tmp_path, fault_stats):
    path = preference_file(tmp_path)
    barrier = threading.Barrier(2)
    outcome: list[str] = []

    def one() -> None:
        log = FeedbackLog(home, "demo")  # its own descriptors, as a second process would have
        barrier.wait()
        try:
            import_file(log, path)
            outcome.append("committed")
        except Exception as exc:  # the loser: refused as a duplicate
            outcome.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outcome.count("committed") == 1, outcome
    assert "already imported" in [o for o in outcome if o != "committed"][0]
    assert len(commits(home)) == 1
    code, out = run_engine("stats", "--profile", "demo", "--home", str(home.root), "--json")
    assert json.loads(out[out.index("{"):])["total"]["preference_rows"] == 600
    fault_stats["concurrent imports of one file (commits: 1)"] += 1


def test_reimport_after_a_stopped_import_clears_its_warning(home, tmp_path, monkeypatch):
    path = preference_file(tmp_path, 50)
    real_append = FeedbackLog.append

    def no_commit(self, event):  # the import is killed just before its commit record
        if event.get("type") == "import":
            raise KeyboardInterrupt
        return real_append(self, event)

    monkeypatch.setattr(FeedbackLog, "append", no_commit)
    with pytest.raises(KeyboardInterrupt):
        import_file(FeedbackLog(home, "demo"), path)
    monkeypatch.setattr(FeedbackLog, "append", real_append)
    code, out = run_engine("stats", "--profile", "demo", "--home", str(home.root))
    assert code == 0 and "unfinished import" in out and "goes away" in out, out
    code, out = run_engine("import", str(path), "--profile", "demo", "--home", str(home.root))
    assert code == 0, out
    code, out = run_engine("stats", "--profile", "demo", "--home", str(home.root))
    assert code == 0 and "unfinished import" not in out, out


def test_reimport_clears_the_torn_batch_line_a_kill_left(home, tmp_path, monkeypatch):
    """A kill inside the import's batch write tears its last line; once the file is imported again and
    committed, that line is no longer reported (the rest of the log still is)."""
    path = preference_file(tmp_path, 50)
    real_write = FeedbackLog._write

    def torn_write(self, data: bytes) -> None:  # the process dies half-way through writing the batch
        with open(self.path, "ab") as f:
            f.write(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(FeedbackLog, "_write", torn_write)
    FeedbackLog(home, "demo").path.parent.mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt):
        import_file(FeedbackLog(home, "demo"), path)
    monkeypatch.setattr(FeedbackLog, "_write", real_write)
    code, out = run_engine("stats", "--profile", "demo", "--home", str(home.root))
    assert "unreadable feedback line" in out, out
    code, out = run_engine("import", str(path), "--profile", "demo", "--home", str(home.root))
    assert code == 0, out
    code, out = run_engine("stats", "--profile", "demo", "--home", str(home.root))
    assert code == 0 and "unreadable" not in out and "unfinished import" not in out, out
    with open(FeedbackLog(home, "demo").path, "ab") as f:  # an unrelated damaged line is still reported
        f.write(b'{"v": 1, "broken\n')
    code, out = run_engine("stats", "--profile", "demo", "--home", str(home.root))
    assert "1 unreadable feedback line" in out, out


def test_export_out_refuses_a_fifo_and_a_device(home, tmp_path, fault_stats):
    from tests.faults.faultlib import record_edit

    record_edit(home)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    targets = [fifo]
    device = tmp_path / "full"
    try:  # a private copy of /dev/full (root only); never the real one
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 7))
        targets.append(device)
    except (PermissionError, OSError):
        pass
    for target in targets:
        kind = os.lstat(target).st_mode
        code, out = run_engine("export", "--format", "sft", "--out", str(target), "--profile", "demo",
                               "--home", str(home.root))
        assert code == 2 and "not a regular file" in out and "Traceback" not in out, out
        assert stat.S_IFMT(os.lstat(target).st_mode) == stat.S_IFMT(kind)  # still the pipe / the device
        fault_stats["non-regular files refused"] += 1
    out_file = tmp_path / "rows.jsonl"
    out_file.write_text("old\n")
    code, out = run_engine("export", "--format", "sft", "--out", str(out_file), "--profile", "demo",
                           "--home", str(home.root))
    assert code == 0 and len(out_file.read_text().splitlines()) == 1, out


@pytest.mark.parametrize("command", ["generate", "score"])
def test_pipe_as_input_is_refused_not_waited_on(home, tmp_path, command, fault_stats):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    args = ["generate", "--prompts", str(fifo)] if command == "generate" else ["score", str(fifo)]
    done = threading.Event()

    def unblock() -> None:  # without the fix the command waits for a writer: give it an empty one after 20 s
        if not done.wait(20):
            os.close(os.open(fifo, os.O_WRONLY))

    threading.Thread(target=unblock, daemon=True).start()
    code, out = run_engine(*args, "--profile", "demo", "--home", str(home.root))
    done.set()
    assert code == 2 and "not a regular file" in out and str(fifo) in out, out
    fault_stats["non-regular files refused"] += 1


def test_preference_row_with_mixed_formats_is_refused(home, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello!",
                                "rejected": [{"role": "assistant", "content": "Go away."}]}) + "\n")
    code, out = run_engine("import", str(path), "--profile", "demo", "--home", str(home.root))
    assert code == 2 and f"{path}:1" in out and "one format for both" in out, out
    assert not FeedbackLog(home, "demo").path.exists()


def test_home_that_is_a_file_is_one_sentence(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "home-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("TUNELOOP_HOME", str(not_a_folder))
    code, out = run_engine("stats", "--profile", "demo")
    assert code == 2 and str(not_a_folder) in out and "not a folder" in out and "Traceback" not in out, out


def test_profiles_lists_the_others_and_marks_the_bad_one(home):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "broken.toml").write_text("[model]\nid = 3\n")
    code, out = run_engine("profiles", "--home", str(home.root))
    row = next(line for line in out.splitlines() if line.strip().startswith("broken"))
    assert "unreadable" in row, out
    assert any(line.strip().startswith("demo") for line in out.splitlines()), out
    assert code == 2 and "broken.toml" in out


def test_resume_cleans_a_killed_report_write(home):
    root = fake_unfinished_run(home)
    leftover = root / ".report.json.0123456789ab.tmp"
    leftover.write_text('{"half": ')
    removed = runs.clean_leftovers(root)  # what finetune --resume calls once it holds the run lock
    assert leftover in removed and not leftover.exists()
    assert (root / "manifest.json").is_file()


def test_import_lock_file_is_reached_without_links(home, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    folder = home.feedback_dir("demo")
    folder.mkdir(parents=True)
    (folder / ".import.lock").symlink_to(victim)
    code, out = run_engine("import", str(preference_file(tmp_path, 3)), "--profile", "demo", "--home",
                           str(home.root))
    assert code == 2 and "symbolic link" in out, out
    assert victim.read_text() == "keep"
    assert import_mod.previous_imports(FeedbackLog(home, "demo"), "x") == []
