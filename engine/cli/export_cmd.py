"""``engine export-model``: the tuned model as a plain folder for other runtimes (transformers, vLLM, Ollama)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.common import HomeOption, ProfileOption, home_of, profile_of


def register(app: typer.Typer) -> None:
    app.command("export-model")(export_model)


def export_model(
    out: Annotated[Path, typer.Option("--out", help="New folder to write (must not exist, or be empty); for the "
                                                     "gguf formats, the new .gguf file.")],
    profile: ProfileOption = None,
    adapter: Annotated[
        str, typer.Option("--adapter", help="The adapter to merge in: a run id, 'promoted' or 'base' (none).")
    ] = "promoted",
    fmt: Annotated[str, typer.Option("--format", help="safetensors (a model folder), gguf (one file, the adapter merged "
                                                      "in; GGUF profiles) or gguf-lora (the adapter alone, for "
                                                      "Ollama's ADAPTER or llama.cpp's --lora).")] = "safetensors",
    dtype: Annotated[str, typer.Option("--dtype", help="For --format gguf: f16 or q8_0.")] = "f16",
    home: HomeOption = None,
) -> None:
    """Write the base model with the adapter merged in (safetensors + tokenizer + chat template, or one GGUF file), or
    the adapter alone as a GGUF LoRA, and say how to load it elsewhere (transformers, vLLM, Ollama, llama.cpp, LM Studio)."""
    from engine.errors import UserError
    from engine.runtime.export import check_out_dir, how_to_load

    h = home_of(home)
    prof = profile_of(profile, h)
    if fmt in ("gguf", "gguf-lora"):
        _export_gguf(prof, h, adapter, Path(out), fmt, dtype)
        return
    if fmt != "safetensors":
        raise UserError(f"--format {fmt!r} is not one of safetensors, gguf, gguf-lora.")
    from engine.runtime.export import export_model as export

    check_out_dir(Path(out).expanduser().absolute())  # before loading anything
    done = export(prof, h, adapter, out)
    what = f"with adapter {done.adapter} merged" if done.adapter else "without an adapter (base model)"
    typer.echo(f"exported {done.model_id} {what} to {done.out}")
    typer.echo(how_to_load(done.out))


def _export_gguf(prof, h, adapter: str, out: Path, fmt: str, dtype: str) -> None:
    from engine.errors import UserError
    from engine.runtime.export import GGUF_DTYPES, check_out_file, export_gguf, export_gguf_lora, how_to_load_gguf
    from engine.runtime.gguf import locate

    if dtype not in GGUF_DTYPES:
        raise UserError(f"--dtype {dtype!r} is not one of {', '.join(GGUF_DTYPES)}.")
    check_out_file(Path(out).expanduser().absolute())  # before reading anything
    if fmt == "gguf-lora":
        done = export_gguf_lora(prof, h, adapter, out)
        typer.echo(f"exported adapter {done.adapter} as a GGUF LoRA for {done.revision} to {done.out}")
        typer.echo(how_to_load_gguf(done.out, base=locate(prof.model.id), system_prompt=prof.system_prompt))
        return
    done = export_gguf(prof, h, adapter, out, dtype=dtype)
    what = f"with adapter {done.adapter} merged" if done.adapter else "without an adapter (base model)"
    typer.echo(f"exported {done.revision} {what} as {dtype} GGUF to {done.out}")
    typer.echo(how_to_load_gguf(done.out, system_prompt=prof.system_prompt))
