"""The whole loop offline and private: no socket is ever opened, and everything written is 0600/0700
even under umask 0.

With HF_HUB_OFFLINE=1, umask 0 and a network guard (in-process: monkeypatched socket functions;
in the ``engine`` subprocesses: helpers/sitecustomize.py) that refuses *and logs* every non-Unix
connection (so an attempt whose error some library swallowed still fails the test):
build the demo model, ``engine generate --record``, rate and edit through FeedbackLog,
``engine finetune --method sft``, then generate with the promoted adapter. Afterwards the guard's
log is empty and every file and folder in the home is private.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from engine.feedback import FeedbackLog

from .faultlib import HELPERS_DIR, engine_cmd, engine_env

QUESTION = "What is the capital of France?"
EDITED = "Paris is the capital of France."


@pytest.fixture
def umask0():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def net_log(tmp_path, monkeypatch):
    """Guard this process too; the file collects every refused attempt (ours and the children's)."""
    sys.path.insert(0, str(HELPERS_DIR))
    try:
        import netguard
    finally:
        sys.path.remove(str(HELPERS_DIR))
    path = tmp_path / "net-attempts.log"
    path.write_text("")
    netguard.install(str(path), patch=monkeypatch.setattr)
    return path


def run(args, env, timeout=300):
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def not_private(root) -> list[str]:
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            mode = stat.S_IMODE(os.lstat(os.path.join(dirpath, name)).st_mode)
            if mode != 0o700:
                bad.append(f"{oct(mode)} {os.path.join(dirpath, name)}/")
        for name in filenames:
            mode = stat.S_IMODE(os.lstat(os.path.join(dirpath, name)).st_mode)
            if mode != 0o600:
                bad.append(f"{oct(mode)} {os.path.join(dirpath, name)}")
    return bad


def test_guard_is_live(home, net_log, tmp_path):
    """The guard itself can fail a test: a connection attempt, in-process and in a child, is logged."""
    import socket

    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    env = engine_env(home, net_log=net_log)
    subprocess.run([sys.executable, "-c", "import urllib.request as u\ntry: u.urlopen('http://192.0.2.1', timeout=1)\n"
                    "except Exception: pass"], env=env, timeout=60)
    lines = net_log.read_text().splitlines()
    assert len(lines) == 2 and all("192.0.2.1" in line for line in lines), lines


@pytest.mark.slow
def test_offline_loop_opens_no_socket_and_writes_only_private_files(home, net_log, umask0, fault_stats):
    env = engine_env(home, net_log=net_log)

    run(engine_cmd("demo-model"), env)
    before = run(engine_cmd("generate", "--profile", "demo", "--record", "--greedy", "--max-new-tokens", "16", QUESTION), env)

    log = FeedbackLog(home, "demo")
    reply = next(m for m in log.replay().messages.values() if m.role == "assistant")
    log.rate(reply.id, -1, tags=["wrong"])
    log.edit(reply.id, EDITED)

    run(engine_cmd("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "6", "--save-steps", "3"), env, timeout=500)

    from engine.adapters import promoted_run
    from engine.profiles import load_profile
    from engine.runtime import GenerationParams, load_model

    run_id = promoted_run(home, "demo")
    assert run_id is not None, "the fine-tuned adapter was not promoted"
    profile = load_profile("demo", home)
    lm = load_model(profile, home)  # in-process, under the in-process guard
    assert lm.adapter == run_id
    after, _ = lm.generate([{"role": "user", "content": QUESTION}], GenerationParams.from_profile(profile, do_sample=False, max_new_tokens=16))
    assert after.strip() != before.strip(), "the adapter did not change the reply"

    attempts = net_log.read_text().splitlines()
    fault_stats["network connection attempts (must be 0)"] += len(attempts)
    assert attempts == [], attempts
    assert not_private(home.root) == []
