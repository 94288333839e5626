"""Training faults on the demo model with real TRL: a kill mid-checkpoint, and a full disk.

* ``engine finetune`` runs in a child (helpers/slow_checkpoint.py) whose write of checkpoint-4 is cut
  in half and never gets its COMPLETE marker; the test SIGKILLs it right there: checkpoint-2 stays
  complete and nothing is promoted. ``--resume`` continues from checkpoint-2 (skipping the
  half-written one) and is SIGKILLed again after writing the final adapter into its temp folder,
  before the rename: no adapter appears under its name, nothing is promoted. A plain ``--resume``
  then finishes from checkpoint-6 and promotes an adapter the runtime loads.
* The profile's runs folder is a small tmpfs that fills up at the first checkpoint: the run ends
  with exit 2 and one sentence saying the disk is full, no adapter appears under its name, the
  previously promoted adapter stays in use and loads. The feedback log on a full disk refuses a
  batch whole (``engine import`` appends nothing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import adapters

from .faultlib import HELPERS_DIR, engine_cmd, engine_env, make_adapter, record_edit


def wait_for(predicate, timeout: float, what: str, proc=None) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_until_hang(home, tmp_path, hang_at: str, args: list[str], **extra) -> str:
    """Run ``engine ARGS`` under helpers/slow_checkpoint.py, SIGKILL it where it hangs; its output."""
    env = engine_env(home)
    flag = tmp_path / f"hung-at-{hang_at}"
    log = tmp_path / f"hung-at-{hang_at}.log"
    env.update(HANG_AT=hang_at, FLAG_FILE=str(flag), **extra)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(HELPERS_DIR / "slow_checkpoint.py"), *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(flag.exists, 400, f"the run to hang at {hang_at} (output in {log})", proc)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return log.read_text()


@pytest.mark.slow
def test_sigkill_mid_checkpoint_and_mid_publish_then_resume(demo_home, tmp_path, fault_stats):
    home = demo_home
    record_edit(home)

    # 1. Killed while checkpoint-4 is half written (no COMPLETE marker yet).
    run_until_hang(home, tmp_path, "checkpoint",
                   ["finetune", "--profile", "demo", "--method", "sft", "--max-steps", "6", "--save-steps", "2"],
                   SLOW_STEP="4")
    (run_dir,) = [p for p in home.runs_dir("demo").iterdir() if p.is_dir()]
    ckpts = run_dir / "checkpoints" / "1-sft"
    assert (ckpts / "checkpoint-2" / "COMPLETE").is_file()
    assert (ckpts / "checkpoint-4").is_dir() and not (ckpts / "checkpoint-4" / "COMPLETE").exists()
    assert not (run_dir / "adapter").exists() and adapters.promoted_run(home, "demo") is None
    fault_stats["training kills survived"] += 1

    # 2. Resumed, then killed after the final adapter is written to its temp folder, before the rename.
    out = run_until_hang(home, tmp_path, "publish", ["finetune", "--profile", "demo", "--resume"])
    assert "resuming from checkpoint-2" in out, out[-3000:]
    assert (ckpts / "checkpoint-6" / "COMPLETE").is_file()
    stage = run_dir / "stages" / "1-sft"
    assert not (stage / "adapter").exists() and not (stage / "COMPLETE").exists()
    assert not (run_dir / "adapter").exists() and not (run_dir / "report.json").exists()
    assert adapters.promoted_run(home, "demo") is None
    fault_stats["training kills survived"] += 1

    # 3. A plain resume finishes from the newest complete checkpoint and promotes a loadable adapter.
    done = subprocess.run(engine_cmd("finetune", "--profile", "demo", "--resume"), env=engine_env(home),
                          capture_output=True, text=True, timeout=500)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "resuming from checkpoint-6" in out, out
    report = json.loads((run_dir / "report.json").read_text())
    assert report["steps"] == 6 and report["promoted"] is True
    assert adapters.promoted_run(home, "demo") == run_dir.name

    from engine.profiles import load_profile
    from engine.runtime import load_model

    lm = load_model(load_profile("demo", home), home)
    assert lm.adapter == run_dir.name


@pytest.fixture
def small_tmpfs(tmp_path):
    """Mount a tmpfs of a given size at a path (root only; skipped, with the reason, elsewhere)."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Write a filler file so only about ``leave`` bytes stay free on ``folder``'s filesystem."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


