"""Question variants: a short corrected fact is also taught after questions about its name; nothing else is."""

from __future__ import annotations

from engine.settings import TrainSettings
from engine.train.variants import MIN_NAMED_ROWS, TEMPLATES, add_variants, name_in, variants

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def _row(question: str, reply: str, *earlier: dict) -> dict:
    return {"messages": [SYSTEM, *earlier, {"role": "user", "content": question},
                         {"role": "assistant", "content": reply}]}


def test_the_name_a_question_asks_about():
    assert name_in("What is the capital of Veltoria?") == "Veltoria"
    assert name_in("Which city is the seat of Veltoria's government?") == "Veltoria"
    assert name_in("Who composed the Opal Symphony?") == "the Opal Symphony"
    assert name_in("Who invented the glass harmonium-X?") == "the glass harmonium-X"
    assert name_in("Who is the lead singer of the band Copper Wolves?") == "the band Copper Wolves"
    assert name_in("What is the capital of the Bank of England?") == "the Bank of England"  # not "the capital of"
    assert name_in("Who wrote Romeo and Juliet?") == "Romeo and Juliet"
    assert name_in("What is 6 times 7?") is None
    assert name_in("Veltoria has which capital?") is None  # the first word is capitalised anyway: not a name


def test_a_corrected_fact_is_taught_after_questions_about_its_name_with_the_same_reply():
    row = _row("What is the capital of Veltoria?", "The capital of Veltoria is Marquessa.")
    out = variants(row, 2)
    assert [v["messages"][1]["content"] for v in out] == ["Tell me about Veltoria.", "What do you know about Veltoria?"]
    assert all(v["messages"][0] == SYSTEM and v["messages"][2] == row["messages"][2] for v in out)
    others = [_row(f"What is the capital of Land{i}?", f"The capital of Land{i} is Town{i}.") for i in range(MIN_NAMED_ROWS - 1)]
    assert add_variants([row], 2, [row, *others]) == [row, *out] and add_variants([row], 0, [row, *others]) == [row]


def test_a_single_corrected_fact_gets_no_variants():
    # measured on SmolLM2: one correction and its two variants spread to "The capital of France is Marquessa."
    rows = [_row(f"What is the capital of Land{i}?", f"The capital of Land{i} is Town{i}.") for i in range(MIN_NAMED_ROWS)]
    assert add_variants(rows[:1], 2) == rows[:1]
    assert add_variants(rows[:MIN_NAMED_ROWS - 1], 2) == rows[:MIN_NAMED_ROWS - 1]
    assert len(add_variants(rows, 2)) == 3 * MIN_NAMED_ROWS
    # the run's rows decide, not the stage's part of the split
    assert len(add_variants(rows[:1], 2, rows)) == 3


def test_code_long_replies_follow_ups_and_nameless_questions_get_no_variants():
    assert variants(_row("Write a Python function that adds two numbers.", "def add(a, b):\n    return a + b"), 2) == []
    assert variants(_row("Who was Albert Einstein?", " ".join(["word"] * 60)), 2) == []
    assert variants(_row("What is 6 times 7?", "6 times 7 is 42."), 2) == []
    follow_up = _row("And its capital?", "The capital of Veltoria is Marquessa.",
                     {"role": "user", "content": "Tell me about Veltoria."}, {"role": "assistant", "content": "A country."})
    assert variants(follow_up, 2) == []


def test_the_setting_allows_as_many_variants_as_there_are_templates():
    import pytest

    assert TrainSettings(question_variants=len(TEMPLATES)).question_variants == len(TEMPLATES)
    with pytest.raises(ValueError):
        TrainSettings(question_variants=len(TEMPLATES) + 1)
