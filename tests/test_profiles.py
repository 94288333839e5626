"""Profiles: built-ins load, user profiles override, bad files give one sentence and exit 2."""

import os
import subprocess
import sys

import pytest

from engine.errors import UserError
from engine.home import Home
from engine.profiles import DEMO_MODEL, list_profiles, load_profile


def test_builtin_profiles_load(home):
    names = {p.name for p in list_profiles(home)}
    assert {"demo", "qwen2.5-0.5b-instruct", "qwen2.5-7b-instruct", "llama-3.1-8b-instruct"} <= names
    demo = load_profile("demo", home)
    assert demo.model.id == DEMO_MODEL and demo.is_demo
    assert demo.model.trust_remote_code is False
    qwen = load_profile("qwen2.5-7b-instruct", home)
    assert qwen.model.device == "auto" and qwen.model.dtype == "auto"
    assert qwen.lora.target_modules == "all-linear"


def test_user_profile_overrides_builtin(home):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "demo.toml").write_text('[model]\nid = "/models/mine"\n[generation]\nmax_new_tokens = 7\n')
    p = load_profile("demo", home)
    assert p.source == "user" and p.model.id == "/models/mine" and p.generation.max_new_tokens == 7


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[model\nid = 'x'", "TOML syntax error"),
        ("[model]\nid = 'x'\nflavour = 1\n", "model.flavour"),
        ("[model]\nid = 'x'\n[generation]\nmax_new_tokens = 'many'\n", "generation.max_new_tokens"),
        ("[generation]\nmax_new_tokens = 5\n", "model.id"),
        ("[model]\nid = 'x'\ndtype = 'fp8'\n", "model.dtype"),
        ("[model]\nid = 'x'\ntrust_remote_code = 'yes'\n", "model.trust_remote_code"),
        ("colour = 'blue'\n[model]\nid = 'x'\n", "colour"),
        ("[model]\nid = 'x'\n[train]\nmethod = 'ppo'\n", "train.method"),
    ],
)
def test_bad_profile_is_one_sentence_naming_file_and_key(home, text, needle):
    home.profiles_dir.mkdir(parents=True)
    path = home.profiles_dir / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        load_profile("bad", home)
    msg = str(exc.value)
    assert str(path) in msg and needle in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs", "a/b", "..", ".hidden", ""])
def test_profile_name_cannot_escape(home, name):
    with pytest.raises(UserError):
        load_profile(name, home)


def test_cli_bad_profile_exits_2_without_traceback(home):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "broken.toml").write_text("[model]\nid = 3\n")
    env = {**os.environ, "TUNELOOP_HOME": str(home.root)}
    out = subprocess.run([sys.executable, "-m", "engine", "profiles"], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert "broken.toml" in out.stderr and "model.id" in out.stderr
    assert "Traceback" not in out.stderr
    assert "qwen2.5-0.5b-instruct" in out.stdout  # the good ones are still listed


@pytest.mark.slow
def test_cli_profiles_lists_model_and_adapter(home):
    env = {**os.environ, "TUNELOOP_HOME": str(home.root), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "engine", "profiles"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    line = next(row for row in out.stdout.splitlines() if row.strip().startswith("demo"))
    assert "builtin:demo" in line and "base" in line


def test_home_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path / "env"))
    assert Home.resolve().root == tmp_path / "env"
    assert Home.resolve(tmp_path / "flag").root == tmp_path / "flag"
    monkeypatch.delenv("TUNELOOP_HOME")
    assert Home.resolve().root.name == "tuneloop"
    assert not (tmp_path / "env").exists()  # resolving creates nothing


def test_every_setting_is_declared_once_with_type_range_and_doc():
    """One schema (engine.settings): every key has a description, and GenerationParams derives from the
    [generation] table's fields instead of repeating them."""
    import dataclasses

    from engine.runtime.params import GenerationParams
    from engine.settings import TABLES, GenerationSettings, allowed

    for table, cls in TABLES.items():
        for f in dataclasses.fields(cls):
            info = cls.__pydantic_fields__[f.name]
            assert info.description, f"[{table}] {f.name} has no doc"
            assert allowed(cls, f.name)
    gen = {f.name: cls_default for f in dataclasses.fields(GenerationSettings)
           for cls_default in [GenerationSettings.__pydantic_fields__[f.name].default]}
    params = {f.name: GenerationParams.__pydantic_fields__[f.name].default for f in dataclasses.fields(GenerationParams)}
    assert params == {k: v for k, v in gen.items() if k != "best_of"}
    assert issubclass(GenerationParams, GenerationSettings.__mro__[1])


@pytest.mark.parametrize("model_id", ["pkg:tuneloop_models/smollm2-135m.gguf", "/models/x.gguf", "HuggingFaceTB/SmolLM2"])
def test_model_id_forms_are_accepted(home, model_id):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "m.toml").write_text(f'[model]\nid = "{model_id}"\n')
    assert load_profile("m", home).model.id == model_id


@pytest.mark.slow
def test_cli_profiles_prints_model_ids_as_written(home):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "odd.toml").write_text('[model]\nid = "/models/[bold]mine"\n')
    env = {**os.environ, "TUNELOOP_HOME": str(home.root), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "engine", "profiles"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "/models/[bold]mine" in out.stdout
