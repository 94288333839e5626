"""Run the ``engine`` CLI in this process, as the console script does, and capture what it printed."""

from __future__ import annotations

import contextlib
import io


def run_engine(*args: str) -> tuple[int, str]:
    """``engine ARGS`` in this process: (exit code, stdout+stderr)."""
    from engine.cli import main

    buf = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, buf.getvalue()


def run_engine_capsys(capsys, *argv) -> tuple[int, str, str]:
    """``engine ARGV`` in this process with pytest's capsys: (exit code, stdout, stderr) kept apart."""
    from engine.cli import main

    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
