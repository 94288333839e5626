"""Shared fixtures. Every test is offline: no hub downloads, ever."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from engine.home import Home  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    """A fresh, empty tuneloop home in a temp dir (also exported as $TUNELOOP_HOME)."""
    root = tmp_path / "home"
    monkeypatch.setenv("TUNELOOP_HOME", str(root))
    return Home.resolve(root)


# --- demo model fixtures (helper B, engine/demo) -------------------------------------------------


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory):
    """The offline demo model, built once per test session (about a second); treat it as read-only."""
    from engine.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("demo-model") / "demo")


def install_demo_model(home: Home, source) -> Home:
    """Copy a built demo model into ``home``/models/demo so load_model skips the build."""
    import shutil

    from engine.safe_files import ensure_dir

    if not (home.demo_model_dir / "model.safetensors").is_file():
        ensure_dir(home.models_dir)
        shutil.copytree(source, home.demo_model_dir)
    return home


@pytest.fixture
def demo_home(home, demo_model_dir) -> Home:
    """The ``home`` fixture with the demo model already in home/models/demo (a private copy)."""
    return install_demo_model(home, demo_model_dir)


def add_user_profile(home: Home, name: str, text: str = '[model]\nid = "builtin:demo"\ndevice = "cpu"\n') -> Home:
    """A user profile ``name`` in ``home`` (the CLI refuses profile names it does not know)."""
    from engine.safe_files import ensure_dir

    ensure_dir(home.profiles_dir)
    (home.profiles_dir / f"{name}.toml").write_text(text)
    return home
