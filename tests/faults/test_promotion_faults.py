"""The promoted adapter switches atomically: a crash mid-promotion leaves the old one in use.

* SIGKILL, 100 times, a real child process that keeps switching the profile between two real
  adapters with ``engine.adapters.set_promoted`` and acknowledges each switch after it returns:
  after every kill promoted.json is valid JSON naming the last acknowledged adapter or the one being
  switched to, its history is intact, and the runtime loads the adapter it names.
* Fault-inject ``os.replace`` (the rename that publishes the new pointer) and the write before it:
  set_promoted fails, promoted.json is byte-for-byte the old one, and no temp file is left behind.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import time

import pytest

from engine import adapters
from engine.errors import UserError

from .faultlib import make_adapter

KILLS = 100
RUN_A, RUN_B = "20260101-000000-sft", "20260102-000000-dpo"


@pytest.fixture
def two_adapters(demo_home):
    make_adapter(demo_home, "demo", RUN_A, seed=1)
    make_adapter(demo_home, "demo", RUN_B, seed=2)
    return demo_home


def _switcher(home, ack_w: int) -> None:
    i = 0
    while True:
        target = (RUN_A, RUN_B)[i % 2]
        adapters.set_promoted(home, "demo", target, reason=f"switch {i}")
        os.write(ack_w, f"{i} {target}\n".encode())
        i += 1


def _kill_one(home, rng) -> list[tuple[int, str]]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _switcher(home, w)
        finally:
            os._exit(1)
    os.close(w)
    buf = b""
    target = rng.randint(0, 2)
    while buf.count(b"\n") < target:
        chunk = os.read(r, 4096)
        assert chunk, "switcher died on its own"
        buf += chunk
    time.sleep(rng.uniform(0, 0.004))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    while chunk := os.read(r, 4096):
        buf += chunk
    os.close(r)
    return [(int(i), run) for i, run in (line.split() for line in buf.decode().splitlines())]


@pytest.mark.slow
def test_sigkill_mid_promotion_leaves_a_valid_pointer(two_adapters, fault_stats):
    home = two_adapters
    rng = random.Random(7)
    path = adapters.promoted_file(home, "demo")
    history_len = 0
    for _ in range(KILLS):
        before = json.loads(path.read_text()) if path.exists() else {"run_id": None, "history": []}
        acks = _kill_one(home, rng)
        data = json.loads(path.read_text())  # never torn: always parses
        assert set(data) >= {"run_id", "history"}
        done = len(acks)
        # Every acknowledged switch landed; at most the one in flight landed too (renamed, not acked).
        applied = len(data["history"]) - history_len
        assert applied in (done, done + 1), (applied, done)
        if applied == done + 1:
            assert data["run_id"] == (RUN_A, RUN_B)[done % 2] and data["reason"] == f"switch {done}"
        elif done:
            assert data["run_id"] == acks[-1][1] and data["reason"] == f"switch {done - 1}"
        else:
            assert data == before
        assert all(isinstance(h, dict) and "run_id" in h for h in data["history"])
        history_len = len(data["history"])
        fault_stats["promotion crashes survived"] += 1
    litter = [p.name for p in path.parent.iterdir() if p.name.startswith(".promoted.json.")]
    fault_stats["temp files left by killed promotions (harmless)"] += len(litter)

    # The runtime uses exactly the adapter the surviving pointer names.
    from engine.profiles import load_profile
    from engine.runtime import load_model

    lm = load_model(load_profile("demo", home), home)
    assert lm.adapter == adapters.promoted_run(home, "demo") and lm.adapter in (RUN_A, RUN_B)


@pytest.mark.parametrize("fail", ["replace", "write"])
def test_failed_promotion_keeps_the_old_pointer(two_adapters, monkeypatch, fail, fault_stats):
    home = two_adapters
    adapters.set_promoted(home, "demo", RUN_A)
    path = adapters.promoted_file(home, "demo")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail == "replace":
        monkeypatch.setattr(os, "replace", boom)
    else:
        monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises((OSError, UserError)):
        adapters.set_promoted(home, "demo", RUN_B)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert adapters.promoted_run(home, "demo") == RUN_A
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".promoted.json.")] == []
    fault_stats["promotion crashes survived"] += 1
