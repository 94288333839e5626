"""Fuzzing the log reader: whatever bytes are in a feedback file, reading never crashes.

Hypothesis writes logs mixing valid events (over a small id pool, so references collide: unknown
parents, cycles, duplicates, choices over non-siblings) with truncated records, non-UTF-8 bytes,
schema violations (a required key dropped or given the wrong type), non-object JSON, absurd numbers
and future-version events, sometimes without the final newline. The reader must account for every
non-blank line exactly once (an event, or a Problem naming its line), keep every valid event in
order, and everything downstream (replay, the three row builders, stats, the CLI) must cope.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.feedback import (
    FeedbackLog,
    preference_rows,
    replay,
    sft_rows,
    unpaired_rows,
)
from engine.feedback.events import MAX_LINE_BYTES
from engine.feedback.stats import feedback_stats

from .faultlib import engine_cmd, engine_env

PROFILE = "fuzz"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_ids = st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6"])
_convs = st.sampled_from(["c1", "c2"])
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
_ts = st.floats(min_value=0, max_value=2e9, allow_nan=False)

_message = st.fixed_dictionaries(
    {"type": st.just("message"), "id": _ids, "conversation_id": _convs, "parent_id": st.one_of(st.none(), _ids),
     "role": st.sampled_from(["system", "user", "assistant"]), "content": _text},
    optional={"generation": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"system_prompt": st.one_of(st.none(), _text)}))},
)
_rating = st.fixed_dictionaries(
    {"type": st.just("rating"), "id": _ids, "message_id": _ids, "value": st.sampled_from([-1, 0, 1]),
     "tags": st.lists(_text, max_size=2), "comment": st.one_of(st.none(), _text)}
)
_edit = st.fixed_dictionaries({"type": st.just("edit"), "id": _ids, "message_id": _ids, "content": _text})
_choice = st.builds(
    lambda cands, pick, kind: {"type": "choice", "id": "ch", "chosen_id": cands[pick % len(cands)],
                               "candidates": cands, "kind": kind},
    st.lists(_ids, min_size=1, max_size=3, unique=True), st.integers(0, 5),
    st.sampled_from(["regenerate", "compare", "best_of", "import"]),
)
_title = st.fixed_dictionaries({"type": st.just("title"), "id": _ids, "conversation_id": _convs, "title": _text})
valid_events = st.builds(
    lambda e, ts: {"v": 1, "ts": ts, **e}, st.one_of(_message, _rating, _edit, _choice, _title), _ts
)

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text)
_json = st.recursive(_json_scalars, lambda i: st.one_of(st.lists(i, max_size=3), st.dictionaries(_text, i, max_size=3)), max_leaves=8)


def dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


@st.composite
def schema_violation(draw) -> bytes:
    """A valid event with one required key dropped or set to a value of a type it never accepts."""
    event = draw(valid_events)
    key = draw(st.sampled_from(sorted(k for k in event if k not in ("generation",))))
    if draw(st.booleans()):
        del event[key]
    else:
        wrong = {"v": st.sampled_from([0, "1", True, None, 1.5]), "ts": st.sampled_from(["now", None, [], True])}
        default = st.one_of(st.integers(min_value=2), st.lists(st.integers(), min_size=1, max_size=2), st.just({"a": 1}))
        if key in ("value",):
            default = st.sampled_from([2, -2, "1", True, None])
        if key in ("tags",):
            default = st.sampled_from(["tag", [1], {"a": "b"}])
        if key in ("comment", "parent_id"):
            default = st.sampled_from([1, ["x"], {"a": 1}])
        event[key] = draw(wrong.get(key, default))
    return dumps(event)


_absurd = st.sampled_from([
    b'{"v":1,"id":"a","ts":' + b"1" * 400 + b',"type":"title","conversation_id":"c1","title":"t"}',
    b'{"v":1,"id":"a","ts":1e999,"type":"title","conversation_id":"c1","title":"t"}',
    b'{"v":1,"id":"a","ts":NaN,"type":"title","conversation_id":"c1","title":"t"}',
    b"[" + b"9" * 5000 + b"]",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"v":' + b"1" * 5000 + b"}",
    b'{"v":1,"id":"' + b"x" * 300 + b'","ts":1,"type":"title","conversation_id":"c1","title":"t"}',
    b'{"v":1,"v":1,"id":"a","ts":1,"type":"title","conversation_id":"c1","title":"t"}',
    b"\xef\xbb\xbf{}",
    b"\x00\x00\x00",
])


@st.composite
def log_lines(draw) -> list[tuple[str, bytes]]:
    """(kind, raw line without newline): kind is good, future, bad or unknown (either is fine)."""
    out = []
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["good", "good", "good", "truncated", "bytes", "schema", "json", "future", "absurd", "blank"]))
        if kind == "good":
            out.append(("good", dumps(draw(valid_events))))
        elif kind == "truncated":
            raw = dumps(draw(valid_events))
            out.append(("bad", raw[: draw(st.integers(1, len(raw) - 1))]))
        elif kind == "bytes":
            out.append(("unknown", draw(st.binary(min_size=1, max_size=40)).replace(b"\n", b"\xff")))
        elif kind == "schema":
            out.append(("bad", draw(schema_violation())))
        elif kind == "json":
            value = draw(_json)
            out.append(("bad" if not isinstance(value, dict) else "unknown", dumps(value)))
        elif kind == "future":
            event = draw(st.one_of(valid_events, st.dictionaries(_text, _json_scalars, max_size=3)))
            out.append(("future", dumps({**event, "v": draw(st.integers(3, 10**6))})))
        elif kind == "absurd":
            out.append(("unknown", draw(_absurd)))
        else:
            out.append(("blank", draw(st.sampled_from([b"", b" ", b"\t", b"  \r"]))))
    return out


@pytest.mark.slow
@given(lines=log_lines(), torn=st.booleans())
@FUZZ
def test_reader_never_crashes_and_accounts_for_every_line(home, fault_stats, lines, torn):
    fault_stats["log reader fuzz cases"] += 1
    log = FeedbackLog(home, PROFILE)
    log.dir.mkdir(parents=True, exist_ok=True)
    raw = b"\n".join(line for _, line in lines) + (b"\n" if lines else b"")
    if torn and raw:
        raw = raw[:-1]
    log.path.write_bytes(raw)

    result = log.read()

    counted = [(n, kind, line) for n, (kind, line) in enumerate(lines, start=1) if line.strip()]
    assert len(result.events) + len(result.problems) == len(counted), (result.problems, len(result.events))
    problem_lines = [p.line for p in result.problems]
    assert len(set(problem_lines)) == len(problem_lines)
    for n, kind, _ in counted:
        if kind == "bad" or (torn and n == len(lines)):
            assert n in problem_lines, (n, kind, result.problems)
        elif kind in ("good", "future"):
            assert n not in problem_lines, (n, kind, result.problems)
    kept = [json.loads(line) for n, kind, line in counted if kind in ("good", "future") and n not in problem_lines]
    assert [e for e in result.events if e in kept] == kept  # valid events all kept, in log order
    assert result.future_versions == sum(1 for _, kind, _ in counted if kind == "future") - (
        1 if torn and lines and lines[-1][0] == "future" else 0
    )
    if result.problems:  # what was skipped is reported in words a user reads
        assert any(str(len(result.problems)) in w for w in result.warnings())

    # Everything downstream copes with whatever survived.
    state = replay(result)
    for conv in state.conversations.values():
        for m in conv.messages:
            conv.path_to(m.id)
        _ = conv.title
    sft_rows(state), preference_rows(state), unpaired_rows(state)
    feedback_stats(home, PROFILE)


def test_oversized_line_is_skipped_and_reported(home, fault_stats):
    """A line over the 16 MiB limit between two good ones: skipped with its line number."""
    fault_stats["log reader fuzz cases"] += 1
    log = FeedbackLog(home, PROFILE)
    first = log.add_message("c1", None, "user", "before")
    with open(log.path, "ab") as f:
        f.write(b'{"v":1,"type":"title","content":"' + b"y" * (MAX_LINE_BYTES + 10) + b'"}\n')
    last = log.add_message("c1", first["id"], "assistant", "after")
    result = log.read()
    assert [e["id"] for e in result.events] == [first["id"], last["id"]]
    assert [p.line for p in result.problems] == [2]
    with pytest.raises(ValueError):  # and the writer refuses to create one
        log.add_message("c1", None, "user", "z" * (MAX_LINE_BYTES + 1))
    assert [e["id"] for e in log.read().events] == [first["id"], last["id"]]


def test_cli_reports_skipped_lines_and_still_works(home):
    """``engine stats`` over a damaged log: exit 0, the counts, and a warning naming the line."""
    log = FeedbackLog(home, "demo")
    user = log.add_message("c1", None, "user", "hello")
    reply = log.add_message("c1", user["id"], "assistant", "hi")
    with open(log.path, "ab") as f:
        f.write(b"\xff\xfe not a record\n")
    log.rate(reply["id"], 1)
    with open(log.path, "ab") as f:
        f.write(b'{"v":1,"type":"rating"')  # torn tail
    proc = subprocess.run(engine_cmd("stats", "--profile", "demo"), env=engine_env(home),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout + proc.stderr
    assert "events.jsonl:3" in out and "2 unreadable" in out, out
