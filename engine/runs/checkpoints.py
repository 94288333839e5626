"""Checkpoints that can be trusted: a COMPLETE marker written last, with the sha256 of every file torch.load
reads recorded in the run's own manifest, verified before a resume."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.home import Home
from engine.runs.files import COMPLETE_MARKER, fsync_tree, read_json, sha256_file, write_json
from engine.safe_files import LinkRefused, check_tree, read_bytes, root_of

if TYPE_CHECKING:
    from engine.runs import RunDir


# ----------------------------------------------------------------------------------------------
# checkpoints


TORCH_FILE_SUFFIXES = (".pt", ".pth", ".bin")
"""Checkpoint files that torch.load reads on resume (optimizer, scheduler, RNG state, training args)."""


CHECKPOINT_HASHES = "checkpoint_hashes"
"""Manifest key: ``{checkpoint path relative to the run folder: {torch file: sha256}}``, written by
:func:`mark_complete` into the run's own manifest (reached from the home without following links), so a
checkpoint folder replaced by a link, with its own COMPLETE marker, cannot vouch for itself."""


def _torch_files(checkpoint: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(Path(checkpoint).iterdir())
            if p.is_file() and not p.is_symlink() and p.suffix in TORCH_FILE_SUFFIXES}


def _run_of(checkpoint: Path) -> tuple[RunDir, str] | None:
    """The run folder holding ``checkpoint`` (``<home>/runs/<profile>/<run>/...``) and the checkpoint's path in it."""
    from engine.runs import RunDir

    root = root_of(checkpoint)
    if root is None:
        return None
    parts = Path(checkpoint).absolute().relative_to(root).parts
    if len(parts) < 4 or parts[0] != "runs":
        return None
    return RunDir(Home(root), parts[1], parts[2]), "/".join(parts[3:])


def mark_complete(checkpoint: Path, info: dict | None = None) -> None:
    """Declare ``checkpoint`` usable: fsync everything in it, then write the marker last, with the sha256 of
    every torch (pickle) file in it so a resume loads only the bytes this run wrote; the same hashes go into the
    run's manifest (:data:`CHECKPOINT_HASHES`)."""
    fsync_tree(checkpoint)
    hashes = _torch_files(checkpoint)
    run = _run_of(checkpoint)
    if run is not None:
        rd, rel = run
        try:
            manifest = read_json(rd.manifest)
        except UserError:
            manifest = None
        if manifest is not None:
            recorded = manifest.get(CHECKPOINT_HASHES)
            recorded = dict(recorded) if isinstance(recorded, dict) else {}
            recorded[rel] = hashes
            write_json(rd.manifest, {**manifest, CHECKPOINT_HASHES: recorded}, rd.home)
    write_json(Path(checkpoint) / COMPLETE_MARKER, {"ts": time.time(), **(info or {}), "torch_files": hashes})


def _recorded_hashes(checkpoint: Path) -> dict | None:
    """The torch-file hashes the run's manifest recorded for ``checkpoint`` (None: not recorded there, e.g. a
    checkpoint written by an older tuneloop: then its COMPLETE marker, read without following links, counts)."""
    run = _run_of(checkpoint)
    if run is None:
        return None
    rd, rel = run
    recorded = read_json(rd.manifest).get(CHECKPOINT_HASHES)
    if isinstance(recorded, dict) and isinstance(recorded.get(rel), dict):
        return recorded[rel]
    return None


def verify_checkpoint(checkpoint: Path) -> Path:
    """Refuse (one sentence) a checkpoint whose torch files differ from the hashes recorded when it was written
    (the run's manifest, else its COMPLETE marker), that holds torch files not recorded, that holds a link or a
    non-regular file, or whose trainer_state.json is damaged. Call before the Trainer torch.loads them on resume."""
    checkpoint = Path(checkpoint)
    check_tree(checkpoint)  # no link to it or in it: the Trainer opens these files by path
    recorded = _recorded_hashes(checkpoint)
    if recorded is None:
        try:
            recorded = read_json(checkpoint / COMPLETE_MARKER).get("torch_files")
        except LinkRefused:
            raise
        except UserError:
            recorded = None
    trainer_state = checkpoint / "trainer_state.json"
    if trainer_state.exists():
        try:
            data = json.loads(read_bytes(trainer_state).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("global_step", 0), int):
            raise UserError(f"{trainer_state} is damaged, so the run cannot resume from {checkpoint.name}; delete that "
                            "checkpoint folder (the run resumes from an earlier one) or start a new run without "
                            "--resume.")
    if not isinstance(recorded, dict):
        raise UserError(f"checkpoint {checkpoint} has no file hashes in its {COMPLETE_MARKER} marker (written by an "
                        "older tuneloop, or edited), so its optimizer state cannot be trusted; start a new run "
                        "without --resume.")
    found = _torch_files(checkpoint)
    for name in sorted(set(found) | set(recorded)):
        if found.get(name) != recorded.get(name):
            state = "is missing" if name not in found else ("was added" if name not in recorded else "was changed")
            raise UserError(f"{checkpoint / name} {state} since the checkpoint was written, so tuneloop will not load "
                            "it; delete that checkpoint folder (the run resumes from an earlier one) or start a new "
                            "run without --resume.")
    return checkpoint


def is_complete(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` has its COMPLETE marker (a link there counts: reading it then refuses it)."""
    marker = Path(checkpoint) / COMPLETE_MARKER
    return marker.is_file() or marker.is_symlink()


def checkpoint_step(path: Path) -> int | None:
    m = re.fullmatch(r"checkpoint-(\d+)", Path(path).name)
    return int(m.group(1)) if m else None


def newest_complete_checkpoint(folder: Path, verify: bool = True) -> Path | None:
    """The highest-step ``checkpoint-N`` in ``folder`` that has its COMPLETE marker (half-written ones are skipped);
    ``verify``: its torch files match the marker's hashes (:func:`verify_checkpoint`, UserError if not)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(checkpoint_step(p), p) for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    for _step, p in sorted(found, reverse=True):
        if is_complete(p):
            return verify_checkpoint(p) if verify else p
    return None
