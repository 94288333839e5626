"""Promotion and resume windows (issue 12).

* ``publish_dir`` replaces a folder in use in one atomic step: a reader that opens
  ``adapter/adapter_config.json`` in a loop while it is republished never misses it, and SIGKILLs of a
  child republishing in a loop never leave the folder missing or mixed.
* A run SIGKILLed after promoting its adapter but before report.json, then ``--resume``d: the adapter in
  use is not republished (same inode), the run is gated against the adapter it replaced (not itself),
  the history has it once (``rollback`` returns to the previous adapter) and leftover ``.adapter.old`` /
  ``.adapter.*.tmp`` folders are removed.
* SIGTERM and SIGINT during the finish phase (evaluation): exit 3, nothing promoted, no report; a
  ``--resume`` then finishes and promotes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from engine import adapters, runs

from .faultlib import HELPERS_DIR, engine_cmd, engine_env, make_adapter, record_edit
from .test_train_faults import run_until_hang, wait_for

PUBLISHER = """
import sys, time
from pathlib import Path
from engine.runs import publish_dir
final = Path(sys.argv[1])
i = 0
while True:
    i += 1
    with publish_dir(final) as tmp:
        for k in range(8):
            (tmp / f"part{k}").write_text(str(i) * 2000)
        (tmp / "adapter_config.json").write_text(str(i))
"""


def complete_version(folder) -> bool:
    """All files of one publish: the same version everywhere."""
    names = sorted(p.name for p in folder.iterdir())
    if names != ["adapter_config.json"] + [f"part{k}" for k in range(8)]:
        return False
    v = (folder / "adapter_config.json").read_text()
    return all((folder / f"part{k}").read_text() == v * 2000 for k in range(8))


@pytest.mark.slow
def test_republish_never_leaves_the_folder_missing(tmp_path, fault_stats):
    final = tmp_path / "adapter"
    with runs.publish_dir(final) as tmp:
        (tmp / "adapter_config.json").write_text("0")
    misses, reads, stop = [], [0], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                (final / "adapter_config.json").read_text()
            except FileNotFoundError:
                misses.append(1)
            reads[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    for i in range(300):
        with runs.publish_dir(final) as tmp:
            (tmp / "adapter_config.json").write_text(str(i))
    stop.set()
    t.join()
    assert misses == [], f"adapter_config.json missing {len(misses)} times in {reads[0]} reads"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    fault_stats["republishes checked against a concurrent reader"] += 300


@pytest.mark.slow
def test_sigkill_while_republishing_never_leaves_it_missing(tmp_path, fault_stats):
    final = tmp_path / "adapter"
    rng = random.Random(12)
    env = dict(os.environ, PYTHONPATH=str(HELPERS_DIR.parent.parent.parent))
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(final)], env=env)
        wait_for(lambda: (final / "adapter_config.json").exists(), 60, "the first publish", proc)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait()
        assert complete_version(final), sorted(p.name for p in final.iterdir())
        fault_stats["kills survived (SIGKILL while republishing)"] += 1
    runs.clean_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def adapter_ino(run_dir) -> int:
    return os.stat(run_dir / "adapter").st_ino


@pytest.mark.slow
def test_kill_after_promotion_then_resume(demo_home, tmp_path, fault_stats):
    home = demo_home
    record_edit(home)
    old = "20260101-000000-sft"
    make_adapter(home, "demo", old, seed=3)
    adapters.set_promoted(home, "demo", old)

    run_until_hang(home, tmp_path, "promoted",
                   ["finetune", "--profile", "demo", "--method", "sft", "--max-steps", "2", "--from", "base"])
    (run_dir,) = [p for p in home.runs_dir("demo").iterdir() if p.is_dir() and p.name != old]
    assert adapters.promoted_run(home, "demo") == run_dir.name and not (run_dir / "report.json").exists()
    ino = adapter_ino(run_dir)
    # what a kill inside the old two-rename publish left behind
    (run_dir / ".adapter.old").mkdir()
    (run_dir / ".adapter.abc123.tmp").mkdir()
    fault_stats["training kills survived"] += 1

    done = subprocess.run(engine_cmd("finetune", "--profile", "demo", "--resume"), env=engine_env(home),
                          capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert adapter_ino(run_dir) == ino, "the adapter in use was republished"
    assert report["current_run"] == old, "the run was gated against itself"
    assert report["promoted"] is True and adapters.promoted_run(home, "demo") == run_dir.name
    assert not list(run_dir.glob(".adapter*")), list(run_dir.glob(".adapter*"))
    history = [h["run_id"] for h in json.loads(adapters.promoted_file(home, "demo").read_text())["history"]]
    assert history == [None, old], history
    assert adapters.rollback(home, "demo") == old
    fault_stats["promotion crashes survived"] += 1


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_evaluation_exits_3_and_resumes(demo_home, tmp_path, sig, fault_stats):
    home = demo_home
    record_edit(home)
    env = engine_env(home)
    flag = tmp_path / "evaluating"
    env.update(HANG_AT="evaluate", FLAG_FILE=str(flag))
    proc = subprocess.Popen([sys.executable, str(HELPERS_DIR / "slow_checkpoint.py"), "finetune", "--profile",
                             "demo", "--method", "sft", "--max-steps", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(flag.exists, 400, "the finish phase", proc)
        os.kill(proc.pid, sig)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, out[-3000:]
    assert "--resume" in out and "Traceback" not in out, out[-3000:]
    (run_dir,) = [p for p in home.runs_dir("demo").iterdir() if p.is_dir()]
    assert adapters.promoted_run(home, "demo") is None and not (run_dir / "report.json").exists()
    fault_stats["signals in the finish phase honoured (exit 3)"] += 1
    done = subprocess.run(engine_cmd("finetune", "--profile", "demo", "--resume"), env=engine_env(home),
                          capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert adapters.promoted_run(home, "demo") == run_dir.name
