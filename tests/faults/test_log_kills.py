"""No feedback lost: SIGKILL a process that is appending to the log, over and over.

Each round forks one real child process that appends chained ``message`` events through
``FeedbackLog.add_message`` and, after each append *returns*, writes the event's id on a pipe (the
acknowledgement a user would see as "saved"). The parent kills it with SIGKILL and checks the log:

* every acknowledged event is present and intact (same content, same parent);
* at most one unacknowledged event of the round is present (the one whose append finished but
  whose ack had not been written yet); none is missing that was acknowledged;
* the reader reports exactly the broken lines (torn tails, with their line numbers) and nothing
  else; a torn tail never swallows the next round's first record (it starts on a fresh line);
* the log still replays, with every acknowledged message in its conversation.

Two modes:
* ``append``: SIGKILL once the child has acknowledged 0-6 appends, after a further random
  0-8 ms delay, while it appends (mostly between or during
  ``fsync``; a few big records make a kill inside ``os.write`` possible, so a torn tail can happen
  naturally, though rarely).
* ``half-line``: the child writes the first half of a real record by hand with ``os.write`` on an
  ``O_APPEND`` descriptor (what a crash between two partial writes leaves), tells the parent, and is
  killed there: a torn tail every round, always.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from engine.feedback import FeedbackLog, replay
from engine.safe_files import ensure_dir

PROFILE = "demo"
APPEND_ROUNDS = 200
HALF_LINE_ROUNDS = 50
SEED = 20261125


def payload(round_no: int, seq: int) -> str:
    """Deterministic content, so the parent can check an event is intact without trusting the log.
    Every 20th record is big (96 KiB) so a kill can land inside its write."""
    size = 96 * 1024 if seq % 20 == 7 else 40 + (seq * 37) % 400
    head = f"round {round_no} seq {seq} \u00e9\u4e2d\U0001f600 "
    return head + ("x" * size)


def conversation(round_no: int) -> str:
    return f"conv{round_no:04d}"


def _child(home, round_no: int, ack_w: int, half_line_after: int | None) -> None:
    """Append chained messages forever, acknowledging each one after append returns."""
    log = FeedbackLog(home, PROFILE)
    parent = None
    seq = 0
    while True:
        if half_line_after is not None and seq == half_line_after:
            event = {
                "v": 1, "id": f"torn{round_no:04d}", "ts": time.time(), "type": "message",
                "conversation_id": conversation(round_no), "parent_id": parent, "role": "user",
                "content": payload(round_no, seq),
            }
            line = json.dumps(event).encode() + b"\n"
            ensure_dir(log.dir)
            fd = os.open(log.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(fd, line[: len(line) // 2])  # the first of two partial writes; the second never comes
            os.write(ack_w, b"HALF\n")
            time.sleep(60)
        event = log.add_message(conversation(round_no), parent, "user", payload(round_no, seq))
        os.write(ack_w, f"{seq} {event['id']}\n".encode())
        parent = event["id"]
        seq += 1


def run_round(home, rng: random.Random, round_no: int, half_line: bool) -> list[tuple[int, str]]:
    """Fork a child, SIGKILL it, return the (seq, id) pairs it acknowledged."""
    half_after = rng.randint(0, 4) if half_line else None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(r)
            _child(home, round_no, w, half_after)
        except BaseException:
            pass
        finally:
            os._exit(code)
    os.close(w)
    buf = b""
    if half_line:
        while b"HALF\n" not in buf:
            chunk = os.read(r, 65536)
            assert chunk, "child died before writing its half line"
            buf += chunk
    else:
        # Let it acknowledge a few appends (so the kill is not always at start-up, however slow the
        # disk's fsync is today), then kill after a random delay: anywhere in the append cycle.
        target = rng.randint(0, 6)
        while buf.count(b"\n") < target:
            chunk = os.read(r, 65536)
            assert chunk, "child died on its own"
            buf += chunk
        time.sleep(rng.uniform(0.0, 0.008))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "child ended on its own"
    acks = buf
    while chunk := os.read(r, 65536):
        acks += chunk
    os.close(r)
    out = []
    for line in acks.decode().splitlines():  # a partially written ack line is impossible (<PIPE_BUF)
        if line != "HALF":
            seq, eid = line.split()
            out.append((int(seq), eid))
    return out


def broken_lines(raw: bytes) -> set[int]:
    """Line numbers (1-based) that are not complete valid records, computed from the raw bytes
    independently of the reader: unterminated tail, or a line that is not a JSON object."""
    bad = set()
    parts = raw.split(b"\n")
    for i, seg in enumerate(parts, start=1):
        if not seg.strip():
            continue
        if i == len(parts):  # no "\n" after it: torn tail
            bad.add(i)
            continue
        try:
            ok = isinstance(json.loads(seg), dict)
        except ValueError:
            ok = False
        if not ok:
            bad.add(i)
    return bad


@pytest.mark.slow
def test_sigkill_while_appending_loses_nothing_acknowledged(home, fault_stats):
    rng = random.Random(SEED)
    log = FeedbackLog(home, PROFILE)
    expected: dict[str, tuple[int, int]] = {}  # acked id -> (round, seq)
    extra_present = 0
    plan = ["append"] * APPEND_ROUNDS + ["half-line"] * HALF_LINE_ROUNDS
    rng.shuffle(plan)
    seen_torn_tail_at: int | None = None
    natural_torn = 0
    for round_no, mode in enumerate(plan):
        acks = run_round(home, rng, round_no, half_line=(mode == "half-line"))
        for seq, eid in acks:
            expected[eid] = (round_no, seq)

        raw = log.path.read_bytes() if log.path.exists() else b""
        result = log.read()
        by_id = {e["id"]: e for e in result.events}
        assert len(by_id) == len(result.events), "an event appears twice"

        # Every acknowledged event, from every round so far, is present and intact.
        for eid, (rnd, seq) in expected.items():
            e = by_id.get(eid)
            assert e is not None, f"acknowledged event {eid} (round {rnd}, seq {seq}) lost"
            assert e["content"] == payload(rnd, seq) and e["conversation_id"] == conversation(rnd)
        fault_stats["acknowledged-event checks after a kill (event x kill)"] += len(expected)
        # At most the one in-flight append of this round is present without an acknowledgement,
        # and it is the next in sequence.
        unacked = [e for e in result.events if e["conversation_id"] == conversation(round_no) and e["id"] not in expected]
        assert len(unacked) <= 1, f"round {round_no}: {len(unacked)} unacknowledged events"
        if unacked:
            assert unacked[0]["content"] == payload(round_no, len(acks))
            extra_present += 1
        # Chained: each acknowledged event's parent is the previous acknowledged one.
        ids = [eid for _, eid in sorted(acks)]
        for prev, cur in zip([None, *ids], ids):
            assert by_id[cur]["parent_id"] == prev

        # The reader reports exactly the broken lines, by number, and survives them.
        reported = {p.line for p in result.problems}
        assert reported == broken_lines(raw), (round_no, mode, result.problems)
        torn_tail = bool(raw) and not raw.endswith(b"\n")
        if mode == "half-line":
            assert torn_tail, "the hand-written half line is not at the end of the log"
        if torn_tail:
            last = raw.count(b"\n") + 1
            assert any(p.line == last and "torn" in p.reason for p in result.problems), result.problems
            fault_stats["torn tails reported"] += 1
            natural_torn += mode == "append"
            seen_torn_tail_at = last
        elif seen_torn_tail_at is not None:
            seen_torn_tail_at = None

        # The log replays; every acknowledged message of this round is in its conversation.
        state = replay(result)
        conv = state.conversations.get(conversation(round_no))
        if acks:
            assert conv is not None and all(eid in state.messages for _, eid in acks)
        fault_stats[
            "kills survived (SIGKILL during FeedbackLog.append)"
            if mode == "append"
            else "kills survived (SIGKILL after a hand-written half line)"
        ] += 1

    # After the last kill, one more append: it starts on a fresh line even after a torn tail.
    final = log.add_message("conv-final", None, "user", "after all the kills")
    raw = log.path.read_bytes()
    assert raw.endswith(b"\n") and json.loads(raw.rstrip(b"\n").rsplit(b"\n", 1)[-1])["id"] == final["id"]
    result = log.read()
    assert {p.line for p in result.problems} == broken_lines(raw)
    assert all(p.line != raw.count(b"\n") for p in result.problems)

    fault_stats["acknowledged events checked intact"] += len(expected)
    fault_stats["in-flight appends found written (kill before the ack)"] += extra_present
    fault_stats["torn tails from a real kill inside os.write"] += natural_torn
    assert len(expected) > APPEND_ROUNDS, "the children barely appended; the test proved little"
