"""`engine export` / `engine import`: TRL-format JSONL out and in, loadable by datasets, round-trip exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.cli import main
from engine.errors import UserError
from engine.feedback import FeedbackLog, preference_rows, sft_rows, unpaired_rows
from engine.feedback.import_rows import import_file

GEN = {"system_prompt": "Be brief."}


@pytest.fixture(autouse=True)
def _profiles(home):
    """The CLI refuses unknown profiles: alice and bob are user profiles of this home."""
    from tests.conftest import add_user_profile

    for name in ("alice", "bob"):
        add_user_profile(home, name)


def give_feedback(log: FeedbackLog) -> None:
    """Every kind of judgement, multi-turn, with and without a system prompt."""
    u = log.add_message("c1", None, "user", "Capital of France?")
    a1 = log.add_message("c1", u["id"], "assistant", "Paris.", GEN)
    a2 = log.add_message("c1", u["id"], "assistant", "Lyon.", GEN)
    a3 = log.add_message("c1", u["id"], "assistant", "Nice.", GEN)
    log.rate(a1["id"], 1)
    log.rate(a2["id"], -1)
    log.choose(a1["id"], [a1["id"], a2["id"], a3["id"]], "regenerate")
    u2 = log.add_message("c1", a1["id"], "user", "And Spain? Üñíçødé ✓")
    b = log.add_message("c1", u2["id"], "assistant", "Barcelona.", GEN)
    log.edit(b["id"], "Madrid.")
    v = log.add_message("c2", None, "user", "Say hi")
    w1 = log.add_message("c2", v["id"], "assistant", "Hello!")
    w2 = log.add_message("c2", v["id"], "assistant", "Yo.")
    log.choose(w1["id"], [w1["id"], w2["id"]], "compare")
    log.edit(w1["id"], "Hello there!")
    v2 = log.add_message("c2", w1["id"], "user", "Again?")
    w3 = log.add_message("c2", v2["id"], "assistant", "Hello again!")
    log.rate(w3["id"], 1)
    log.rate(w2["id"], -1)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(*argv) -> int:
    """Run the engine CLI in-process; return its exit code."""
    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.mark.parametrize("fmt", ["sft", "preference", "unpaired"])
def test_export_import_export_round_trip(home, tmp_path, fmt, capsys):
    give_feedback(FeedbackLog(home, "alice"))
    first = tmp_path / f"{fmt}.jsonl"
    assert run("export", "--profile", "alice", "--format", fmt, "--out", first) == 0
    rows = read_jsonl(first)
    assert len(rows) >= 3
    assert f"wrote {len(rows)} {fmt} rows" in capsys.readouterr().out
    assert oct(first.stat().st_mode & 0o777) == "0o600"

    assert run("import", first, "--profile", "bob") == 0
    assert f"imported {len(rows)} {fmt} rows" in capsys.readouterr().out
    second = tmp_path / f"{fmt}-again.jsonl"
    assert run("export", "--profile", "bob", "--format", fmt, "--out", second) == 0
    assert second.read_bytes() == first.read_bytes()

    # Imported replies say where they came from, with the system prompt of the original reply.
    state = FeedbackLog(home, "bob").replay()
    gens = [m.generation for m in state.messages.values() if m.role == "assistant"]
    assert all(g["imported"] == first.name for g in gens)
    assert {g["system_prompt"] for g in gens} == {"Be brief.", ""}


def test_exported_files_load_with_datasets_and_trl_templates(home, tmp_path, demo_model_dir):
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl.data_utils import maybe_apply_chat_template

    give_feedback(FeedbackLog(home, "alice"))
    tok = AutoTokenizer.from_pretrained(demo_model_dir)
    expected_columns = {"sft": {"messages"}, "preference": {"prompt", "chosen", "rejected"},
                        "unpaired": {"prompt", "completion", "label"}}
    for fmt, columns in expected_columns.items():
        out = tmp_path / f"{fmt}.jsonl"
        assert run("export", "-p", "alice", "-f", fmt, "-o", out) == 0
        ds = load_dataset("json", data_files=str(out), split="train")
        assert set(ds.column_names) == columns and len(ds) == len(read_jsonl(out))
        rendered = maybe_apply_chat_template(ds[0], tok)
        text = " ".join(v for v in rendered.values() if isinstance(v, str))
        assert "Capital of France?" in text  # the chat template turned the row into model text
    labels = load_dataset("json", data_files=str(tmp_path / "unpaired.jsonl"), split="train")["label"]
    assert set(labels) == {True, False}


def test_import_plain_text_and_implicit_prompts(home, tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},  # standard, explicit
                {"chosen": "The sky is blue.", "rejected": "The sky is green."},  # standard, implicit
                {  # conversational, implicit prompt (shared prefix), with a system turn
                    "chosen": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                               {"role": "assistant", "content": "Hello!"}],
                    "rejected": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Go away."}],
                },
                {"prompt": "x", "chosen": " same", "rejected": " same"},  # nothing to learn: skipped
            ]
        )
        + "\n\n"
    )
    log = FeedbackLog(home, "bob")
    result = import_file(log, src)
    assert (result.format, result.rows, result.skipped) == ("preference", 3, 1)
    assert [r.data for r in preference_rows(log.replay())] == [
        {"prompt": [{"role": "user", "content": "The sky is"}],
         "chosen": [{"role": "assistant", "content": " blue."}],
         "rejected": [{"role": "assistant", "content": " green."}]},
        {"prompt": [{"role": "user", "content": "The sky is"}],
         "chosen": [{"role": "assistant", "content": " blue."}],
         "rejected": [{"role": "assistant", "content": " green."}]},
        {"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
         "chosen": [{"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "assistant", "content": "Go away."}]},
    ][1:]  # the two plain-text rows are the same pair: deduplicated
    state = log.replay()
    assert len(state.conversations) == 3
    picked = [m.content for m in state.messages.values() if m.picked]
    assert picked == [" blue.", " blue.", "Hello!"]


def test_import_sft_and_unpaired(home, tmp_path):
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"messages": [{"role": "user", "content": "2+2?"},
                                            {"role": "assistant", "content": "4"}]}) + "\n")
    unpaired = tmp_path / "kto.jsonl"
    unpaired.write_text(json.dumps({"prompt": "2+2?", "completion": "5", "label": False}) + "\n")
    log = FeedbackLog(home, "bob")
    assert import_file(log, sft).format == "sft"
    assert import_file(log, unpaired, "unpaired").rows == 1
    state = log.replay()
    assert [(m.content, m.rating) for m in state.messages.values() if m.role == "assistant"] == [("4", 1), ("5", -1)]
    assert len(sft_rows(state)) == 1 and len(unpaired_rows(state)) == 2


SFT_ROW = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
PREF_ROW = {"prompt": "q", "chosen": "a", "rejected": "b"}
KTO_ROW = {"prompt": "q", "completion": "a", "label": True}


@pytest.mark.parametrize(
    "good, bad_line, message",
    [
        (SFT_ROW, "{oops", "is not valid JSON"),
        (PREF_ROW, '{"chosen": "a"}', "is missing 'rejected' for the preference format"),
        (SFT_ROW, '{"messages": [{"role": "user", "content": "hi"}]}', "the last of 'messages' must be an assistant turn"),
        (PREF_ROW, '{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"}',
         "'prompt' is a list of messages but 'chosen' is not"),
        (PREF_ROW, '{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "user", "content": "a"}], '
                   '"rejected": []}', "'chosen' must be exactly one assistant message"),
        (PREF_ROW, '{"chosen": "abc", "rejected": "xyz"}', "has no 'prompt', and 'chosen' and 'rejected' share no prefix"),
        (KTO_ROW, '{"prompt": "p", "completion": "c", "label": "yes"}', "'label' must be true or false"),
        (SFT_ROW, '{"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
         "'messages' item 0 must be"),
        (PREF_ROW, '[1, 2]', "is not a JSON object"),
    ],
)
def test_malformed_import_names_the_line_and_appends_nothing(home, tmp_path, good, bad_line, message):
    log = FeedbackLog(home, "bob")
    log.rate("existing", 1)
    before = log.path.read_bytes()
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n" + bad_line + "\n" + json.dumps(good) + "\n")
    with pytest.raises(UserError) as info:
        import_file(log, src)
    assert f"{src}:3: {message}" in str(info.value)
    assert str(info.value).endswith("(nothing was imported).")
    assert log.path.read_bytes() == before


def test_unknown_format_in_first_row_is_named(home, tmp_path):
    src = tmp_path / "odd.jsonl"
    src.write_text('{"text": "hello"}\n')
    with pytest.raises(UserError, match="odd.jsonl:1: cannot tell the format"):
        import_file(FeedbackLog(home, "bob"), src)
    src.write_text("\n\n")
    with pytest.raises(UserError, match="has no rows to import"):
        import_file(FeedbackLog(home, "bob"), src)


@pytest.mark.slow
def test_cli_errors_exit_2_with_one_sentence(home, tmp_path):
    env = {**os.environ, "TUNELOOP_HOME": str(home.root)}
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "p", "completion": "c", "label": true}\n\xff\xfe\n')
    out = subprocess.run([sys.executable, "-m", "engine", "import", str(bad), "-p", "bob"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "bad.jsonl:2: is not UTF-8" in out.stderr and "Traceback" not in out.stderr
    assert not FeedbackLog(home, "bob").path.exists()

    assert run("export", "-p", "nobody", "-f", "sft", "-o", tmp_path / "x.jsonl") == 2
    assert not (tmp_path / "x.jsonl").exists()
    assert run("export", "-p", "bob", "-f", "dpo", "-o", tmp_path / "x.jsonl") == 2
    assert run("import", tmp_path / "missing.jsonl", "-p", "bob") == 2
    assert run("import", bad, "-p", "../escape") == 2


def test_export_warns_about_skipped_lines(home, tmp_path, capsys):
    log = FeedbackLog(home, "alice")
    give_feedback(log)
    with open(log.path, "ab") as f:
        f.write(b"garbage\n")
    assert run("export", "-p", "alice", "-f", "sft", "-o", tmp_path / "s.jsonl") == 0
    err = capsys.readouterr().err
    assert "warning: 1 unreadable feedback line(s) skipped (events.jsonl:" in err


# ---- property: whatever feedback a user gives, export -> import -> export is the identity -------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.feedback.events import complete, validate  # noqa: E402
from engine.feedback.import_rows import plan_import  # noqa: E402
from engine.feedback.replay import replay  # noqa: E402
from engine.feedback.rows import rows_for  # noqa: E402

TEXT = st.text(alphabet=st.sampled_from(list("ab \n✓é\"")), max_size=5)


@st.composite
def feedback_events(draw):
    events, replies = [], {}
    for c in range(draw(st.integers(1, 3))):
        conv, ids = f"c{c}", []
        for i in range(draw(st.integers(1, 7))):
            parent = draw(st.sampled_from([None] + ids))
            role = draw(st.sampled_from(["user", "assistant", "assistant", "system"]))
            ev = {"type": "message", "id": f"{conv}m{i}", "conversation_id": conv, "parent_id": parent,
                  "role": role, "content": draw(TEXT)}
            if role == "assistant" and draw(st.booleans()):
                ev["generation"] = {"system_prompt": draw(st.sampled_from(["", "Be brief.", "Sé ✓"]))}
            events.append(ev)
            ids.append(ev["id"])
            if role == "assistant":
                replies.setdefault((conv, parent), []).append(ev["id"])
    all_replies = [r for group in replies.values() for r in group]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["rating", "edit", "choice"]))
        if not all_replies:
            break
        target = draw(st.sampled_from(all_replies))
        if kind == "rating":
            events.append({"type": "rating", "message_id": target, "value": draw(st.sampled_from([-1, 0, 1]))})
        elif kind == "edit":
            events.append({"type": "edit", "message_id": target, "content": draw(TEXT)})
        else:
            group = next(g for g in replies.values() if target in g)
            others = draw(st.lists(st.sampled_from(group), unique=True))
            cands = [target] + [o for o in others if o != target]
            events.append({"type": "choice", "chosen_id": target, "candidates": cands,
                           "kind": draw(st.sampled_from(["regenerate", "compare", "best_of"]))})
    return [validate(complete(e)) for e in events]


@settings(max_examples=60, deadline=None)
@given(feedback_events())
def test_round_trip_property(events):
    import tempfile
    from pathlib import Path

    state = replay(events)
    assert state.problems == []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("sft", "preference", "unpaired"):
            rows = [r.data for r in rows_for(state, fmt)]
            for r in rows:
                turns = r.get("messages", r.get("prompt"))
                assert any(t["role"] == "user" for t in turns)
                if fmt == "preference":
                    assert r["chosen"] != r["rejected"]
            if not rows:
                continue
            path = Path(tmp) / f"{fmt}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            imported, result = plan_import(path)
            assert result.format == fmt and result.rows == len(rows)
            again = replay([validate(complete(e)) for e in imported])
            assert [r.data for r in rows_for(again, fmt)] == rows
