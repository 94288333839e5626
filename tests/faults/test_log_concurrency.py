"""Two writer processes and a training-data freezer on one log at the same time.

The writers (helpers/log_writer.py, real processes) append exchanges of three events in one
``append_many`` plus a lone rating, as fast as fsync allows. Meanwhile this process freezes the data
the way ``engine finetune`` does (``engine.train.data.collect``) and takes ``FeedbackLog.snapshot``
over and over. Afterwards:

* the log holds exactly every event of both writers, each line intact, each writer's in its order;
* every frozen snapshot is a byte prefix of the final log (never a torn read), its sha256 and offsets
  name exactly those bytes, it parses with no problems, and the training rows frozen from it are
  exactly the complete exchanges in that prefix (an exchange is never half-seen).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from engine.feedback import FeedbackLog, parse_bytes
from engine.train.data import collect

from .faultlib import HELPERS_DIR, engine_env

PROFILE = "demo"
PER_WRITER = 150


@pytest.mark.slow
def test_two_writers_and_a_freezer(home, fault_stats):
    log = FeedbackLog(home, PROFILE)
    env = engine_env(home)
    writers = [
        subprocess.Popen(
            [sys.executable, str(HELPERS_DIR / "log_writer.py"), str(home.root), PROFILE, name, str(PER_WRITER)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for name in ("w1", "w2")
    ]
    for w in writers:
        assert w.stdout.readline().strip() == "ready"
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()

    frozen = []  # (bytes, sha256, offsets, sft rows) from collect(), and snapshots
    while any(w.poll() is None for w in writers):
        snap = log.snapshot()
        data = collect(home, PROFILE)
        frozen.append((snap.data, snap.sha256, snap.end_offsets, None))
        frozen.append((None, data.log_sha256, data.log_offsets, len(data.rows.sft)))
    for w in writers:
        out, _ = w.communicate(timeout=120)
        assert w.returncode == 0 and "done" in out

    final = log.path.read_bytes()
    result = log.read()
    assert result.problems == []
    lines = final.split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == 2 * PER_WRITER * 4 == len(result.events)
    for name in ("w1", "w2"):
        mine = [e for e in result.events if e.get("conversation_id", e.get("message_id", "")).startswith(name)]
        assert len(mine) == PER_WRITER * 4
        # Each writer's events appear in the order it wrote them, each exchange's three together.
        for i in range(PER_WRITER):
            conv = f"{name}-{i:05d}"
            assert [e["id"] for e in mine[4 * i : 4 * i + 3]] == [f"{conv}-u", f"{conv}-a", f"{conv}-r"]
            assert mine[4 * i + 3]["tags"] == [f"{name}:{i}"]
            assert mine[4 * i]["content"] == f"{name}:{i} question " + "q" * (i % 97)

    key = str(log.path)
    grew = set()
    for data, sha, offsets, sft_count in frozen:
        end = offsets.get(key, 0)
        prefix = final[:end]
        if data is not None:
            assert data == prefix, "a snapshot is not a prefix of the log"
        assert hashlib.sha256(prefix).hexdigest() == sha
        assert prefix == b"" or prefix.endswith(b"\n")
        parsed = parse_bytes(prefix, key)
        assert parsed.problems == []
        if sft_count is not None:  # rows frozen == complete exchanges in the frozen bytes
            exchanges = sum(1 for e in parsed.events if e["type"] == "message" and e["role"] == "assistant")
            assert sft_count == exchanges
        grew.add(end)
    assert len(grew) > 3, "the freezer never overlapped the writers; nothing was tested"

    fault_stats["concurrent appends checked"] += len(result.events)
    fault_stats["concurrent snapshots byte-compared"] += len(frozen)
