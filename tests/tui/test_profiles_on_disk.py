"""F5 marks the profile in use and which models are on disk; a model that is not on disk is said at
once (downloading from the hub, or not available offline), not after a silent "loading: tokenizer"."""

from __future__ import annotations

import json
import threading

import pytest

from engine.runtime.availability import model_availability
from tests.tui.fakes import FakeGenerator
from tests.tui.helpers import wait_for, wait_idle
from tui.app import create_app
from tui.screens.choose import ChooseScreen
from tui.widgets.status_bar import StatusBar


def test_availability_of_each_kind_of_model_id(tmp_path):
    assert model_availability("builtin:demo").on_disk
    folder = tmp_path / "model"
    folder.mkdir()
    assert model_availability(str(folder)).on_disk
    assert not model_availability(str(tmp_path / "missing")).on_disk
    gguf = tmp_path / "m.gguf"
    assert not model_availability(str(gguf)).on_disk
    gguf.write_bytes(b"GGUF")
    assert model_availability(str(gguf)).on_disk
    assert model_availability("pkg:json/tiny.gguf").on_disk  # found by find_spec, not imported
    assert not model_availability("pkg:no_such_package_xyz/tiny.gguf").on_disk
    # a hub id: in the HF cache (the layout huggingface_hub writes) or not
    cache = tmp_path / "hub"
    assert not model_availability("org/model", cache_dir=cache).on_disk
    repo = cache / "models--org--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text(json.dumps({}))
    assert model_availability("org/model", cache_dir=cache).on_disk
    assert not model_availability("org/other", cache_dir=cache).on_disk


def _profiles(home):
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "remote.toml").write_text('[model]\nid = "nobody/not-downloaded-model"\n')


@pytest.mark.slow  # seconds of pilot time: CI runs it, the fast loop does not
async def test_f5_marks_the_profile_in_use_and_models_on_disk(home):
    _profiles(home)
    app = create_app(home, "demo", lambda p, h, progress: FakeGenerator())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ChooseScreen), what="F5")
        await pilot.pause()
        labels = {o.id: str(o.prompt) for o in app.screen.query_one("#choices").options}
        assert labels["demo"].startswith("● demo") and "(on disk, in use)" in labels["demo"]
        assert not labels["remote"].startswith("●") and "not on disk" in labels["remote"]


@pytest.mark.slow
async def test_a_model_not_on_disk_is_said_at_once_offline(home, monkeypatch):
    _profiles(home)
    release = threading.Event()

    def slow(profile, home_, progress):
        progress("tokenizer", None)
        release.wait(20)
        raise OSError("no network")

    app = create_app(home, "remote", slow)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: "HF_HUB_OFFLINE" in str(app.query_one(StatusBar).render()),
                       timeout=5, what="the offline note")
        assert any("not on disk" in n.message and "HF_HUB_OFFLINE" in n.message for n in app._notifications)
        release.set()


@pytest.mark.slow  # a second or more of real time: CI runs it, the fast loop does not
async def test_a_model_not_on_disk_is_said_to_download_at_once_online(home, monkeypatch):
    _profiles(home)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    release = threading.Event()

    def slow(profile, home_, progress):
        progress("tokenizer", None)
        release.wait(20)
        raise OSError("no network")

    app = create_app(home, "remote", slow)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: "downloading" in str(app.query_one(StatusBar).render()),
                       timeout=5, what="the download note")
        assert "downloading: tokenizer" in str(app.query_one(StatusBar).render()) or \
            "downloading from the model hub" in str(app.query_one(StatusBar).render())
        assert any("downloading it from the model hub" in n.message for n in app._notifications)
        release.set()
