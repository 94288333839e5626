"""Help texts: every option of every command says what it does, and "[reward]"/"[train]" (TOML table
names) print as written instead of being eaten as markup (issue 11: "Override epochs.")."""

from __future__ import annotations

import click
import typer

from engine.cli import app
from tests.engine_cli import run_engine


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_every_option_of_every_command_has_help():
    root = typer.main.get_command(app)
    missing = []
    for name, command in root.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"engine {name} {param.opts[0]}")
    assert missing == []


def test_finetune_help_shows_every_flag_with_its_rule():
    code, out = run_engine("finetune", "--help")
    assert code == 0, out
    text = _flat(out)
    for flag, words in [("--learning-rate", "Peak learning rate of the optimizer. Default: the profile's [train] "
                                            "learning_rate; a finite number > 0 and < 1."),
                        ("--batch-size", "Rows per device per step. Default: the profile's [train] batch_size"),
                        ("--grad-accum", "Default: the profile's [train] grad_accum"),
                        ("--seed", "Default: the profile's [train] seed")]:
        assert flag in text and words in text, (flag, text)


def test_table_names_in_help_print_literally():
    code, out = run_engine("reward", "--help")
    assert code == 0, out
    assert "Default: the profile's [reward] epochs" in _flat(out)
