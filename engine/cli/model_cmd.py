"""``engine demo-model`` (build the offline demo model) and ``engine generate`` (one reply, streamed)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from engine.cli.common import HomeOption, ProfileOption, home_of, profile_of, setting_help


def register(app: typer.Typer) -> None:
    app.command("demo-model")(demo_model)
    app.command("generate")(generate)


def demo_model(
    home: HomeOption = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if it is already there.")] = False,
) -> None:
    """Build the tiny offline demo model into home/models/demo (about a second, no download)."""
    from engine.demo import ensure_demo_model, is_built

    h = home_of(home).ensure()
    existed = is_built(h.demo_model_dir)
    path = ensure_demo_model(h, force=force)
    state = "rebuilt" if existed and force else ("already built" if existed else "built")
    typer.echo(f"demo model {state}: {path}")


def generate(
    question: Annotated[str, typer.Argument(help="The user message to answer.")],
    profile: ProfileOption = None,
    adapter: Annotated[str, typer.Option("--adapter", help="A run id, 'base', or 'promoted' (the profile's promoted adapter).")] = "promoted",
    record: Annotated[bool, typer.Option("--record", help="Append the exchange to the profile's feedback log as a new conversation.")] = False,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", help=setting_help("generation", "max_new_tokens"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=setting_help("generation", "seed"))] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help=setting_help("generation", "temperature"))] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help=setting_help("generation", "top_p"))] = None,
    sample: Annotated[Optional[bool], typer.Option("--sample/--greedy", help="Sample, or decode greedily (default: the profile's setting).")] = None,
    home: HomeOption = None,
) -> None:
    """Print one reply to QUESTION, streamed as it is generated."""
    from engine.runtime import GenerationParams, load_model

    h = home_of(home)
    prof = profile_of(profile, h)
    params = GenerationParams.from_profile(prof, max_new_tokens=max_new_tokens, seed=seed, do_sample=sample,
                                          temperature=temperature, top_p=top_p)
    log = None
    if record:
        from engine.feedback import FeedbackLog

        log = FeedbackLog(h, prof.name)
    lm = load_model(prof, h, adapter=adapter)
    messages = [{"role": "user", "content": question}]
    gen = lm.stream(messages, params)
    interrupted = False
    try:
        for piece in gen:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:  # stop the model, keep what was said so far
        interrupted = True
        gen.cancel()
        for piece in gen:
            sys.stdout.write(piece)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if log is not None:
        import uuid

        conversation = uuid.uuid4().hex
        user = log.add_message(conversation, None, "user", question)
        reply = log.add_message(conversation, user["id"], "assistant", gen.text, generation=gen.record)
        typer.echo(f"recorded conversation {conversation} (reply {reply['id']})", err=True)
    if interrupted:
        raise KeyboardInterrupt
