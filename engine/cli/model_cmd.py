"""``engine demo-model`` (build the offline demo model) and ``engine generate`` (one reply, streamed; or
greedy replies to a file of prompts, batched, with ``--prompts``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
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


def _check_unicode(path: Path, chats: list[list[dict]]) -> None:
    """A prompt with a lone surrogate (a JSON ``\\ud800`` escape) cannot be tokenized: one sentence naming it."""
    from engine.errors import UserError

    for number, chat in enumerate(chats, 1):
        for message in chat:
            try:
                message["content"].encode("utf-8")
            except UnicodeEncodeError:
                raise UserError(f"{path}: prompt {number} holds text that is not valid Unicode (a lone surrogate such as "
                                "\\ud800); fix that line.") from None


def generate(
    question: Annotated[Optional[str], typer.Argument(help="The user message to answer.")] = None,
    profile: ProfileOption = None,
    adapter: Annotated[str, typer.Option("--adapter", help="A run id, 'base', or 'promoted' (the profile's promoted adapter).")] = "promoted",
    record: Annotated[bool, typer.Option("--record", help="Append the exchange to the profile's feedback log as a new conversation.")] = False,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", help=setting_help("generation", "max_new_tokens"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=setting_help("generation", "seed"))] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help=setting_help("generation", "temperature"))] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help=setting_help("generation", "top_p"))] = None,
    sample: Annotated[Optional[bool], typer.Option("--sample/--greedy", help="Sample, or decode greedily (default: the profile's setting).")] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="A JSONL file of prompts (a string, or an object with 'prompt' or 'messages', per line): greedy replies, batched, one line each.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each reply as one JSON line (reply, finish_reason, tokens, adapter).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts decoded together with --prompts.")] = 16,
    backend: Annotated[Optional[str], typer.Option("--backend", help="Who runs the model for this reply: auto, "
                       "transformers, llamacpp or openai (default: the profile's model.backend).")] = None,
    home: HomeOption = None,
) -> None:
    """Print one reply to QUESTION, streamed as it is generated (or, with --prompts, one per prompt)."""
    from engine.errors import UserError
    from engine.runtime import GenerationParams, load_chat_model, load_model

    if (question is None) == (prompts is None):
        raise UserError("give either a QUESTION or --prompts FILE.jsonl.")
    if prompts is not None and record:
        raise UserError("--record works with one QUESTION, not with --prompts.")
    try:  # bytes that are not UTF-8 reach us as lone surrogates (Python's surrogateescape)
        (question or "").encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = (question or "")[exc.start].encode("utf-8", "surrogateescape")
        raise UserError(f"the question is not valid UTF-8 (byte {raw!r} at character {exc.start + 1}); pass it as "
                        "UTF-8 text.") from None
    h = home_of(home)
    prof = profile_of(profile, h)
    if backend is not None:
        from engine.runtime.backend import choose_backend

        choose_backend(prof, backend)  # an unknown name is one sentence before anything loads
    params = GenerationParams.from_profile(prof, max_new_tokens=max_new_tokens, seed=seed, do_sample=sample,
                                           temperature=temperature, top_p=top_p)
    if prompts is not None or as_json:
        if prof.model.backend == "openai":
            raise UserError(f"--prompts and --json decode in batches in this process; profile {prof.name!r} "
                            "chats through a server (backend = \"openai\"), so ask one QUESTION at a time.")
        from engine.runtime.batch import generate_batch, read_prompts

        if prompts is not None:
            from engine.cli.common import check_input_file, parse_guard

            chats = parse_guard(check_input_file(prompts, "the prompt file"), read_prompts)
            _check_unicode(prompts, chats)
        else:
            chats = [[{"role": "user", "content": question}]]
        params = params.replace(do_sample=False) if sample is None else params  # --prompts: greedy unless told
        lm = load_model(prof, h, adapter=adapter, backend="transformers")  # batched decoding is transformers'
        for chat, result in zip(chats, generate_batch(lm, chats, params, batch_size=batch_size)):
            text = json.dumps({"prompt": chat[-1]["content"], **result}) if as_json else result["reply"]
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    log = None
    if record:
        from engine.feedback import FeedbackLog

        log = FeedbackLog(h, prof.name)
    lm = load_chat_model(prof, h, adapter=adapter, backend=backend)
    if lm.note:
        typer.echo(lm.note, err=True)
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
        from engine.feedback.events import new_id

        conversation, user_id = new_id(), new_id()
        # One write for the pair: a full disk leaves both or neither, never a question without its reply.
        _user, reply = log.append_many([
            {"type": "message", "id": user_id, "conversation_id": conversation, "parent_id": None, "role": "user",
             "content": question},
            {"type": "message", "conversation_id": conversation, "parent_id": user_id, "role": "assistant",
             "content": gen.text, "generation": gen.record},
        ])
        typer.echo(f"recorded conversation {conversation} (reply {reply['id']})", err=True)
    if interrupted:
        raise KeyboardInterrupt
