"""`engine export -f critique` writes language feedback (prompt, original, critique, revision); `engine import`
reads it back into the same feedback, and the same training rows."""

from __future__ import annotations

import json

import pytest

from engine.errors import UserError
from engine.feedback import FeedbackLog, preference_rows, sft_rows
from engine.feedback.import_rows import import_file
from tests.test_import_export import run
from tests.test_language_rows import _log


@pytest.fixture(autouse=True)
def _profiles(home):
    from tests.conftest import add_user_profile

    add_user_profile(home, "bob")


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _training(home, profile):
    state = FeedbackLog(home, profile).replay()
    return [sorted(json.dumps(r.data, sort_keys=True) for r in rows(state) if r.source == "revision")
            for rows in (sft_rows, preference_rows)]


def test_critique_export_import_round_trip(home, tmp_path, capsys):
    _log(home)  # accepted, edited and discarded revisions, and a 👎 with a comment (profile demo)
    first = tmp_path / "critique.jsonl"
    assert run("export", "--profile", "demo", "--format", "critique", "--out", first) == 0
    assert "wrote 4 critique rows" in capsys.readouterr().out
    rows = _rows(first)
    assert rows[0] == {
        "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Explain recursion"}],
        "original": [{"role": "assistant", "content": "A very long rambling answer."}],
        "critique": "too long",
        "revision": [{"role": "assistant", "content": "A function that calls itself."}],
        "outcome": "accepted", "source": "revision"}
    assert rows[1]["revision"][0]["content"] == "56" and rows[1]["outcome"] == "edited"  # the edit wins
    assert [r["outcome"] for r in rows[2:]] == ["discarded", None]
    assert rows[3]["revision"] is None and rows[3]["source"] == "comment"

    assert run("import", first, "--profile", "bob") == 0
    assert "imported 4 critique rows" in capsys.readouterr().out
    second = tmp_path / "again.jsonl"
    assert run("export", "--profile", "bob", "--format", "critique", "--out", second) == 0
    assert second.read_bytes() == first.read_bytes()
    assert _training(home, "bob") == _training(home, "demo")  # the same SFT rows and pairs, marked revision


def test_a_bad_critique_row_names_the_line_and_imports_nothing(home, tmp_path):
    src = tmp_path / "bad.jsonl"
    good = {"prompt": [{"role": "user", "content": "q"}], "original": [{"role": "assistant", "content": "a"}],
            "critique": "shorter", "revision": None, "outcome": None}
    src.write_text(json.dumps(good) + "\n" + json.dumps({**good, "outcome": "accepted"}) + "\n")
    with pytest.raises(UserError, match="bad.jsonl:2: has an 'outcome' but no 'revision'"):
        import_file(FeedbackLog(home, "bob"), src)
    assert FeedbackLog(home, "bob").read().events == []


def test_export_critique_with_none_says_what_to_do(home, tmp_path, capsys):
    assert run("export", "--profile", "bob", "--format", "critique", "--out", tmp_path / "x.jsonl") == 2
    assert "critique a reply" in capsys.readouterr().err
