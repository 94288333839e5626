"""``engine export-model``: the tuned model as a plain folder for other runtimes (transformers, vLLM, Ollama)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.common import HomeOption, ProfileOption, home_of, profile_of


def register(app: typer.Typer) -> None:
    app.command("export-model")(export_model)


def export_model(
    out: Annotated[Path, typer.Option("--out", help="New folder to write (must not exist, or be empty).")],
    profile: ProfileOption = None,
    adapter: Annotated[
        str, typer.Option("--adapter", help="The adapter to merge in: a run id, 'promoted' or 'base' (none).")
    ] = "promoted",
    home: HomeOption = None,
) -> None:
    """Write the base model with the adapter merged in (safetensors + tokenizer + chat template), and say how
    to load it in transformers, vLLM and Ollama."""
    from engine.runtime.export import check_out_dir, how_to_load
    from engine.runtime.export import export_model as export

    h = home_of(home)
    prof = profile_of(profile, h)
    check_out_dir(Path(out).expanduser().absolute())  # before loading anything
    done = export(prof, h, adapter, out)
    what = f"with adapter {done.adapter} merged" if done.adapter else "without an adapter (base model)"
    typer.echo(f"exported {done.model_id} {what} to {done.out}")
    typer.echo(how_to_load(done.out))
