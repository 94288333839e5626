"""``engine finetune`` (train a LoRA adapter from the feedback log) and ``engine adapters`` (list, switch,
roll back). Heavy imports happen inside the commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from engine.cli.common import HomeOption, ProfileOption, home_of, profile_of, setting_help


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
    app.command("adapters")(adapters_cmd)


def finetune(
    profile: ProfileOption = None,
    home: HomeOption = None,
    method: Annotated[Optional[str], typer.Option(
        "--method", help="auto (decide from the data), sft, dpo, kto, or RL against the profile's reward model: rloo or "
                             "grpo (settings in the profile's rl table). Default: the profile's train.method.")] = None,
    start_from: Annotated[str, typer.Option(
        "--from", help="promoted: keep training the adapter in use; base: start a fresh LoRA.")] = "promoted",
    epochs: Annotated[Optional[float], typer.Option("--epochs", help=setting_help("train", "epochs"))] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help=setting_help("train", "max_steps"))] = None,
    learning_rate: Annotated[Optional[float], typer.Option(
        "--learning-rate", "--lr", help=setting_help("train", "learning_rate"))] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=setting_help("train", "batch_size"))] = None,
    grad_accum: Annotated[Optional[int], typer.Option("--grad-accum", help=setting_help("train", "grad_accum"))] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help=setting_help("train", "max_length"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=setting_help("train", "seed"))] = None,
    save_steps: Annotated[Optional[int], typer.Option("--save-steps", help=setting_help("train", "save_steps"))] = None,
    save_minutes: Annotated[Optional[float], typer.Option(
        "--save-minutes", help=setting_help("train", "save_minutes"))] = None,
    time_budget: Annotated[Optional[str], typer.Option(
        "--time-budget", help="Stop training after this long (6h, 90m, 30s) and finish with what was learned.")] = None,
    until: Annotated[Optional[str], typer.Option(
        "--until", help="Stop training at this local time (07:00) and finish with what was learned.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the last unfinished run from its newest complete checkpoint.")] = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also log to TensorBoard (if installed).")] = False,
    machine_revisions: Annotated[bool, typer.Option(
        "--machine-revisions/--no-machine-revisions",
        help="Before training, revise critiques (👎 with a comment) nobody revised in the chat with the starting "
             "model; such rows are marked machine_revision and weigh half as much as accepted ones.")] = True,
) -> None:
    """Train a LoRA adapter on your feedback; promote it if it is not worse than the one in use.

    Exit codes: 0 finished (promoted or not, see the report), 2 a problem you can fix (the message says
    which), 3 stopped by Ctrl-C/SIGTERM after saving a checkpoint (continue with --resume).
    """
    from engine.reward.best_of import load_scorer
    from engine.reward.evaluate import reward_win_rate
    from engine.reward.run import newest_for_rl
    from engine.reward.score import RewardScorer
    from engine.train.finetune import FinetuneOptions, RewardHooks, run

    overrides = dict(epochs=epochs, max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size,
                     grad_accum=grad_accum, max_length=max_length, seed=seed, save_steps=save_steps,
                     save_minutes=save_minutes)
    opts = FinetuneOptions(method=method, start_from=start_from, overrides=overrides, time_budget=time_budget,
                           until=until, resume=resume, tensorboard=tensorboard,
                           machine_revisions=machine_revisions, reward=RewardHooks(load_scorer, reward_win_rate, newest_for_rl,
                                                                     RewardScorer.load))
    h = home_of(home)
    result = run(h, profile_of(profile, h).name, opts)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def adapters_cmd(
    profile: ProfileOption = None,
    action: Annotated[Optional[str], typer.Argument(help="Nothing (list), 'use' or 'rollback'.")] = None,
    target: Annotated[Optional[str], typer.Argument(help="For 'use': a run id, or 'base'.")] = None,
    home: HomeOption = None,
) -> None:
    """List the profile's trained adapters with their numbers; `use RUN|base` switches, `rollback` goes back."""
    from engine import adapters, runs
    from engine.errors import UserError
    from engine.home import check_name
    from engine.train.methods import rows_of

    h = home_of(home)
    profile = profile_of(profile, h).name
    if action == "use":
        if not target:
            raise UserError("engine adapters use needs a run id or 'base' (see `engine adapters --profile P`).")
        run_id = None if target == "base" else check_name(target, "run id")
        if run_id is not None:  # a damaged adapter is refused now, not at the next load
            _, path = adapters.resolve_adapter(h, profile, run_id, fix="pick a listed run")
            if path is not None and (path / adapters.ADAPTER_WEIGHTS).exists():
                adapters.read_adapter_config(path)
        adapters.set_promoted(h, profile, run_id, reason="chosen by hand")
        typer.echo(f"profile {profile} now uses {'the base model' if run_id is None else 'adapter ' + run_id}.")
        from engine.profiles import load_profile
        from engine.runtime.gguf_lora import convert_chosen

        note = convert_chosen(h, load_profile(profile, h), run_id)  # llama.cpp's LoRA, made now (best effort)
        if note:
            typer.echo(note)
        return
    if action == "rollback":
        previous = adapters.rollback(h, profile)
        typer.echo(f"profile {profile} rolled back to {'the base model' if previous is None else 'adapter ' + previous}.")
        return
    if action is not None:
        raise UserError(f"unknown action {action!r}: use 'use RUN', 'use base' or 'rollback' (or nothing to list).")
    promoted = adapters.promoted_run(h, profile)
    rows = []
    problems = []
    for run in runs.run_summaries(h, profile, command="finetune", keep_problems=True):
        if run.problem:  # listed and marked; the sentence naming the file follows the table
            problems.append(run.problem)
            rows.append((" ", run.run_id, "-", "-", "-", "-", "-", "-", "damaged"))
            continue
        manifest, rep = run.manifest, run.report
        new = rep.get("eval", {}).get("new", {})
        train_rows = sum(manifest.get("rows", {}).get(kind, {}).get("train", 0) for kind in rows_of(run.plan))
        status = ("promoted" if rep.get("promoted") else "refused") if rep else "unfinished"
        rows.append((("*" if run.run_id == promoted else " "), run.run_id, "+".join(run.plan),
                     str(train_rows), str(rep.get("steps", "-")), _fmt(new.get("loss")),
                     _fmt(new.get("pref_accuracy")), _fmt(new.get("liked_logprob")), status))
    header = (" ", "run", "method", "rows", "steps", "loss", "pref_acc", "liked_lp", "gate")
    _echo_table([header, ("*" if promoted is None else " ", "base", "-", "-", "-", "-", "-", "-", "-"), *rows])
    typer.echo(f"in use: {'base model' if promoted is None else promoted} (* marks it)")
    _echo_reward_models(h, profile)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(2)


def _echo_table(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _echo_reward_models(h, profile: str) -> None:
    """The profile's reward runs (engine reward), after the adapters: they are never promoted; the newest
    finished one scores best-of-n replies and `engine eval`. Nothing is printed when there are none."""
    from engine.reward.run import reward_run_summaries
    from engine.reward.score import newest_reward_run

    summaries = reward_run_summaries(h, profile)
    if not summaries:
        return
    in_use = newest_reward_run(h, profile)
    header = (" ", "run", "status", "steps", "pairs", "accuracy", "margin", "baseline_acc")
    rows = [("*" if s["run_id"] == in_use else " ", s["run_id"], str(s["status"]), _fmt(s["steps"]), _fmt(s["n"]),
             _fmt(s["accuracy"]), _fmt(s["margin"]), _fmt(s["baseline_accuracy"])) for s in summaries]
    typer.echo("")
    typer.echo("reward models (held-out pairwise accuracy; never promoted, the newest finished one scores replies):")
    _echo_table([header, *rows])
    typer.echo(f"reward model in use: {in_use or 'none finished'}" + (" (* marks it)" if in_use else ""))
