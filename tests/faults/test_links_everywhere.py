"""No read or write outside the home through a link, for every kind of file tuneloop keeps (issues 29 and 30).

Issue 12's tests covered the log, the run lock and the pointer; these plant a link at every other place an
independent campaign found one followed: an unfinished run's manifest, data, checkpoints, trainer state,
COMPLETE markers, metrics and stages folder (``finetune --resume``), a parent run's frozen rows, an adapter's
weights, the runs/ profiles/ and models/ folders, config.toml, the demo model and its lock file. Each case
checks what the user would notice: exit 2 with one sentence naming the link, no traceback, and the folder
outside byte-for-byte as it was (nothing written there, no adapter built or published into it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from engine import runs
from engine.errors import UserError
from engine.safe_files import LinkRefused
from tests.engine_cli import run_engine

from .faultlib import fake_unfinished_run, make_adapter, record_edit

RUN = "20260101-000000-sft"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders): what 'untouched' is compared with."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def refused(code: int, out: str, link: Path) -> None:
    assert code == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "symbolic link" in lines[0], out
    assert str(link) in lines[0] or str(link.parent) in lines[0], out


def plant(link: Path, outside: Path) -> Path:
    """Move what is at ``link`` to ``outside`` (same bytes: only the link differs) and link to it."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(link), str(outside))
    link.symlink_to(outside, target_is_directory=outside.is_dir())
    return outside


# ------------------------------------------------------------------------------- finetune --resume

RESUME_LINKS = [
    "manifest.json", "data", "data/sft.train.jsonl", "data/split.json", "metrics.jsonl", "stages",
    "checkpoints/1-sft/checkpoint-2", "checkpoints/1-sft/checkpoint-2/COMPLETE",
    "checkpoints/1-sft/checkpoint-2/trainer_state.json", "checkpoints/1-sft/checkpoint-2/optimizer.pt",
]


@pytest.mark.parametrize("where", RESUME_LINKS)
def test_resume_refuses_a_link_anywhere_in_the_unfinished_run(home, tmp_path, where, fault_stats):
    root = fake_unfinished_run(home)
    outside = plant(root / where, tmp_path / "outside" / Path(where).name)
    before = snapshot(outside.parent)
    code, out = run_engine("finetune", "--profile", "demo", "--home", str(home.root), "--resume")
    refused(code, out, root / where)
    assert snapshot(outside.parent) == before
    assert not (root / "adapter").exists()
    fault_stats["planted links refused (issues 29/30)"] += 1


def test_a_checkpoint_cannot_vouch_for_itself(home, fault_stats):
    """Tampered pickles with a COMPLETE marker rewritten to match: the hashes in the run's manifest still refuse."""
    root = fake_unfinished_run(home)
    ckpt = root / "checkpoints" / "1-sft" / "checkpoint-2"
    (ckpt / "optimizer.pt").write_bytes(b"a pickle that runs code")
    marker = json.loads((ckpt / "COMPLETE").read_text())
    marker["torch_files"] = {"optimizer.pt": runs.sha256_file(ckpt / "optimizer.pt")}
    (ckpt / "COMPLETE").write_text(json.dumps(marker))
    with pytest.raises(UserError, match="optimizer.pt was changed"):
        runs.newest_complete_checkpoint(ckpt.parent)
    fault_stats["tampered checkpoint files refused"] += 1


def test_stage_adapter_is_never_published_into_a_linked_stages_folder(home, tmp_path):
    root = fake_unfinished_run(home)
    outside = plant(root / "stages", tmp_path / "outside-stages")
    with pytest.raises(LinkRefused):
        with runs.publish_dir(root / "stages" / "1-sft" / "adapter") as tmp:
            (tmp / "adapter_model.safetensors").write_bytes(b"weights")
    assert list(outside.iterdir()) == []


def test_a_parent_runs_linked_rows_are_not_read(home, tmp_path):
    """The rows a parent adapter learned (what the gate holds out against) never come from a linked file."""
    from engine.train import data

    root = fake_unfinished_run(home)
    (root / "report.json").write_text(json.dumps({"promoted": True, "adapter_rows": "all"}))
    foreign = {"messages": [{"role": "user", "content": "SECRET?"}, {"role": "assistant", "content": "SECRET"}]}
    outside = plant(root / "data" / "sft.train.jsonl", tmp_path / "outside" / "sft.train.jsonl")
    outside.write_text(json.dumps(foreign) + "\n")
    from engine.safe_files import LinkRefused

    with pytest.raises(LinkRefused, match="sft.train.jsonl is a symbolic link"):  # refused, not taken as "none"
        data.adapter_rows(home, "demo", RUN)


# ------------------------------------------------------------------------------- adapters and runs/


@pytest.fixture
def adapter_home(demo_home):
    make_adapter(demo_home, "demo", RUN)
    return demo_home


