"""``engine import`` is all or nothing, detects a second import of the same file, and cannot be made to
exhaust memory or hang (issue 12).

* A real ``engine import`` of 40,000 preference rows is SIGKILLed while it is writing its batches: the
  rows it wrote stay invisible (replay, export, stats) and are reported as an unfinished import;
  importing the file again gives exactly 40,000 rows, not more.
* The same file imported twice is refused with one sentence naming ``--again``; with ``--again`` it is
  imported.
* ``/dev/zero``, a FIFO with no writer, a 1.5 GiB (sparse) file and a 17 MiB row are refused at once
  with one sentence that states the caps; nothing is appended.
* A lone surrogate (``"\\ud800"``) in a row is refused with one sentence naming its line.
* 50,000 rows import in under 100 MiB (streamed twice, written in batches).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine.feedback import FeedbackLog
from engine.feedback.stats import feedback_stats
from tests.engine_cli import run_engine

from .faultlib import engine_cmd, engine_env

ROWS = 40_000


def preference_file(path, n: int, tag: str = "") -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": [{"role": "user", "content": f"{tag}question {i}?"}],
                                "chosen": [{"role": "assistant", "content": f"good answer {i}"}],
                                "rejected": [{"role": "assistant", "content": f"bad answer {i}"}]}) + "\n")


def visible_pairs(home) -> int:
    return feedback_stats(home, "demo")["total"]["preference_rows"]


@pytest.mark.slow
def test_sigkill_mid_import_leaves_nothing_visible_and_reimport_does_not_duplicate(home, tmp_path, fault_stats):
    src = tmp_path / "pairs.jsonl"
    preference_file(src, ROWS)
    log = FeedbackLog(home, "demo")
    log.add_message("mine", None, "user", "my own question")  # the log already holds the user's feedback
    start = log.path.stat().st_size
    kills = 0
    for attempt in range(3):
        proc = subprocess.Popen(engine_cmd("import", str(src), "--profile", "demo"), env=engine_env(home),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        size0 = log.path.stat().st_size
        deadline = time.monotonic() + 300
        while log.path.stat().st_size <= size0 + 200_000 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.returncode != -signal.SIGKILL:
            pytest.fail(f"the import finished before it could be killed (exit {proc.returncode})")
        kills += 1
        written = log.path.stat().st_size - size0
        assert written > 200_000, "the kill came before the import wrote anything"
        state = log.replay()
        assert visible_pairs(home) == 0, "rows of a killed import became visible"
        assert state.uncommitted and any("unfinished import" in w for w in state.warnings())
        assert [c.id for c in state.conversations.values()] == ["mine"]
        code, out = run_engine("export", "--profile", "demo", "--format", "preference", "--out",
                               str(tmp_path / "x.jsonl"), "--home", str(home.root))
        assert code == 2 and "no preference rows" in out and "unfinished import" in out, out
    fault_stats["import kills survived (rows visible after kill: 0)"] += kills

    proc = subprocess.run(engine_cmd("import", str(src), "--profile", "demo"), env=engine_env(home),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert visible_pairs(home) == ROWS, "re-importing after a kill duplicated or lost rows"
    assert log.path.read_bytes()[:start] == open(log.path, "rb").read(start)
    fault_stats["rows checked after re-import (no duplicates)"] += ROWS


def test_same_file_twice_needs_again(home, tmp_path, fault_stats):
    src = tmp_path / "pairs.jsonl"
    preference_file(src, 3)
    h = ["--profile", "demo", "--home", str(home.root)]
    assert run_engine("import", str(src), *h)[0] == 0
    size = FeedbackLog(home, "demo").path.stat().st_size
    code, out = run_engine("import", str(src), *h)
    assert code == 2 and "already imported" in out and "--again" in out and "Traceback" not in out, out
    assert FeedbackLog(home, "demo").path.stat().st_size == size
    assert visible_pairs(home) == 3
    code, out = run_engine("import", str(src), "--again", *h)
    assert code == 0, out
    assert visible_pairs(home) == 3  # identical rows deduplicate in the preference rows...
    assert len(FeedbackLog(home, "demo").replay().conversations) == 6  # ...but the conversations are there twice
    fault_stats["duplicate imports refused"] += 1


def _refused_at_once(home, path, *words) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(engine_cmd("import", str(path), "--profile", "demo"), env=engine_env(home),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    assert time.monotonic() - t0 < 30
    assert not FeedbackLog(home, "demo").path.exists()


@pytest.mark.slow
def test_dev_zero_fifo_huge_file_and_long_row_are_refused_at_once(home, tmp_path, fault_stats):
    _refused_at_once(home, "/dev/zero", "not a regular file")
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    _refused_at_once(home, fifo, "not a regular file")  # no writer: a blocking open would hang forever
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as f:
        f.truncate(int(1.5 * 2**30))  # sparse: costs no disk
    _refused_at_once(home, huge, "1 GiB per file", "16 MiB per row")
    long_row = tmp_path / "long.jsonl"
    long_row.write_text(json.dumps({"prompt": "q", "chosen": "x" * (17 * 2**20), "rejected": "y"}) + "\n")
    _refused_at_once(home, long_row, f"{long_row}:1", "16 MiB per row")
    fault_stats["hostile import inputs refused at once"] += 4


def test_lone_surrogate_gets_a_sentence(home, tmp_path, fault_stats):
    src = tmp_path / "s.jsonl"
    src.write_text('{"prompt": "ok?", "chosen": "fine", "rejected": "bad"}\n'
                   '{"prompt": "q\\ud800", "chosen": "a", "rejected": "b"}\n')
    code, out = run_engine("import", str(src), "--profile", "demo", "--home", str(home.root))
    assert code == 2 and f"{src}:2" in out and "surrogate" in out and "Traceback" not in out, out
    assert not FeedbackLog(home, "demo").path.exists()
    fault_stats["bad inputs answered with one sentence"] += 1


@pytest.mark.slow
def test_50k_rows_import_in_bounded_memory(home, tmp_path, fault_stats):
    src = tmp_path / "big.jsonl"
    n = 50_000  # ~40 MiB peak streamed; holding its 150,000 events at once needs well over 100 MiB
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                             {"role": "assistant", "content": f"a{i}"}]}) + "\n")
    # VmHWM, not getrusage's ru_maxrss: the latter is inherited across fork+exec from this (large) pytest process
    code = ("import sys\nfrom engine.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    c = e.code\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
            "print(hwm, file=sys.stderr)\nsys.exit(c)\n")
    proc = subprocess.run([sys.executable, "-c", code, "import", str(src), "--profile", "demo"],
                          env=engine_env(home), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mib < 100, f"import of {n} rows peaked at {peak_mib:.0f} MiB"
    assert feedback_stats(home, "demo")["total"]["sft_rows"] == n
    fault_stats["rows imported in one streamed import"] += n
