"""Two more places a planted link was followed out of the home (issue 27): ``config.toml`` as the TUI read it
(``path.read_text``), and ``models/`` as a GGUF conversion created it (``ensure_dir``). Each is refused with one
sentence naming the link, and nothing outside is read or written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.runtime import gguf
from engine.safe_files import LinkRefused


def one_sentence_naming(exc: BaseException, link: Path) -> None:
    text = str(exc)
    assert isinstance(exc, LinkRefused), repr(exc)
    assert "\n" not in text and text.count(". ") == 0 and text.endswith("."), text
    assert "symbolic link" in text and str(link) in text, text


class _Opens:
    """Every ``open`` audit event of a file named like ``name`` (builtins.open, os.open, Path.read_*)."""

    active: list[tuple[str, int]] | None = None
    name = ""

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if event == "open" and cls.active is not None and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if os.path.basename(path) == cls.name:
                flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
                cls.active.append((path, flags))

    @classmethod
    def start(cls, name: str) -> type[_Opens]:
        cls.name, cls.active = name, []
        return cls


sys.addaudithook(_Opens.hook)  # audit hooks cannot be removed: inert unless a test sets _Opens.active


@pytest.fixture
def opens():
    yield _Opens
    _Opens.active = None


# ------------------------------------------------------------------------------- config.toml


def _linked_config(home, tmp_path) -> Path:
    outside = tmp_path / "outside" / "config.toml"
    outside.parent.mkdir()
    outside.write_text('default_profile = "demo"\n[ui]\ntheme = "from-outside"\nsidebar = false\n')
    home.ensure()
    home.config_path.symlink_to(outside)
    return outside


def test_tui_refuses_a_linked_config_and_reads_nothing_outside(home, tmp_path, opens):
    from tui.config import load_ui_config

    _linked_config(home, tmp_path)
    opens.start("config.toml")
    with pytest.raises(UserError) as info:
        load_ui_config(home)
    one_sentence_naming(info.value, home.config_path)
    # every open of config.toml refused to follow a link (a plain open would have read the file outside)
    assert opens.active and all(flags & os.O_NOFOLLOW for _, flags in opens.active), opens.active


def test_the_app_refuses_a_linked_config_also_with_a_profile_given(home, tmp_path, opens):
    """``tuneloop --profile demo`` skips default_profile, so the TUI's own read was the only one."""
    from tui.app import create_app

    _linked_config(home, tmp_path)
    opens.start("config.toml")
    with pytest.raises(UserError) as info:
        create_app(home, "demo")
    one_sentence_naming(info.value, home.config_path)
    assert all(flags & os.O_NOFOLLOW for _, flags in opens.active), opens.active


# ------------------------------------------------------------------------------- models/ (GGUF conversion)


@pytest.mark.parametrize("where", ["models", "models/gguf-tiny", "models/.gguf-tiny.tmp"])
def test_gguf_conversion_never_writes_through_a_linked_models_folder(home, tmp_path, monkeypatch, where):
    source = tmp_path / "tiny.gguf"
    source.write_bytes(b"GGUF not really")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    converted: list[Path] = []
    monkeypatch.setattr(gguf, "_convert", lambda src, out, report: converted.append(out))
    home.ensure()
    link = home.root / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    if where.endswith(".tmp"):  # a planted temp folder is removed (the link itself), never written through
        gguf.ensure_converted(str(source), home)
        assert not link.is_symlink() and converted
    else:
        with pytest.raises(UserError) as info:
            gguf.ensure_converted(str(source), home)
        one_sentence_naming(info.value, link)
        assert converted == []
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"] and (outside / "keep.txt").read_text() == "mine"
