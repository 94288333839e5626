"""The append-only feedback log on real files: durability, torn tails, concurrency, corrupt lines."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat

import pytest

from engine.errors import UserError
from engine.feedback import FeedbackLog, InvalidEvent, parse_bytes
from engine.home import Home


def lines_of(log: FeedbackLog) -> list[bytes]:
    return log.path.read_bytes().split(b"\n")


def test_append_fills_in_and_writes_one_line(home):
    log = FeedbackLog(home, "demo")
    assert not home.root.exists()  # no I/O until used
    ev = log.rate("m1", 1, tags=["accurate"], comment="good")
    assert ev["v"] == 1 and len(ev["id"]) == 32 and isinstance(ev["ts"], float)
    raw = log.path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert json.loads(raw) == ev
    assert log.read().events == [ev]


def test_permissions_under_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        home = Home.resolve(tmp_path / "h")
        FeedbackLog(home, "demo").edit("m1", "better")
    finally:
        os.umask(old)
    for d in (home.root, home.root / "feedback", home.feedback_dir("demo")):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE((home.feedback_dir("demo") / "events.jsonl").stat().st_mode) == 0o600


def test_crash_mid_append_loses_nothing_and_next_append_starts_fresh(home):
    log = FeedbackLog(home, "demo")
    good = [log.rate(f"m{i}", 1) for i in range(3)]
    size_before = log.path.stat().st_size
    with open(log.path, "ab") as f:  # a writer died half-way through a record
        f.write(b'{"v":1,"id":"abc","ts":1.0,"type":"rat')

    result = log.read()
    assert result.events == good
    assert len(result.problems) == 1
    assert result.problems[0].line == 4 and "torn" in result.problems[0].reason
    assert result.end_offsets[str(log.path)] == size_before  # the torn bytes are not part of any snapshot
    assert "1 unreadable feedback line" in result.warnings()[0]

    after = log.rate("m9", -1)
    lines = lines_of(log)
    assert lines[3] == b'{"v":1,"id":"abc","ts":1.0,"type":"rat'  # the torn line was closed off, not glued to
    assert json.loads(lines[4]) == after
    result = log.read()
    assert result.events == good + [after]
    assert [p.line for p in result.problems] == [4]


def _append_many_times(root: str, tag: str, n: int) -> None:
    log = FeedbackLog(Home.resolve(root), "demo")
    for i in range(n):
        log.rate(f"{tag}-{i}", 1, comment=tag * 50)  # long enough that interleaved bytes would show


@pytest.mark.slow
def test_two_processes_append_concurrently_without_tearing(home):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many_times, args=(str(home.root), tag, 1000)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    log = FeedbackLog(home, "demo")
    raw = log.path.read_bytes()
    assert raw.count(b"\n") == 2000
    result = log.read()
    assert result.problems == []
    assert len(result.events) == 2000 and len({e["id"] for e in result.events}) == 2000
    for tag in ("a", "b"):  # each writer's records are all there, in its own order
        mine = [e["message_id"] for e in result.events if e["message_id"].startswith(tag + "-")]
        assert mine == [f"{tag}-{i}" for i in range(1000)]


def test_reader_waits_for_a_writer_instead_of_seeing_half_a_record(home):
    import fcntl
    import threading
    import time

    log = FeedbackLog(home, "demo")
    first = log.rate("m1", 1)
    record = json.dumps({"v": 1, "id": "w" * 32, "ts": 2.0, "type": "rating", "message_id": "m2", "value": 1,
                         "tags": [], "comment": None}).encode() + b"\n"
    results = []
    fd = os.open(log.path, os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer in the middle of its append
        os.write(fd, record[:20])
        reader = threading.Thread(target=lambda: results.append(FeedbackLog(home, "demo").read()))
        reader.start()
        time.sleep(0.3)  # give the reader every chance to read the half-written record
        os.write(fd, record[20:])
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    reader.join(10)
    assert results[0].problems == []
    assert [e["id"] for e in results[0].events] == [first["id"], "w" * 32]


def test_corrupt_lines_are_skipped_and_reported(home):
    log = FeedbackLog(home, "demo")
    first = log.rate("m1", 1)
    bad_lines = [
        b"{not json",
        b"\xff\xfe not utf-8",
        b"[1, 2, 3]",
        json.dumps({"v": 1, "id": "x", "ts": 1.0, "type": "rating", "message_id": "m1", "value": 7}).encode(),
        json.dumps({"v": 1, "id": "y", "ts": 1.0, "type": "teleport"}).encode(),
        b'{"v":1,"pad":"' + b"x" * (16 * 1024 * 1024) + b'"}',
        json.dumps({"v": 3, "id": "z", "ts": 2.0, "type": "hologram", "message_id": "m1"}).encode(),
    ]
    with open(log.path, "ab") as f:
        f.write(b"\n".join(bad_lines) + b"\n")
    last = log.rate("m1", -1)

    result = log.read()
    assert [e["id"] for e in result.events] == [first["id"], "z", last["id"]]  # future event kept
    reasons = {p.line: p.reason for p in result.problems}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "JSON" in reasons[2] and "UTF-8" in reasons[3] and "object" in reasons[4]
    assert "'value'" in reasons[5] and "'type'" in reasons[6] and "longer than" in reasons[7]
    assert result.future_versions == 1
    warnings = result.warnings()
    assert any("6 unreadable" in w and "events.jsonl:2" in w for w in warnings)
    assert any("newer tuneloop" in w for w in warnings)

    state = log.replay()  # the future event is ignored, the latest v1 rating wins
    assert state.future_versions == 1
    assert state.messages == {}  # m1 was never a message: ratings for it are problems, not crashes
    assert any("m1" in p.reason for p in state.problems)


def test_invalid_events_are_refused_and_nothing_is_written(home):
    log = FeedbackLog(home, "demo")
    with pytest.raises(UserError, match="'value'"):
        log.rate("m1", 5)
    with pytest.raises(InvalidEvent, match="'role'"):
        log.add_message("c1", None, "robot", "hi")
    with pytest.raises(ValueError, match="chosen_id"):
        log.choose("a", ["b", "c"], "regenerate")
    with pytest.raises(InvalidEvent, match="'parent_id'"):  # every schema key is required, null or not
        log.append({"type": "message", "conversation_id": "c1", "role": "user", "content": "hi"})
    assert not log.path.exists()
    log.rate("m1", 1)
    before = log.path.read_bytes()
    with pytest.raises(InvalidEvent):
        log.append_many([{"type": "edit", "message_id": "m1", "content": "ok"}, {"type": "edit", "message_id": "m1"}])
    assert log.path.read_bytes() == before  # all or nothing


def test_append_many_is_one_write_of_all_events(home):
    log = FeedbackLog(home, "demo")
    evs = log.append_many([{"type": "rating", "message_id": f"m{i}", "value": 1} for i in range(5)])
    assert [e["id"] for e in log.read().events] == [e["id"] for e in evs]
    assert log.append_many([]) == []


def test_all_jsonl_files_are_read_in_name_order(home):
    log = FeedbackLog(home, "demo")
    late = log.rate("m2", 1)
    early = {"v": 1, "id": "e" * 32, "ts": 5.0, "type": "rating", "message_id": "m1", "value": -1, "tags": [],
             "comment": None}
    (log.dir / "2020-archive.jsonl").write_text(json.dumps(early) + "\n")
    (log.dir / "notes.txt").write_text("not a log file\n")
    assert [e["id"] for e in log.read().events] == [early["id"], late["id"]]


def test_snapshot_freezes_exact_bytes(home):
    log = FeedbackLog(home, "demo")
    evs = [log.rate(f"m{i}", 1) for i in range(3)]
    with open(log.path, "ab") as f:
        f.write(b'{"torn')
    snap = log.snapshot()
    assert snap.data == log.path.read_bytes()[: -len(b'{"torn')]
    assert snap.sha256 == hashlib.sha256(snap.data).hexdigest()
    assert log.snapshot_bytes() == (snap.data, snap.sha256)
    assert snap.result.events == evs and snap.result.cutoff_ts == evs[-1]["ts"]

    later = log.rate("m9", 1)  # the log moves on; the frozen view does not
    assert log.read(until=snap.end_offsets).events == evs
    assert parse_bytes(snap.data).events == evs
    assert log.read().events == evs + [later]


def test_log_file_removed_while_open_is_recreated(home):
    log = FeedbackLog(home, "demo")
    log.rate("m1", 1)
    log.path.unlink()
    ev = log.rate("m2", 1)
    assert log.read().events == [ev]
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


def test_profile_name_cannot_escape_the_home(home):
    with pytest.raises(UserError):
        FeedbackLog(home, "../other")


def test_repeated_reads_see_appends_rewrites_and_completed_tails(home):
    reader, writer = FeedbackLog(home, "demo"), FeedbackLog(home, "demo")
    first = writer.rate("m1", 1)
    assert reader.read().events == [first]
    second = writer.rate("m2", 1)  # appended by another FeedbackLog (another TUI)
    assert reader.read().events == [first, second]

    record = json.dumps({"v": 1, "id": "t" * 32, "ts": 3.0, "type": "edit", "message_id": "m1", "content": "x"})
    with open(writer.path, "ab") as f:
        f.write(record[:10].encode())
    result = reader.read()
    assert result.events == [first, second] and [p.line for p in result.problems] == [3]
    with open(writer.path, "ab") as f:  # the slow writer finishes its line
        f.write(record[10:].encode() + b"\n")
    result = reader.read()
    assert [e["id"] for e in result.events] == [first["id"], second["id"], "t" * 32] and result.problems == []

    other = {"v": 1, "id": "o" * 32, "ts": 4.0, "type": "rating", "message_id": "m9", "value": -1, "tags": [],
             "comment": None}
    with open(writer.path, "r+b") as f:  # rewritten in place (same inode), e.g. by an editor
        f.truncate(0)
        f.write((json.dumps(other) + "\n").encode() * 5)
    assert [e["id"] for e in reader.read().events] == ["o" * 32] * 5
