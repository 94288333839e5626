"""Fixtures for reward tests: one demo home with a trained reward model, shared by the session.

Training the reward model once (about 20 s on two CPU cores) and reusing it keeps the reward tests
inside their time budget; tests that need a fresh home make their own.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.home import Home
from tests.reward.synthetic import write_picks

N_CONVERSATIONS = 40


def install_demo(home: Home, demo_model_dir: Path) -> Home:
    """Copy the session's demo model into ``home`` (as tests/conftest.py's demo_home does)."""
    import shutil

    from engine.safe_files import ensure_dir

    ensure_dir(home.models_dir)
    shutil.copytree(demo_model_dir, home.demo_model_dir)
    return home


@dataclass
class EngineResult:
    code: int
    out: str
    err: str


def run_engine(*args: str) -> EngineResult:
    """Run the ``engine`` CLI in this process (as the console script does); capture its output."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return EngineResult(code, out.getvalue(), err.getvalue())


@dataclass
class TrainedReward:
    home: Home
    run_id: str
    result: EngineResult

    @property
    def run_dir(self) -> Path:
        return self.home.run_dir("demo", self.run_id)

    @property
    def report(self) -> dict:
        return json.loads((self.run_dir / "report.json").read_text())


@pytest.fixture(scope="session")
def trained_reward(tmp_path_factory, demo_model_dir) -> TrainedReward:
    """A demo home whose log holds 40 answer-vs-refusal picks, and a reward run trained on it."""
    from engine.feedback import FeedbackLog

    home = Home.resolve(tmp_path_factory.mktemp("reward") / "home")
    install_demo(home, demo_model_dir)
    write_picks(FeedbackLog(home, "demo"), N_CONVERSATIONS, seed=1)
    result = run_engine("reward", "--profile", "demo", "--home", str(home.root), "--epochs", "5")
    assert result.code == 0, result.out + result.err
    runs = sorted(p.name for p in home.runs_dir("demo").iterdir() if p.name.endswith("-reward"))
    assert len(runs) == 1
    return TrainedReward(home, runs[0], result)