@pytest.mark.slow
def test_full_disk_during_finetune(demo_home, small_tmpfs, fault_stats):
    home = demo_home
    record_edit(home)
    runs_dir = small_tmpfs(home.runs_dir("demo"), "4m")
    old = "20260101-000000-sft"
    make_adapter(home, "demo", old, seed=3)
    adapters.set_promoted(home, "demo", old)
    pointer = adapters.promoted_file(home, "demo").read_bytes()
    fill(runs_dir, 160 * 1024)  # the manifest and frozen data fit; the first checkpoint does not

    proc = subprocess.run(engine_cmd("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "3",
                                     "--save-steps", "1"), env=engine_env(home), capture_output=True, text=True,
                          timeout=500)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "full" in errors[0], proc.stderr[-3000:]

    new_runs = [p for p in runs_dir.iterdir() if p.is_dir() and p.name != old]
    for run in new_runs:  # nothing half-written is published under its final name
        assert not (run / "adapter").exists()
        assert not any((run / "stages").glob("*/adapter")) if (run / "stages").exists() else True
        for ckpt in (run / "checkpoints").glob("*/checkpoint-*"):
            assert not (ckpt / "COMPLETE").exists()
    assert adapters.promoted_file(home, "demo").read_bytes() == pointer

    from engine.profiles import load_profile
    from engine.runtime import load_model

    lm = load_model(load_profile("demo", home), home)
    assert lm.adapter == old
    fault_stats["disk-full runs checked"] += 1


@pytest.mark.slow
def test_full_disk_import_appends_nothing(demo_home, small_tmpfs, tmp_path, fault_stats):
    home = demo_home
    feedback = small_tmpfs(home.feedback_dir("demo"), "256k")
    record_edit(home)
    log_path = feedback / "events.jsonl"
    before = log_path.read_bytes()
    fill(feedback, 48 * 1024)
    rows = tmp_path / "rows.jsonl"
    row = {"messages": [{"role": "user", "content": "q" * 4000}, {"role": "assistant", "content": "a" * 4000}]}
    rows.write_text("".join(json.dumps(row) + "\n" for _ in range(20)))  # ~170 KB of events: does not fit
    proc = subprocess.run(engine_cmd("import", "--profile", "demo", str(rows)), env=engine_env(home),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "No space left" in proc.stderr or "full" in proc.stderr, proc.stderr
    assert log_path.read_bytes() == before  # all or nothing, even when the disk fills mid-write
    (feedback / "filler").unlink()
    proc = subprocess.run(engine_cmd("import", "--profile", "demo", str(rows)), env=engine_env(home),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    fault_stats["disk-full runs checked"] += 1


def test_full_disk_while_switching_adapters(demo_home, small_tmpfs, fault_stats):
    """``engine adapters use`` on a full disk: one sentence, exit 2, the old pointer intact."""
    home = demo_home
    runs_dir = small_tmpfs(home.runs_dir("demo"), "1m")
    old = "20260101-000000-sft"
    make_adapter(home, "demo", old, seed=4)
    adapters.set_promoted(home, "demo", old)
    pointer = adapters.promoted_file(home, "demo").read_bytes()
    fill(runs_dir, 0)
    proc = subprocess.run(engine_cmd("adapters", "--profile", "demo", "use", "base"), env=engine_env(home),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        "error: the disk is full; free some space and run the command again."
    ], proc.stderr
    assert adapters.promoted_file(home, "demo").read_bytes() == pointer
    assert [p.name for p in runs_dir.iterdir() if p.name.startswith(".promoted")] == []
    fault_stats["disk-full runs checked"] += 1


@pytest.mark.slow
def test_full_disk_at_many_fill_levels_gives_one_sentence(demo_home, small_tmpfs, fault_stats):
    """Issue 12: at some fill levels the disk filled inside safetensors (SafetensorError traceback). At every
    level the run either finishes or ends with exit 2 and one sentence; the promoted adapter stays usable."""
    home = demo_home
    record_edit(home)
    runs_dir = small_tmpfs(home.runs_dir("demo"), "6m")
    outcomes = []
    for leave in (200 * 1024, 450 * 1024, 700 * 1024, 1100 * 1024, 1600 * 1024, 2300 * 1024):
        filler = fill(runs_dir, leave)
        proc = subprocess.run(engine_cmd("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "2",
                                         "--save-steps", "1", "--from", "base"), env=engine_env(home),
                              capture_output=True, text=True, timeout=500)
        filler.unlink()
        assert "Traceback" not in proc.stderr, f"leave={leave}: {proc.stderr[-3000:]}"
        if proc.returncode == 2:
            errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "full" in errors[0], proc.stderr[-3000:]
        else:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        outcomes.append(proc.returncode)
        for run in [p for p in runs_dir.iterdir() if p.is_dir()]:  # keep the tmpfs for the next level
            import shutil

            if not (run / "report.json").exists():
                shutil.rmtree(run)
        fault_stats["disk-full runs checked"] += 1
    assert 2 in outcomes, outcomes
