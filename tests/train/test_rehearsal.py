"""Rehearsal picks the prompts most like the corrected ones, and never a prompt the benchmark checks."""

from __future__ import annotations

from engine.train import rehearsal


def test_the_prompts_most_like_a_correction_are_rehearsed_first():
    pool = rehearsal.prompts()
    first = rehearsal.nearest_first(pool, {"what is the capital of veltoria?"})[:5]
    assert all(p.startswith("What is the capital of") for p in first), first


def test_every_correction_gets_its_own_neighbours_first():
    pool = rehearsal.prompts()
    asked = {"what is the capital of veltoria?", "who wrote the novel the salt lanterns?"}
    first = rehearsal.nearest_first(pool, asked)[:4]
    assert sum(p.startswith("What is the capital of") for p in first) == 2, first
    assert sum(p.startswith("Who wrote") for p in first) == 2, first
    assert sorted(rehearsal.nearest_first(pool, asked)) == sorted(pool)


def test_half_the_rehearsal_is_near_the_feedback_and_half_varied():
    pool = rehearsal.prompts()
    asked = {"what is the capital of veltoria?"}
    chosen = rehearsal.choose(pool, asked, 10)
    assert len(chosen) == len(set(chosen)) == 10
    assert all(p.startswith("What is the capital of") for p in chosen[:5]), chosen
    assert chosen[5:] == [p for p in pool if p not in chosen[:5]][:5]


def test_how_many_rows_follow_the_ratio_within_bounds():
    assert rehearsal.how_many(0.0, 10) == 0 and rehearsal.how_many(1.0, 0) == 0
    assert rehearsal.how_many(1.0, 1) == rehearsal.MIN_ROWS
    assert rehearsal.how_many(1.0, 20) == 20
    assert rehearsal.how_many(16.0, 100) == min(rehearsal.MAX_ROWS, len(rehearsal.prompts()))


def test_question_variants_count_as_trained_rows_for_the_ratio_and_the_floor():
    # one correction trained as itself and two variants keeps 8 rehearsal rows per trained row's worth
    assert rehearsal.how_many(2.0, 1, 3) == 3 * rehearsal.MIN_ROWS
    assert rehearsal.how_many(1.0, 10, 20) == 20  # the ratio counts the variants too
    assert rehearsal.how_many(1.0, 10, 10) == rehearsal.how_many(1.0, 10)


def test_rehearsal_prompts_are_disjoint_from_what_the_learning_benchmark_checks():
    from bench import learning_data as d

    ours = {p.lower() for p in rehearsal.prompts()}
    checked = {c.prompt.lower() if hasattr(c, "prompt") else str(c).lower() for c in d.CONTROLS}
    checked |= {str(p).lower() for p in d.STYLE_HELD_OUT}
    for fact in d.FACTS:
        checked |= {str(v).lower() for v in vars(fact).values() if isinstance(v, str)} if hasattr(fact, "__dict__") else set()
    assert not ours & checked
