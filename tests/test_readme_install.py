"""Issue 28 item 16: the README's "Run it" installs the same pinned versions as "Test it" (both use
``-c constraints.txt``), so people run the set the tests saw."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _command_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    return next(line for line in text[start:].splitlines() if line.startswith("    pip install"))


def test_run_it_and_test_it_both_install_with_the_constraints():
    for heading in ("**Run it**", "**Test it**"):
        command = _command_after(heading)
        installs = [part.strip() for part in command.split("&&") if "pip install -e" in part]
        assert installs and all("-c constraints.txt" in part for part in installs), (heading, command)
