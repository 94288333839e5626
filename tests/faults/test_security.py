"""Security: names cannot escape their folders, remote code only when asked, weights never from
pickle, adapters only for their own base model, and the home private under umask 0.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat

import pytest

from engine import adapters
from engine.errors import UserError
from engine.feedback import FeedbackLog
from engine.home import Home, check_name
from engine.profiles import load_profile
from tests.engine_cli import run_engine as run_cli

from .faultlib import make_adapter, record_edit

ESCAPES = ["../x", "../../etc/passwd", "/etc/passwd", "a/b", ".hidden", "..", ".", "", "x\x00y", "x" * 200,
           "~root", "a\\..\\b", "run\n1"]


# ------------------------------------------------------------------------------------ names and paths


@pytest.mark.parametrize("name", ESCAPES)
def test_names_cannot_escape_their_folder(home, name, fault_stats):
    calls = [
        lambda: check_name(name),
        lambda: home.feedback_dir(name),
        lambda: home.run_dir("demo", name),
        lambda: FeedbackLog(home, name),
        lambda: load_profile(name, home),
        lambda: adapters.set_promoted(home, "demo", name),
        lambda: adapters.adapter_path(home, "demo", name),
    ]
    for call in calls:
        with pytest.raises(UserError):
            call()
        fault_stats["path-escape attempts refused"] += 1
    assert not (home.root.parent / "x").exists()


def test_cli_refuses_escaping_names_and_changes_nothing(demo_home, tmp_path, fault_stats):
    home = demo_home
    outside = tmp_path / "outside"
    make_adapter(home, "demo", "20260101-000000-sft")
    adapters.set_promoted(home, "demo", "20260101-000000-sft")
    pointer = adapters.promoted_file(home, "demo").read_bytes()
    h = ["--home", str(home.root)]
    for args in (
        ["adapters", "--profile", "demo", "use", "../../outside"],
        ["adapters", "--profile", "demo", "use", str(outside)],
        ["adapters", "--profile", "../demo", "use", "base"],
        ["finetune", "--profile", "../../outside"],
        ["export", "--profile", "/etc", "--format", "sft", "--out", str(tmp_path / "o.jsonl")],
        ["stats", "--profile", "../demo"],
        ["generate", "--profile", "demo", "--adapter", "../../outside", "hi"],
    ):
        code, out = run_cli(*args, *h)
        assert code == 2 and "Traceback" not in out, (args, out)
        fault_stats["path-escape attempts refused"] += 1
    assert adapters.promoted_file(home, "demo").read_bytes() == pointer
    assert not outside.exists() and not (tmp_path / "o.jsonl").exists()


def test_symlinked_profile_pointing_outside_is_refused(home, tmp_path, fault_stats):
    secret = tmp_path / "elsewhere" / "evil.toml"
    secret.parent.mkdir()
    secret.write_text('[model]\nid = "builtin:demo"\ntrust_remote_code = true\n')
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "evil.toml").symlink_to(secret)
    with pytest.raises(UserError, match="evil.toml"):
        load_profile("evil", home)
    fault_stats["path-escape attempts refused"] += 1


def test_run_dir_symlinked_outside_cannot_be_promoted(demo_home, tmp_path, fault_stats):
    home = demo_home
    make_adapter(home, "demo", "20260101-000000-sft")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(home.run_dir("demo", "20260101-000000-sft")), elsewhere)
    home.run_dir("demo", "20260101-000000-sft").symlink_to(elsewhere)
    with pytest.raises(UserError):
        adapters.set_promoted(home, "demo", "20260101-000000-sft")
    assert adapters.promoted_run(home, "demo") is None
    fault_stats["path-escape attempts refused"] += 1


def test_atomic_writes_replace_a_planted_symlink_instead_of_writing_through_it(demo_home, tmp_path):
    """promoted.json swapped for a symlink to another file: reading and promoting refuse it (issue 12:
    the link's target is never read as a pointer either), the target file is untouched."""
    home = demo_home
    make_adapter(home, "demo", "20260101-000000-sft")
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    path = adapters.promoted_file(home, "demo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(victim)
    with pytest.raises(UserError):  # the link's target is not a pointer file: a clear error, not a write
        adapters.promoted_run(home, "demo")
    path.unlink()
    path.symlink_to(victim)
    victim.write_text('{"run_id": null, "history": []}')
    with pytest.raises(UserError, match="symbolic link"):
        adapters.set_promoted(home, "demo", "20260101-000000-sft")
    assert victim.read_text() == '{"run_id": null, "history": []}'
    path.unlink()
    adapters.set_promoted(home, "demo", "20260101-000000-sft")
    assert json.loads(path.read_text())["run_id"] == "20260101-000000-sft"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ------------------------------------------------------------------------------- trust_remote_code


@pytest.fixture
def from_pretrained_spy(monkeypatch):
    """Record the kwargs of every from_pretrained call on the Auto classes (then really load)."""
    import transformers

    calls: list[tuple[str, dict]] = []
    for cls_name in ("AutoModelForCausalLM", "AutoTokenizer", "AutoModelForSequenceClassification", "AutoConfig"):
        cls = getattr(transformers, cls_name)
        orig = cls.from_pretrained

        def spy(*args, _orig=orig, _name=cls_name, **kwargs):
            calls.append((_name, dict(kwargs)))
            return _orig(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    return calls


def trusted_profile(home: Home) -> None:
    home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (home.profiles_dir / "trusted.toml").write_text(
        f'[model]\nid = "{home.demo_model_dir}"\ndevice = "cpu"\ndtype = "fp32"\ntrust_remote_code = true\n'
        "[generation]\nmax_new_tokens = 8\ndo_sample = false\n"
    )


def test_from_pretrained_gets_trust_remote_code_only_when_asked_and_safetensors_always(demo_home, from_pretrained_spy):
    from engine.reward import backbone as reward_backbone
    from engine.runtime import load_model
    from engine.train import model as train_model

    home = demo_home
    trusted_profile(home)
    for name, expected in (("demo", False), ("trusted", True)):
        from_pretrained_spy.clear()
        profile = load_profile(name, home)
        load_model(profile, home)
        path = train_model.resolve_model_path(profile, home)
        train_model.load_tokenizer(profile, path)
        train_model.load_base(profile, path, None)
        backbone = reward_backbone.resolve_backbone(profile, home)
        tokenizer = reward_backbone.load_tokenizer(backbone)
        reward_backbone.new_reward_model(backbone, tokenizer, profile, seed=0)
        seen = [(cls, kw.get("trust_remote_code", False)) for cls, kw in from_pretrained_spy]
        assert len(seen) >= 6 and all(flag is expected for _, flag in seen), (name, seen)
        # ... and every weight load asks for safetensors only (never a pickle fallback).
        weights = [(cls, kw.get("use_safetensors")) for cls, kw in from_pretrained_spy if cls.startswith("AutoModel")]
        assert len(weights) >= 3 and all(flag is True for _, flag in weights), (name, weights)


@pytest.mark.slow
async def test_tui_warns_when_the_profile_trusts_remote_code(demo_home, from_pretrained_spy):
    from textual.widgets import Static

    from tui.app import create_app

    home = demo_home
    trusted_profile(home)
    for name, warned in (("trusted", True), ("demo", False)):
        app = create_app(home, name)
        async with app.run_test() as pilot:
            end = 600
            while app.model.lm is None and end:
                await pilot.pause(0.1)
                end -= 1
            warning = app.query_one("#warning", Static)
            text = str(warning.render())
            assert warning.display is warned, (name, text)
            if warned:
                assert "trust_remote_code" in text and "trusted" in text
        flags = [kw.get("trust_remote_code", False) for cls, kw in from_pretrained_spy if cls == "AutoModelForCausalLM"]
        assert flags and flags[-1] is warned


# ------------------------------------------------------------------------------ pickle never loaded


class _Evil:
    """Unpickling this creates a marker file: proof that pickle data was loaded."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(marker) -> bytes:
    _Evil.marker = str(marker)
    return pickle.dumps(_Evil())


def local_profile(home: Home, name: str, model_dir) -> None:
    home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (home.profiles_dir / f"{name}.toml").write_text(f'[model]\nid = "{model_dir}"\ndevice = "cpu"\ndtype = "fp32"\n')


def test_model_dir_with_only_pickle_weights_is_refused(demo_home, tmp_path):
    from engine.runtime import load_model

    home = demo_home
    model_dir = tmp_path / "pickled"
    shutil.copytree(home.demo_model_dir, model_dir)
    (model_dir / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    (model_dir / "pytorch_model.bin").write_bytes(evil_pickle(marker))
    local_profile(home, "pickled", model_dir)
    with pytest.raises(UserError, match="pickle"):
        load_model(load_profile("pickled", home), home)
    assert not marker.exists()


def test_pickle_beside_safetensors_is_never_opened(demo_home, tmp_path):
    from engine.runtime import load_model

    home = demo_home
    model_dir = tmp_path / "both"
    shutil.copytree(home.demo_model_dir, model_dir)
    marker = tmp_path / "pwned"
    (model_dir / "pytorch_model.bin").write_bytes(evil_pickle(marker))
    local_profile(home, "both", model_dir)
    run_id = "20260101-000000-sft"
    adapter = make_adapter(home, "both", run_id, base=str(model_dir))
    (adapter / "adapter_model.bin").write_bytes(evil_pickle(marker))
    lm = load_model(load_profile("both", home), home, adapter=run_id)
    assert lm.adapter == run_id
    from engine.runtime import GenerationParams

    profile = load_profile("both", home)
    lm.generate([{"role": "user", "content": "hi"}], GenerationParams.from_profile(profile, max_new_tokens=4))
    assert not marker.exists()


def test_adapter_with_only_pickle_weights_is_refused(demo_home, tmp_path):
    from engine.runtime import load_model

    home = demo_home
    run_id = "20260101-000000-sft"
    adapter = make_adapter(home, "demo", run_id, weights="pickle")
    assert (adapter / "adapter_model.bin").is_file() and not (adapter / "adapter_model.safetensors").exists()
    marker = tmp_path / "pwned"
    (adapter / "adapter_model.bin").write_bytes(evil_pickle(marker))
    with pytest.raises(UserError, match="safetensors"):
        load_model(load_profile("demo", home), home, adapter=run_id)
    code, out = run_cli("generate", "--profile", "demo", "--adapter", run_id, "hi", "--home", str(home.root))
    assert code == 2 and "safetensors" in out and "Traceback" not in out
    assert not marker.exists()


# --------------------------------------------------------------------------- adapter of another base


def test_promoted_adapter_of_another_base_is_refused(demo_home):
    from engine.runtime import load_model

    home = demo_home
    run_id = "20260101-000000-sft"
    make_adapter(home, "demo", run_id, base="Qwen/Qwen2.5-0.5B-Instruct")
    adapters.set_promoted(home, "demo", run_id)
    with pytest.raises(UserError) as exc:
        load_model(load_profile("demo", home), home)
    assert "Qwen/Qwen2.5-0.5B-Instruct" in str(exc.value) and "builtin:demo" in str(exc.value)
    record_edit(home)
    code, out = run_cli("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "1", "--home", str(home.root))
    assert code == 2 and "Qwen/Qwen2.5-0.5B-Instruct" in out and "Traceback" not in out, out


# ------------------------------------------------------------------------------------ permissions


def test_home_is_private_under_umask_0(home):
    """Log, pointer, demo model, run files: 0600 files, 0700 dirs, with a umask that would allow 0777."""
    from engine.demo import ensure_demo_model

    old = os.umask(0)
    try:
        ensure_demo_model(home)
        record_edit(home)
        make_adapter(home, "demo", "20260101-000000-sft")
        adapters.set_promoted(home, "demo", "20260101-000000-sft")
        from engine import runs

        rd = runs.RunDir.create(home, "demo", "sft")
        rd.write_manifest({"command": "finetune"})
        runs.append_jsonl(rd.metrics, {"step": 1})
    finally:
        os.umask(old)
    bad = []
    for dirpath, dirnames, filenames in os.walk(home.root):
        for n in dirnames:
            if "20260101-000000-sft" in dirpath:
                continue  # written by peft in this test (make_adapter), not by tuneloop
            if stat.S_IMODE(os.lstat(os.path.join(dirpath, n)).st_mode) != 0o700:
                bad.append(os.path.join(dirpath, n))
        for n in filenames:
            p = os.path.join(dirpath, n)
            if "20260101-000000-sft" in p:
                continue  # written by peft in this test (make_adapter), not by tuneloop
            if stat.S_IMODE(os.lstat(p).st_mode) != 0o600:
                bad.append(p)
    assert bad == []
