"""Fault-injection suite (issues 7 and 12): shared fixtures and the end-of-run summary.

Every test here counts what it survived (kills, events checked, fuzz cases) into one Counter kept on
the pytest config, and ``pytest_terminal_summary`` prints it after the run, so a reader of the CI log
sees how hard the promises were pushed, not just that the tests passed.
"""

from __future__ import annotations

import collections

import pytest

from .faultlib import engine_env as _engine_env

_STATS = pytest.StashKey[collections.Counter]()

# The order the summary prints in; keys not listed print after these, sorted.
_SUMMARY_ORDER = (
    "kills survived (SIGKILL during FeedbackLog.append)",
    "kills survived (SIGKILL after a hand-written half line)",
    "torn tails reported",
    "acknowledged events checked intact",
    "acknowledged-event checks after a kill (event x kill)",
    "concurrent appends checked",
    "concurrent snapshots byte-compared",
    "log reader fuzz cases",
    "profile fuzz cases",
    "import fuzz cases",
    "training kills survived",
    "disk-full runs checked",
    "promotion crashes survived",
    "path-escape attempts refused",
    "network connection attempts (must be 0)",
    # issue 12
    "network connection attempts without HF_HUB_OFFLINE (must be 0)",
    "commands run online under the socket guard",
    "symlink attacks refused (target intact)",
    "import kills survived (rows visible after kill: 0)",
    "rows checked after re-import (no duplicates)",
    "duplicate imports refused",
    "hostile import inputs refused at once",
    "rows imported in one streamed import",
    "republishes checked against a concurrent reader",
    "kills survived (SIGKILL while republishing)",
    "signals in the finish phase honoured (exit 3)",
    "tampered checkpoint files refused",
    "bad inputs answered with one sentence",
)


def _stats(config: pytest.Config) -> collections.Counter:
    if _STATS not in config.stash:
        config.stash[_STATS] = collections.Counter()
    return config.stash[_STATS]


@pytest.fixture
def fault_stats(request) -> collections.Counter:
    """The run-wide Counter the summary prints; tests add what they checked."""
    return _stats(request.config)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    stats = _stats(config)
    if not stats:
        return
    keys = [k for k in _SUMMARY_ORDER if k in stats]
    keys += sorted(k for k in stats if k not in _SUMMARY_ORDER)
    terminalreporter.section("tuneloop fault-injection summary")
    width = max(len(k) for k in keys)
    for k in keys:
        terminalreporter.write_line(f"{k:<{width}}  {stats[k]:>8}")


@pytest.fixture
def engine_env(home) -> dict:
    """Environment for an ``engine`` subprocess: offline, this home, the repo importable."""
    return _engine_env(home)
