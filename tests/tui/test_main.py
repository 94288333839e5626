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


@pytest.mark.slow
def test_in_a_terminal_a_bad_profile_is_read_after_the_first_frame_and_its_sentence_stays(home):
    """Issue 26: in a terminal the profile is read after the first frame; a bad one ends the app with exit code 2
    and the sentence is printed once the app has left the alternate screen, so the person sees it."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tui", "--home", str(home.root), "--profile", "no-such-profile"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the app closed the terminal's other end
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        os.close(master)
    assert proc.returncode == 2, seen[-500:]
    painted, _, after = seen.rpartition(b"\x1b[?1049l")  # leaves the alternate screen
    assert painted and b"loading" in painted  # the first frame was drawn before the profile was read
    text = after.decode("utf-8", "replace")
    assert "tuneloop: no profile named 'no-such-profile'" in text and "Traceback" not in seen.decode("utf-8", "replace")