def test_adapter_weights_linked_outside_are_not_loaded(adapter_home, tmp_path, fault_stats):
    home = adapter_home
    link = home.run_dir("demo", RUN) / "adapter" / "adapter_model.safetensors"
    plant(link, tmp_path / "outside" / "adapter_model.safetensors")
    code, out = run_engine("generate", "--profile", "demo", "--home", str(home.root), "--adapter", RUN,
                           "--max-new-tokens", "2", "Hi")
    refused(code, out, link)
    code, out = run_engine("adapters", "use", RUN, "--profile", "demo", "--home", str(home.root))
    refused(code, out, link)
    fault_stats["planted links refused (issues 29/30)"] += 2


@pytest.mark.parametrize("which", ["runs", "runs/demo"])
def test_linked_runs_folder_is_refused(adapter_home, tmp_path, which, fault_stats):
    home = adapter_home
    link = home.root / which
    plant(link, tmp_path / "outside" / Path(which).name)
    code, out = run_engine("generate", "--profile", "demo", "--home", str(home.root), "--adapter", RUN,
                           "--max-new-tokens", "2", "Hi")
    refused(code, out, link)
    fault_stats["planted links refused (issues 29/30)"] += 1


# ------------------------------------------------------------------------------- profiles and config


def test_linked_profiles_folder_is_refused(home, tmp_path, fault_stats):
    outside = tmp_path / "outside-profiles"
    outside.mkdir()
    (outside / "mine.toml").write_text('[model]\nid = "builtin:demo"\n')
    home.ensure()
    home.profiles_dir.symlink_to(outside, target_is_directory=True)
    code, out = run_engine("profiles", "--home", str(home.root))
    refused(code, out, home.profiles_dir)
    fault_stats["planted links refused (issues 29/30)"] += 1


def test_linked_config_is_refused(home, tmp_path, fault_stats):
    outside = tmp_path / "config.toml"
    outside.write_text('default_profile = "demo"\n')
    home.ensure()
    home.config_path.symlink_to(outside)
    code, out = run_engine("stats", "--home", str(home.root))
    refused(code, out, home.config_path)
    fault_stats["planted links refused (issues 29/30)"] += 1


# ------------------------------------------------------------------------------- the demo model


def test_demo_model_is_never_built_into_a_linked_models_folder(home, tmp_path, fault_stats):
    outside = tmp_path / "outside-models"
    outside.mkdir()
    home.ensure()
    home.models_dir.symlink_to(outside, target_is_directory=True)
    code, out = run_engine("demo-model", "--home", str(home.root))
    refused(code, out, home.models_dir)
    assert list(outside.iterdir()) == []
    fault_stats["planted links refused (issues 29/30)"] += 1


@pytest.mark.parametrize("target", ["dangling", "foreign"])
def test_planted_demo_lock_is_not_created_or_opened(home, tmp_path, target, fault_stats):
    victim = tmp_path / "victim.txt"
    if target == "foreign":
        victim.write_bytes(b"someone else's file\n")
    home.ensure()
    home.models_dir.mkdir(mode=0o700)
    lock = home.models_dir / ".demo.lock"
    lock.symlink_to(victim)
    code, out = run_engine("demo-model", "--home", str(home.root))
    refused(code, out, lock)
    if target == "dangling":
        assert not victim.exists()
    else:
        assert victim.read_bytes() == b"someone else's file\n"
    assert not home.demo_model_dir.exists()
    fault_stats["planted links refused (issues 29/30)"] += 1


@pytest.mark.parametrize("which", ["demo", "demo/model.safetensors", "demo/config.json"])
def test_linked_demo_model_or_weights_are_not_loaded(demo_home, tmp_path, which, fault_stats):
    home = demo_home
    link = home.models_dir / which
    plant(link, tmp_path / "outside" / Path(which).name)
    code, out = run_engine("generate", "--profile", "demo", "--home", str(home.root), "--max-new-tokens", "2", "Hi")
    refused(code, out, link)
    fault_stats["planted links refused (issues 29/30)"] += 1


# ------------------------------------------------------------------------------- metrics.jsonl


def test_metrics_link_is_one_sentence(home, tmp_path):
    root = fake_unfinished_run(home)
    plant(root / "metrics.jsonl", tmp_path / "outside" / "metrics.jsonl")
    with pytest.raises(LinkRefused, match="metrics.jsonl"):
        runs.append_jsonl(root / "metrics.jsonl", {"step": 3})
    with pytest.raises(LinkRefused, match="metrics.jsonl"):
        runs.read_jsonl(root / "metrics.jsonl")
    assert os.path.islink(root / "metrics.jsonl")


def test_record_edit_helper_still_works_in_a_clean_home(home):
    """Guard for the helpers above: a home without links reads and writes as before."""
    record_edit(home)
    root = fake_unfinished_run(home)
    assert runs.newest_complete_checkpoint(root / "checkpoints" / "1-sft").name == "checkpoint-2"
    assert runs.RunDir(home, "demo", RUN).read_manifest()["command"] == "finetune"
