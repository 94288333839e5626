"""Run machinery without a model: ids, the lock, checkpoints, budgets, atomic publishing, data split, plan."""

from __future__ import annotations

import os

import pytest

from engine import runs
from engine.errors import UserError
from engine.train import data, plan


def test_run_ids_sort_by_time_and_never_collide(home):
    a = runs.RunDir.create(home, "demo", "sft", now=1_700_000_000)
    b = runs.RunDir.create(home, "demo", "sft", now=1_700_000_000)
    c = runs.RunDir.create(home, "demo", "dpo", now=1_700_000_001)
    assert a.run_id != b.run_id and a.root.is_dir() and b.root.is_dir()
    assert sorted([c.run_id, b.run_id, a.run_id])[-1] == c.run_id
    assert runs.run_kind(a.run_id) == "sft" and runs.run_kind(b.run_id) == "sft"
    assert oct(a.root.stat().st_mode & 0o777) == "0o700"


def test_lock_refuses_a_second_holder_and_names_the_first(home):
    first = runs.RunLock(home, "demo").acquire("20260101-000000-sft")
    try:
        with pytest.raises(UserError, match=r"another engine finetune run is using profile 'demo' \(pid \d+, run 20260101"):
            runs.RunLock(home, "demo").acquire()
    finally:
        first.release()
    runs.RunLock(home, "demo").acquire().release()  # free again once released


def test_only_complete_checkpoints_are_trusted(tmp_path):
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"x")
    runs.mark_complete(tmp_path / "checkpoint-2")
    runs.mark_complete(tmp_path / "checkpoint-4")
    # checkpoint-6 was being written when the process died: no marker, so it is skipped
    assert runs.newest_complete_checkpoint(tmp_path).name == "checkpoint-4"
    assert runs.newest_complete_checkpoint(tmp_path / "missing") is None


def test_publish_dir_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "adapter"
    with pytest.raises(RuntimeError):
        with runs.publish_dir(target) as tmp:
            (tmp / "adapter_model.safetensors").write_bytes(b"partial")
            raise RuntimeError("disk died")
    assert not target.exists() and os.listdir(tmp_path) == []
    with runs.publish_dir(target) as tmp:
        (tmp / "adapter_config.json").write_text("{}")
    assert (target / "adapter_config.json").read_text() == "{}"
    with runs.publish_dir(target) as tmp:  # replacing keeps only the new version
        (tmp / "new.json").write_text("{}")
    assert sorted(os.listdir(target)) == ["new.json"] and sorted(os.listdir(tmp_path)) == ["adapter"]


def test_budget_and_until_parse_or_say_how_to_write_them():
    assert runs.parse_duration("6h") == 6 * 3600
    assert runs.parse_duration("90m") == 5400
    assert runs.parse_duration("1h30m") == 5400
    assert runs.parse_duration("30s") == 30
    with pytest.raises(UserError, match="write it like 6h, 90m, 30s"):
        runs.parse_duration("six hours")
    now = 1_700_000_000.0
    at = runs.parse_until("07:00", now)
    assert 0 < at - now <= 24 * 3600
    import datetime as dt

    assert dt.datetime.fromtimestamp(at).strftime("%H:%M") == "07:00"
    with pytest.raises(UserError, match="07:00"):
        runs.parse_until("25:00", now)
    d = runs.Deadline.from_options("30s", None, now=now)
    assert d.remaining(now + 10) == 20 and not d.expired(now + 10) and d.expired(now + 31)
    assert runs.Deadline.from_options("10h", "07:00", now=now).at <= now + 10 * 3600


def test_split_is_by_conversation_deterministic_and_holds_one_out():
    convs = [f"c{i}" for i in range(10)]
    a = data.split_conversations(convs, 0.2, seed=3)
    assert a == data.split_conversations(list(reversed(convs)), 0.2, seed=3)
    assert len(a.eval_conversations) == 2 and not a.eval_on_train
    assert len(data.split_conversations(convs[:2], 0.01, 0).eval_conversations) == 1
    one = data.split_conversations(["only"], 0.2, 0)
    assert one.eval_on_train and one.eval_conversations == [] and "only 1 conversation" in one.note


def test_plan_auto_explains_and_too_little_data_says_how_much_is_missing():
    counts = {"sft": 5, "pref": 6, "kto": 8, "kto_desirable": 5, "kto_undesirable": 3}
    assert plan.choose("auto", counts, 1)[0] == ["sft", "dpo"]
    few_pairs = dict(counts, pref=1)
    stages, why = plan.choose("auto", few_pairs, 1)
    assert stages == ["kto"] and "KTO" in why
    assert plan.choose("auto", {"sft": 3, "kto_desirable": 3}, 1)[0] == ["sft"]
    with pytest.raises(UserError, match="has 2: like or edit 2 more"):
        plan.choose("sft", {"sft": 2}, 4)
    with pytest.raises(UserError, match="1 liked and 0 disliked"):
        plan.choose("kto", {"kto_desirable": 1}, 1)
    with pytest.raises(UserError, match="too little feedback"):
        plan.choose("auto", {}, 1)


def test_plan_auto_trains_a_few_corrections_with_sft_not_kto():
    one_edit = {"sft": 1, "pref": 1, "kto": 2, "kto_desirable": 1, "kto_undesirable": 1, "edits": 1}
    stages, why = plan.choose("auto", one_edit, 1)
    assert stages == ["sft"] and "corrections" in why
    # a real dislike beside the corrections: KTO can use it
    assert plan.choose("auto", dict(one_edit, kto=3, kto_undesirable=2), 1)[0] == ["kto"]


def test_plan_auto_trains_accepted_revisions_with_sft_then_dpo_on_revision_pairs():
    revisions = {"sft": 20, "pref": 20, "revision_sft": 20, "revision_pref": 14, "machine_revision_pref": 6}
    stages, why = plan.choose("auto", revisions, 1)
    assert stages == ["sft", "dpo"] and "accepted revisions over their originals" in why
    # pairs the person picked beside them: the general rule's reason
    stages, why = plan.choose("auto", dict(revisions, pref=30), 1)
    assert stages == ["sft", "dpo"] and "preference pairs" in why


def test_the_profile_setting_train_method_accepts_exactly_the_registered_methods():
    from typing import get_args

    from engine.settings import Method
    from engine.train.methods import METHODS

    assert set(get_args(Method)) == {"auto", *METHODS}
