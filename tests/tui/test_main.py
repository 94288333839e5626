"""``tuneloop`` itself: a bad profile or config is one sentence and exit code 2, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(*args, home):
    return subprocess.run([sys.executable, "-m", "tui", "--home", str(home.root), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_unknown_profile_exits_2_with_one_sentence(home):
    out = _run("--profile", "no-such-profile", home=home)
    assert out.returncode == 2
    assert "no profile named 'no-such-profile'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_broken_config_exits_2_naming_the_file(home):
    home.ensure()
    home.config_path.write_text("[keys\n")
    out = _run(home=home)
    assert out.returncode == 2
    assert str(home.config_path) in out.stderr and "Traceback" not in out.stderr
