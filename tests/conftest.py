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
