"""``engine serve``: the profile's model behind an OpenAI-compatible HTTP API with a feedback endpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from engine.cli.common import HomeOption, ProfileOption, home_of, profile_of
from engine.errors import UserError
from engine.serve.security import API_KEY_ENV


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    profile: ProfileOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback needs an API key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar=API_KEY_ENV,
            show_envvar=True,
            help="Clients must send 'Authorization: Bearer KEY'; required when --host is not loopback.",
        ),
    ] = None,
    adapter: Annotated[
        str,
        typer.Option(
            "--adapter",
            help="What the profile's name means as a model name, loaded at start: a run id, "
            "'promoted' or 'none' (the base model). Every finished adapter can be asked for by name.",
        ),
    ] = "promoted",
    max_waiting: Annotated[
        int,
        typer.Option(
            "--max-waiting", min=0, max=10_000, help="Requests that may wait while one is generated; more get HTTP 429."
        ),
    ] = 16,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections",
            min=2,
            max=100_000,
            help="Open connections the server keeps (default: 64, or --max-waiting + 16 if more); requests beyond "
            "get HTTP 503. Idle or slow ones are closed after 15 s.",
        ),
    ] = None,
    max_body_mib: Annotated[
        int,
        typer.Option("--max-body-mib", min=1, max=1024, help="Largest request body in MiB; larger get HTTP 413."),
    ] = 8,
    home: HomeOption = None,
) -> None:
    """Serve the profile's model on an OpenAI-compatible API (/v1/chat/completions, /v1/models) plus
    /v1/feedback; every reply is logged to the profile's feedback log with its id."""
    from engine.runtime import load_chat_model
    from engine.serve.app import create_app
    from engine.serve.guard import MIB, Limits
    from engine.serve.security import check_bind
    from engine.serve.server import bind, build_state, make_server

    check_bind(host, api_key)  # before anything heavy is loaded
    if max_connections is None:
        max_connections = max(64, max_waiting + 16)
    elif max_connections < max_waiting + 2:
        raise UserError(
            f"--max-connections {max_connections} leaves no room for --max-waiting {max_waiting} requests and the "
            f"one being answered; give at least {max_waiting + 2}."
        )
    limits = Limits(max_body_bytes=max_body_mib * MIB, max_connections=max_connections)
    h = home_of(home)
    prof = profile_of(profile, h)
    choice = "base" if adapter == "none" else adapter
    from engine.adapters import resolve_adapter

    resolve_adapter(h, prof.name, choice)  # an unknown run is refused before the model loads
    sock = bind(host, port)
    typer.echo(f"loading {prof.model.id} (profile {prof.name}) ...", err=True)
    lm = load_chat_model(prof, h, adapter=choice)
    if lm.note:
        typer.echo(lm.note, err=True)
    state = build_state(prof, h, lm, adapter=choice, api_key=api_key, max_waiting=max_waiting, limits=limits)
    app = create_app(state)
    bound_port = sock.getsockname()[1]
    names = ", ".join(e["id"] for e in state.catalog.entries())
    typer.echo(
        f"serving {prof.name} at http://{host if ':' not in host else f'[{host}]'}:{bound_port}/v1 "
        f"(models: {names}); ctrl+c stops",
        err=True,
    )
    try:
        make_server(app, sock, state).run(sockets=[sock])
    finally:
        # ctrl+c: the replies were cancelled when the server began to stop; wait for their threads, so none is
        # inside torch while Python shuts down (that aborts with "terminate called without an active exception")
        if not state.stop_replies(timeout=10):
            import os
            import sys

            typer.echo(
                "stopped while a reply was still inside the model (a step that cannot be interrupted); "
                "that reply is not logged.",
                err=True,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
