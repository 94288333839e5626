"""Helpers shared by the fault-injection tests: subprocess environments and the engine argv.

Kept out of conftest.py so test modules can import them by name (tests/faults is on sys.path).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAULTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = FAULTS_DIR.parent.parent
HELPERS_DIR = FAULTS_DIR / "helpers"


def engine_env(home, *, net_log: Path | None = None) -> dict:
    """Environment for a subprocess: offline, this home, the repo importable.

    ``net_log``: put helpers/ first on PYTHONPATH, so its sitecustomize.py refuses every non-Unix
    socket connection and logs each attempt to that file.
    """
    env = dict(os.environ)
    paths = [str(REPO_ROOT)]
    if net_log is not None:
        paths.insert(0, str(HELPERS_DIR))
        env["TUNELOOP_NET_GUARD_LOG"] = str(net_log)
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        TUNELOOP_HOME=str(home.root),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(paths),
    )
    return env


def engine_cmd(*args: str) -> list[str]:
    """The ``engine`` CLI as a subprocess argv, through the same interpreter as the tests."""
    return [sys.executable, "-m", "engine", *args]
