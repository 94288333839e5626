"""Nothing leaves the machine, even when the user never set the offline variables (issue 12).

The README's normal flow runs without ``HF_HUB_OFFLINE``: ``engine finetune``, ``engine reward`` and the
TUI must still make no network connection (TRL's trainers send usage telemetry from a background thread
unless the hub's opt-out switches are set; the engine sets them itself when ``engine`` is imported).
Each command runs in a child process with the offline and telemetry variables removed from its
environment and helpers/sitecustomize.py's guard on PYTHONPATH, which refuses and logs every attempt
(getaddrinfo, connect, create_connection, sendto), so an attempt a library swallowed still counts.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.feedback import FeedbackLog

from .faultlib import engine_cmd, engine_env, record_edit

# What a user's shell usually does not have: the test must not get them from the developer's shell either.
UNSET = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
         "DISABLE_TELEMETRY", "DO_NOT_TRACK", "CI", "HF_HUB_DISABLE_UPDATE_CHECK")

TUI_SNIPPET = """
import asyncio, sys
from engine.home import Home
from tui.app import create_app

async def main():
    app = create_app(Home.resolve(None), "demo")
    async with app.run_test() as pilot:
        for _ in range(120):  # until the model worker has loaded the model (or 30 s)
            await pilot.pause(0.25)
            if "torch" in sys.modules and getattr(app, "generator", None) is not None:
                break
        await pilot.pause(1.0)

asyncio.run(main())
"""


@pytest.fixture
def net_log(tmp_path):
    path = tmp_path / "net-attempts.log"
    path.write_text("")
    return path


def online_env(home, net_log) -> dict:
    env = engine_env(home, net_log=net_log)
    for name in UNSET:
        env.pop(name, None)
    return env


def write_pairs(home, n: int = 6) -> None:
    log = FeedbackLog(home, "demo")
    for i in range(n):
        user = log.add_message(f"conv-{i}", None, "user", f"What is {i} + {i}?")
        good = log.add_message(f"conv-{i}", user["id"], "assistant", f"It is {2 * i}.")
        bad = log.add_message(f"conv-{i}", user["id"], "assistant", "I cannot help with that.")
        log.choose(good["id"], [good["id"], bad["id"]], "regenerate")


@pytest.mark.slow
def test_finetune_reward_and_tui_make_no_connection_without_offline_variables(demo_home, net_log, fault_stats):
    home = demo_home
    record_edit(home)
    write_pairs(home)
    env = online_env(home, net_log)
    commands = {
        "engine finetune": engine_cmd("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "2"),
        "engine reward": engine_cmd("reward", "--profile", "demo", "--max-steps", "2"),
        "tuneloop (headless)": [sys.executable, "-c", TUI_SNIPPET],
    }
    for what, argv in commands.items():
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=500)
        assert proc.returncode == 0, f"{what}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    attempts = net_log.read_text().splitlines()
    fault_stats["network connection attempts without HF_HUB_OFFLINE (must be 0)"] += len(attempts)
    fault_stats["commands run online under the socket guard"] += len(commands)
    assert attempts == [], "connection attempts:\n" + "\n".join(attempts)
