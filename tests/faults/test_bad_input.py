"""Bad input gets one sentence, never a traceback, and pickle data is never loaded (issue 12).

* ``engine adapters use RUN`` on a run whose adapter has only pickle weights (``adapter_model.bin``) is
  refused at ``use`` (the pointer stays), not at the next load.
* ``engine generate`` with a question that is not UTF-8 (raw bytes on the command line) exits 2 with one
  sentence; with ``--record`` on a full disk it writes the question and its reply together or not at all.
* ``--resume`` of a run whose checkpoint's ``optimizer.pt`` / ``scheduler.pt`` / ``rng_state.pth`` were
  replaced (by a pickle that would create a file when loaded) exits 2 naming the file; the pickle is
  never loaded. (A lone surrogate in an imported row: test_import_transaction.py.)
"""

from __future__ import annotations

import subprocess

import pytest

from engine import adapters
from engine.feedback import FeedbackLog
from tests.engine_cli import run_engine

from .faultlib import engine_cmd, engine_env, make_adapter, record_edit
from .test_security import evil_pickle
from .test_train_faults import fill, run_until_hang, small_tmpfs  # noqa: F401 (fixture)


@pytest.mark.slow
def test_pickle_only_adapter_is_refused_at_use(demo_home, tmp_path, fault_stats):
    home = demo_home
    good, bad = "20260101-000000-sft", "20260102-000000-sft"
    make_adapter(home, "demo", good)
    adapters.set_promoted(home, "demo", good)
    (make_adapter(home, "demo", bad, weights="pickle") / "adapter_model.bin").write_bytes(
        evil_pickle(tmp_path / "pwned"))
    code, out = run_engine("adapters", "--profile", "demo", "use", bad, "--home", str(home.root))
    assert code == 2 and "safetensors" in out and "Traceback" not in out, out
    assert adapters.promoted_run(home, "demo") == good
    assert not (tmp_path / "pwned").exists()
    fault_stats["bad inputs answered with one sentence"] += 1


def test_non_utf8_question_gets_a_sentence(demo_home, fault_stats):
    home = demo_home
    proc = subprocess.run(engine_cmd("generate", "--profile", "demo", "--record").__add__([b"caf\xe9?"]),
                          env=engine_env(home), capture_output=True, timeout=300)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert "not valid UTF-8" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not FeedbackLog(home, "demo").path.exists()
    fault_stats["bad inputs answered with one sentence"] += 1


@pytest.mark.slow
def test_record_on_a_full_disk_writes_the_pair_or_nothing(demo_home, small_tmpfs, fault_stats):
    home = demo_home
    folder = small_tmpfs(home.feedback_dir("demo"), "1m")
    log = FeedbackLog(home, "demo")
    log.add_message("seed", None, "user", "already here")
    question = "What is the capital of France? " + "x" * 3000
    for leave in (12_000, 8_000, 5_000, 3_500, 2_000, 500):  # room for the question, not always for both
        filler = fill(folder, leave)
        proc = subprocess.run(engine_cmd("generate", "--profile", "demo", "--record", "--greedy",
                                         "--max-new-tokens", "48", question),
                              env=engine_env(home), capture_output=True, text=True, timeout=300)
        filler.unlink()
        assert "Traceback" not in proc.stderr, proc.stderr
        state = FeedbackLog(home, "demo").replay()
        for conv in state.conversations.values():
            roles = [m.role for m in conv.messages]
            assert roles in (["user"], ["user", "assistant"]) and (conv.id == "seed") == (roles == ["user"]), roles
        fault_stats["disk-full runs checked"] += 1


@pytest.mark.slow
def test_tampered_checkpoint_torch_files_are_refused_on_resume(demo_home, tmp_path, fault_stats):
    home = demo_home
    record_edit(home)
    run_until_hang(home, tmp_path, "checkpoint",
                   ["finetune", "--profile", "demo", "--method", "sft", "--max-steps", "6", "--save-steps", "2"],
                   SLOW_STEP="4")
    (run_dir,) = [p for p in home.runs_dir("demo").iterdir() if p.is_dir()]
    ckpt = run_dir / "checkpoints" / "1-sft" / "checkpoint-2"
    names = [n for n in ("optimizer.pt", "scheduler.pt", "rng_state.pth") if (ckpt / n).is_file()]
    assert names, sorted(p.name for p in ckpt.iterdir())
    marker = tmp_path / "pwned"
    for name in names:
        original = (ckpt / name).read_bytes()
        (ckpt / name).write_bytes(evil_pickle(marker))
        proc = subprocess.run(engine_cmd("finetune", "--profile", "demo", "--resume"), env=engine_env(home),
                              capture_output=True, text=True, timeout=500)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert str(ckpt / name) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not marker.exists(), f"the tampered {name} was unpickled"
        (ckpt / name).write_bytes(original)
        fault_stats["tampered checkpoint files refused"] += 1
