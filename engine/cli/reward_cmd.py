"""`engine reward` (train a reward model), `engine score` (score a preference file), `engine eval`
(reward-model win rate of an adapter against base or the promoted adapter). Heavy imports inside."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli.common import HomeOption, ProfileOption, home_of, profile_of, setting_help


def _profile_name(profile: str | None, home) -> str:
    return profile_of(profile, home).name


def _reward(
    profile: ProfileOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the last unfinished reward run.")] = False,
    time_budget: Annotated[Optional[str], typer.Option("--time-budget", help=(
        "The whole command (loading, training, evaluation, calibration) ends within this long: 6h, 90m, 30s; "
        "evaluation is sized to fit and the report says what was cut."))] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="End by this local time of day, e.g. 07:00 (like --time-budget).")] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs", help=setting_help("reward", "epochs"))] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps (-1: all epochs).")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--learning-rate", help=setting_help("reward", "learning_rate"))] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=setting_help("reward", "batch_size"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=setting_help("reward", "seed"))] = None,
    home: HomeOption = None,
) -> None:
    """Train a Bradley-Terry reward model on the profile's preference pairs (picks, edits, ratings)."""
    from engine.reward.run import RewardRunOptions, run_reward
    from engine.runs import EXIT_INTERRUPTED

    opts = RewardRunOptions(resume=resume, time_budget=time_budget, until=until, epochs=epochs,
                            max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size, seed=seed)
    h = home_of(home)
    result = run_reward(h, _profile_name(profile, h), opts, log=lambda line: typer.echo(line))
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _score(
    file: Annotated[Path, typer.Argument(help="A TRL preference file (.jsonl or .json list).")],
    profile: ProfileOption = None,
    reward: Annotated[Optional[str], typer.Option("--reward", help="Reward run id (default: the newest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print scores and metrics as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Score every pair of a preference file; print pairwise accuracy and mean margin."""
    from engine.reward.data import read_pairs_file
    from engine.reward.score import RewardScorer

    h = home_of(home)
    from engine.cli.common import check_input_file, parse_guard

    pairs = parse_guard(check_input_file(file, "the preference file"), read_pairs_file)
    scorer = RewardScorer.load(h, _profile_name(profile, h), reward)
    metrics = scorer.score_pairs(pairs)
    if as_json:
        typer.echo(json.dumps({
            "reward_run": scorer.run_id, **metrics.to_json(),
            "pairs": [{"chosen": c, "rejected": r, "chosen_calibrated": scorer.calibrate(c),
                       "rejected_calibrated": scorer.calibrate(r)}
                      for c, r in zip(metrics.chosen, metrics.rejected)],
        }, indent=2))
        return
    typer.echo(f"reward model {scorer.run_id} on {file}: {metrics.n} pairs")
    typer.echo(f"  pairwise accuracy {metrics.accuracy:.1%}, mean margin {metrics.margin:+.3f} "
               f"({metrics.margin / scorer.std:+.2f} std)")


def _eval(
    profile: ProfileOption = None,
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="Adapter run id (default: the newest finished).")] = None,
    against: Annotated[str, typer.Option("--against", help="base or promoted.")] = "base",
    n_prompts: Annotated[int, typer.Option("--n-prompts", help="How many held-out prompts to generate for.")] = 16,
    reward: Annotated[Optional[str], typer.Option("--reward", help="Reward run id (default: the newest).")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", help=setting_help("generation", "max_new_tokens"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Generate replies from an adapter and from base/promoted on held-out prompts; print the reward win rate."""
    from engine.reward.evaluate import evaluate_adapter

    h = home_of(home)
    result = evaluate_adapter(h, _profile_name(profile, h), adapter=adapter, against=against, n_prompts=n_prompts,
                              reward_run=reward, max_new_tokens=max_new_tokens,
                              log=(lambda line: None) if as_json else (lambda line: typer.echo(line)))
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))
    else:
        for line in result["lines"]:
            typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("reward")(_reward)
    app.command("score")(_score)
    app.command("eval")(_eval)
