"""``tuneloop [--profile P] [--home DIR]``: open the chat app.

A bad profile or config is one sentence on stderr and exit code 2, never a traceback. In a terminal they
are read right after the first frame (the first paint waits for nothing but Textual and the light widgets): a
bad one ends the app, and the sentence is printed once the terminal is back.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tuneloop", description="Chat with a local model and judge its replies.")
    parser.add_argument("--profile", "-p", help="profile name (default: default_profile in config.toml, else demo)")
    parser.add_argument("--home", help="data directory (default: $TUNELOOP_HOME or the user data dir)")
    args = parser.parse_args(argv)

    from engine.errors import UserError
    from tui.app import create_app

    # In a terminal the profile and config are read right after the first frame (tui/boot.py); piped, where
    # nobody sees a frame, before the app starts, so that a bad one is nothing but its sentence on stderr.
    in_terminal = sys.stdin.isatty() and sys.stderr.isatty()  # (Textual draws on stderr)
    try:
        app = create_app(args.home, args.profile, lazy=in_terminal)
    except UserError as exc:
        print(f"tuneloop: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    app.run()
    if app.boot.exit_message:  # after the app gave the terminal back, so it stays on screen
        print(f"tuneloop: {app.boot.exit_message}", file=sys.stderr)
    # A model load cannot be interrupted, and the executor thread running it would hold the process
    # open until it finishes. Every event is already fsynced, so leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(app.return_code or 0)


if __name__ == "__main__":
    main()
