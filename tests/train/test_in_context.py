"""A row is trained in the context it will be asked in (issue 25 item 4): imported rows without a system message
get the profile's system prompt, so `engine generate` (which always sends it) gives the taught answer."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import run_engine

ROWS = [{"messages": [{"role": "user", "content": "What is the capital of Zorbia?"},
                      {"role": "assistant", "content": "The capital of Zorbia is Quenlet."}]},
        {"messages": [{"role": "user", "content": "What colour is the Zorbian flag?"},
                      {"role": "assistant", "content": "The Zorbian flag is teal."}]}]


@pytest.mark.slow
def test_imported_rows_without_a_system_message_are_taught_as_the_chat_asks(demo_home, tmp_path):
    path = tmp_path / "liked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    code, out = run_engine("import", str(path), "--profile", "demo", "--home", str(demo_home.root))
    assert code == 0, out
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 0 and "PROMOTED" in out, out
    assert "context: the rows of 2 conversation(s) without a system message were trained with the profile" in out
    (run_dir,) = [p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir()]
    frozen = [json.loads(x) for x in (run_dir / "data" / "sft.train.jsonl").read_text().splitlines()]
    frozen += [json.loads(x) for x in (run_dir / "data" / "sft.eval.jsonl").read_text().splitlines()]
    assert all(r["messages"][0] == {"role": "system", "content": "You are a helpful assistant."} for r in frozen)
    code, out = run_engine("generate", "What is the capital of Zorbia?", "--profile", "demo", "--greedy",
                           "--max-new-tokens", "24", "--home", str(demo_home.root))
    assert code == 0 and "The capital of Zorbia is Quenlet." in out, out
