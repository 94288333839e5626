"""``engine import`` of malformed files: one sentence naming file:line, and nothing appended.

Hypothesis builds TRL-format files of valid rows (one format per file) with one bad line somewhere
(broken JSON, non-UTF-8, a non-object, a missing key, a wrong type, absurd numbers, deep nesting) and
files of random rows over the real keys. The log already holds events; after a failed import its
bytes are unchanged, and after a successful one it only grew.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import UserError
from engine.feedback import FeedbackLog
from engine.feedback.import_rows import import_file

from .faultlib import engine_cmd, engine_env

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)


def _turn(role):
    return st.builds(lambda c: {"role": role, "content": c}, _text)


_preference = st.builds(
    lambda p, c, r: {"prompt": [p], "chosen": [{"role": "assistant", "content": c}],
                     "rejected": [{"role": "assistant", "content": c + "!" + r}]},
    _turn("user"), _text, _text,
)
_sft = st.builds(lambda u, a: {"messages": [u, a]}, _turn("user"), _turn("assistant"))
_unpaired = st.builds(lambda p, c, lab: {"prompt": [p], "completion": [c], "label": lab},
                      _turn("user"), _turn("assistant"), st.booleans())
ROWS = {"preference": _preference, "sft": _sft, "unpaired": _unpaired}


@st.composite
def broken(draw, fmt: str) -> bytes:
    """One line that the importer must refuse, for a file of ``fmt`` rows."""
    row = draw(ROWS[fmt])
    raw = json.dumps(row).encode()
    how = draw(st.sampled_from(["truncate", "utf8", "array", "missing", "wrong-type", "role", "digits", "deep", "label"]))
    if how == "truncate":
        return raw[: draw(st.integers(1, len(raw) - 1))]
    if how == "utf8":
        cut = draw(st.integers(0, len(raw)))
        return raw[:cut] + b"\xff\xfe" + raw[cut:]
    if how == "array":
        return json.dumps([row]).encode()
    if how == "digits":
        return b'{"messages": [' + b"7" * 5000 + b"]}"
    if how == "deep":
        return b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    key = draw(st.sampled_from(sorted(row)))
    if how == "missing" and not (fmt == "preference" and key == "prompt"):
        del row[key]
    elif how == "role":
        turns = next(v for v in row.values() if isinstance(v, list))
        turns[0]["role"] = draw(st.sampled_from(["robot", "", None, 3]))
    elif how == "label" and fmt == "unpaired":
        row["label"] = draw(st.sampled_from(["yes", 1, None, [True]]))
    else:
        wrong = [5, None, {"a": 1}, [1, 2], [], True]
        row[key] = draw(st.sampled_from([v for v in wrong if not (key == "label" and v is True)]))  # True is a label
    return json.dumps(row).encode()


@st.composite
def malformed_files(draw) -> tuple[bytes, int]:
    """(file bytes, 1-based number of the bad line); good rows before and after it."""
    fmt = draw(st.sampled_from(sorted(ROWS)))
    before = draw(st.lists(ROWS[fmt], max_size=4))
    after = draw(st.lists(ROWS[fmt], max_size=3))
    lines = [json.dumps(r).encode() for r in before]
    lines.append(draw(broken(fmt)))
    lines += [json.dumps(r).encode() for r in after]
    return b"\n".join(lines) + b"\n", len(before) + 1


def seeded_log(home) -> tuple[FeedbackLog, bytes]:
    log = FeedbackLog(home, "demo")
    if not log.path.exists():
        user = log.add_message("c0", None, "user", "already here")
        log.rate(log.add_message("c0", user["id"], "assistant", "kept")["id"], 1)
    return log, log.path.read_bytes()


@pytest.mark.slow
@given(case=malformed_files())
@FUZZ
def test_malformed_file_names_its_line_and_appends_nothing(home, tmp_path, fault_stats, case):
    fault_stats["import fuzz cases"] += 1
    data, bad_line = case
    log, before = seeded_log(home)
    path = tmp_path / "rows.jsonl"
    path.write_bytes(data)
    try:
        import_file(log, path)
    except UserError as exc:
        msg = str(exc)
        assert f"{path}:{bad_line}:" in msg and "\n" not in msg, msg
    else:
        raise AssertionError(f"line {bad_line} was accepted: {data.splitlines()[bad_line - 1][:200]!r}")
    assert log.path.read_bytes() == before


_anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _text,
              st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]), "content": st.one_of(_text, st.integers())})),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6,
)
_random_rows = st.lists(
    st.dictionaries(st.sampled_from(["prompt", "chosen", "rejected", "messages", "completion", "label"]), _anything, max_size=4),
    min_size=1, max_size=4,
)


@pytest.mark.slow
@given(rows=_random_rows, fmt=st.sampled_from(["auto", "preference", "sft", "unpaired"]))
@FUZZ
def test_random_rows_import_whole_or_not_at_all(home, tmp_path, fault_stats, rows, fmt):
    """Random values under the real keys: either every row is imported or none, never a crash."""
    fault_stats["import fuzz cases"] += 1
    log, before = seeded_log(home)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        result = import_file(log, path, fmt)
    except UserError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
        assert log.path.read_bytes() == before
        return
    after = log.path.read_bytes()
    assert after.startswith(before)
    added = after[len(before):].count(b"\n")
    # the row events, then the one ``import`` commit record that makes them visible (written even when every
    # row was skipped: it records that this file was imported)
    assert added == result.events + 1 and result.rows + result.skipped == len(rows)


@pytest.mark.slow
def test_cli_import_of_malformed_file_exits_2_and_appends_nothing(home, tmp_path):
    log, before = seeded_log(home)
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n" + '{"messages": [{"role": "user"}]}\n')
    proc = subprocess.run(engine_cmd("import", "--profile", "demo", str(path)), env=engine_env(home),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and f"{path}:3" in proc.stderr, proc.stderr
    assert log.path.read_bytes() == before
    # The same file without the bad line imports fully (the refusal was about that line).
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    proc = subprocess.run(engine_cmd("import", "--profile", "demo", str(path)), env=engine_env(home),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # 3 seeded + 2 rows of 3 events + the import's commit record
    assert log.path.read_bytes().startswith(before) and len(log.read().events) == 3 + 2 * 3 + 1
