"""What one ``engine finetune`` run carries from stage to stage: the command's options and result, the run (its
directory, frozen manifest and settings, how it may stop), one stage of its plan, and where a stage's adapter
goes. Plain data: no training library is imported here."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from engine import runs
from engine.home import Home
from engine.profiles import Profile, TrainSettings
from engine.train import methods


@dataclass
class FinetuneOptions:
    method: str | None = None
    """None: the profile's train.method."""
    start_from: str = "promoted"
    """``promoted`` (continue the adapter in use) or ``base`` (fresh LoRA)."""
    overrides: dict = field(default_factory=dict)
    """Flag values for plan.effective_settings (epochs, max_steps, learning_rate, batch_size, seed ...)."""
    time_budget: str | None = None
    until: str | None = None
    resume: bool = False
    tensorboard: bool = False
    machine_revisions: bool = True
    """Revise critiques nobody revised in the chat before training (engine.train.revise)."""
    reward: RewardHooks | None = None
    """What training uses of engine.reward, passed in by the command (engine/cli/train_cmd.py) so that
    engine.train never imports engine.reward (which builds on engine.train). None: no reward model is
    used (the gate's reward check is skipped and says so; machine revisions use the model's self-check)."""
    stream: TextIO | None = None
    """Where progress and the report go (default: stderr for progress, stdout for the report)."""


@dataclass(frozen=True)
class RewardHooks:
    load_scorer: Callable[[Home, str], Any]
    """engine.reward.best_of.load_scorer: the profile's newest reward model, or None."""
    win_rate: Callable[..., Any]
    """engine.reward.evaluate.reward_win_rate: how often the scorer prefers one adapter's replies."""
    newest: Callable[[Home, str], Any] | None = None
    """engine.reward.run.newest_for_rl: the newest finished reward run as plan.RewardModel, or None."""
    load_run: Callable[[Home, str, str], Any] | None = None
    """engine.reward.score.RewardScorer.load: one reward run's scorer by id (RL trains against the run the
    manifest names, so a resume uses the same one)."""


@dataclass
class FinetuneResult:
    run_id: str
    exit_code: int
    message: str
    report: dict | None = None


def say(opts: FinetuneOptions, text: str) -> None:
    if runs.is_main_process():
        print(text, file=opts.stream or sys.stdout, flush=True)


def stage_dir(rd: runs.RunDir, index: int, method: str, phase: str = "") -> Path:
    return rd.root / "stages" / f"{phase}{index + 1}-{method}"


@dataclass(frozen=True)
class Run:
    """Everything the recipe below passes down: the run's directory, its frozen manifest and settings,
    the command's options, and how it may be stopped."""

    home: Home
    profile: Profile
    rd: runs.RunDir
    manifest: dict
    settings: TrainSettings
    opts: FinetuneOptions
    deadline: runs.Deadline | None
    stop: runs.StopRequest


@dataclass(frozen=True)
class Stage:
    """One method of the plan in one phase: ``phase`` "" (the candidate, ``part`` "train") or "refit-"
    (every row, ``part`` "all"), trained on top of ``parent`` (None: a fresh LoRA)."""

    index: int
    method: methods.Method
    parent: Path | None
    phase: str
    part: str


@dataclass
class PhaseResult:
    steps: int = 0
    stopped: str | None = None
    """None (ran to the end), ``budget`` or ``signal``."""
    adapter: Path | None = None
