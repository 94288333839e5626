"""home/config.toml is declared once (engine.config.HomeConfig, issue 27 item 3): the engine's default profile
and the TUI's [keys]/[ui] read the same model, and a bad value is the same one sentence for both."""

from __future__ import annotations

import pytest

from engine.config import HomeConfig, load_config
from engine.errors import UserError
from engine.profiles import default_profile_name
from tui.config import load_ui_config


def _write(home, text: str) -> None:
    home.ensure()
    home.config_path.write_text(text)


def test_one_model_serves_the_engine_and_the_tui(home):
    _write(home, 'default_profile = "demo"\n[keys]\n"chat.like" = "l"\n[ui]\nsidebar = false\ntheme = "nord"\n')
    config = load_config(home)
    assert config == HomeConfig(default_profile="demo", keys={"chat.like": "l"},
                                ui={"sidebar": False, "theme": "nord"})
    assert default_profile_name(home) == "demo"
    ui = load_ui_config(home, known_ids={"chat.like"})
    assert (ui.keys, ui.sidebar, ui.theme, ui.warnings) == ({"chat.like": "l"}, False, "nord", [])


def test_no_file_is_the_defaults(home):
    assert load_config(home) == HomeConfig() and load_config(None) == HomeConfig()
    ui = load_ui_config(home)
    assert (ui.keys, ui.sidebar, ui.theme) == ({}, True, None)


@pytest.mark.parametrize(("text", "words"), [
    ("default_profile = 3\n", "key 'default_profile' must be a non-empty string, not 3."),
    ('default_profile = " "\n', "key 'default_profile' must be a non-empty string, not ' '."),
    ('[ui]\nsidebar = "no"\n', "key 'ui.sidebar' must be true or false, not 'no'."),
    ("[ui]\ntheme = 1\n", "key 'ui.theme' must be a string (a Textual theme name), not 1."),
    ("ui = 3\n", "key 'ui' must be a table ([ui]), not 3."),
    ('[keys]\n"chat.like" = 1\n', "key 'keys' must be a table mapping binding ids to key strings"),
    ("[keys\n", "cannot be read"),
])
def test_a_bad_value_is_one_sentence_for_the_engine_and_the_tui(home, text, words):
    _write(home, text)
    for read in (lambda: default_profile_name(home), lambda: load_ui_config(home)):
        with pytest.raises(UserError) as info:
            read()
        message = str(info.value)
        assert message.startswith(f"{home.config_path}: ") and words in message and "\n" not in message, message


def test_unknown_keys_are_kept_and_the_tui_warns(home):
    _write(home, 'colour = "red"\n[ui]\nsidbar = false\n')
    config = load_config(home)
    assert config.unknown_keys() == ["colour", "ui.sidbar"] and config.ui.sidebar is True
    assert default_profile_name(home)  # the engine does not mind
    warnings = load_ui_config(home).warnings
    assert len(warnings) == 2 and "unknown key 'ui.sidbar' is ignored (known: default_profile, keys, ui.sidebar" \
        in warnings[1]
