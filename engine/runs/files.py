"""Files a run writes and reads: JSON and JSON lines from the home without following links, hashes and
fingerprints, fsync, a full disk in one sentence, and folders published whole (temp dir + rename)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from engine.errors import UserError
from engine.home import Home
from engine.safe_files import (
    LinkRefused,
    ensure_dir,
    fsync_dir,
    fsync_path,
    open_beneath,
    open_dir,
    open_file,
    read_bytes,
    root_of,
    write_private,
)

COMPLETE_MARKER = "COMPLETE"
MANIFEST = "manifest.json"
REPORT_JSON = "report.json"
METRICS = "metrics.jsonl"


# ----------------------------------------------------------------------------------------------
# files


def write_json(path: Path, obj, base: Home | None = None) -> None:
    """Atomic 0600 JSON file; with ``base`` (the home) its folders are reached without following links."""
    write_private(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", base)


def read_json(path: Path) -> dict:
    """A JSON object file of a run, read without following any link below the home (LinkRefused); a missing,
    corrupt or non-object file is one UserError naming it."""
    try:
        data = json.loads(read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the run directory is incomplete.") from None
    except NotADirectoryError:
        raise UserError(f"{path} is missing (a file stands where its folder should be); the run directory is "
                        "damaged.") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{path} is corrupt; delete that run directory and start a new run.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is corrupt (not a JSON object); delete that run directory and start a new run.")
    return data


def jsonl_line(obj: dict) -> bytes:
    return (json.dumps(obj, default=str) + "\n").encode("utf-8")


def open_append(path: Path) -> int:
    """An ``O_APPEND`` descriptor of ``path`` (created 0600), reached from its home without following any link
    (a linked ``metrics.jsonl`` or run folder: LinkRefused, one sentence)."""
    root = root_of(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    if root is not None:
        return open_beneath(root, path, flags)
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(f"{path} is a symbolic link; tuneloop never follows links inside its home (one could "
                              "point at any of your files), so remove it and run again.") from None
        raise


def append_jsonl(path: Path, obj: dict) -> None:
    """Append one JSON line (0600, fsync'd): metrics survive a SIGKILL up to the last line."""
    fd = open_append(path)
    try:
        os.write(fd, jsonl_line(obj))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    """Lines of a JSONL file; a torn last line (killed mid-write) is skipped."""
    out: list[dict] = []
    try:
        text = read_bytes(path).decode("utf-8", "replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except (ValueError, RecursionError):
            continue
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with os.fdopen(open_file(path), "rb") as f:  # no link followed below the home
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint_dir(folder: Path, pattern: str = "*") -> str:
    """One sha256 over the names and bytes of the files in ``folder`` (sorted): the frozen data's id."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).glob(pattern)):
        if p.is_symlink():
            raise LinkRefused(f"{p} is a symbolic link; tuneloop never follows links inside its home (one could "
                              "point at any of your files), so remove it and run again.")
        if p.is_file():
            h.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def settings_fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def package_versions(names: Iterable[str] = ("tuneloop", "torch", "transformers", "trl", "peft", "accelerate",
                                             "datasets")) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def fsync_tree(folder: Path) -> None:
    """fsync every file and directory under ``folder`` (before a COMPLETE marker or a rename)."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fsync_path(os.path.join(dirpath, name))
        fsync_dir(Path(dirpath))


def disk_full_error(exc: OSError, where: Path) -> UserError:
    return UserError(f"the disk holding {where} is full ({exc.strerror}); free some space and run again with "
                     "--resume.")


def as_disk_error(exc: BaseException, where: Path) -> UserError | None:
    """The one-sentence disk-full error for ``exc`` if it is one: ENOSPC, what the tokenizers library raises
    (a plain Exception "No space left on device (os error 28)"), or what torch.save (RuntimeError "file write
    failed") and safetensors (SafetensorError "I/O error") turn it into, recognised by the disk being
    (nearly) full right after."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full_error(exc, where)
    if "No space left on device" in str(exc) or "os error 28" in str(exc):  # Rust libraries (tokenizers)
        return disk_full_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), where)
    if isinstance(exc, (OSError, RuntimeError)) or type(exc).__name__ == "SafetensorError":
        try:
            low = shutil.disk_usage(where if Path(where).exists() else Path(where).parent).free < 64 * 1024 * 1024
        except OSError:
            low = False
        if low:
            return disk_full_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), where)
    return None


def as_write_error(exc: BaseException, where: Path, what: str) -> UserError | None:
    """The one sentence for a failure while writing ``what`` into the folder ``where``: the disk-full one
    (:func:`as_disk_error`), else "cannot write <what> (<reason>)." for an OSError; None for anything else."""
    full = as_disk_error(exc, where)
    if full is not None:
        return full
    if isinstance(exc, OSError):
        return UserError(f"cannot write {what} ({exc.strerror or exc}).")
    return None


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def clean_leftovers(folder: Path) -> list[Path]:
    """Remove ``.<name>.*.tmp`` / ``.<name>.old`` folders a killed publish left in ``folder`` and below (the
    run lock is held, so no publish is in progress); returns what was removed."""
    removed = []
    for pattern in (".*.tmp", ".*.old"):
        for p in sorted(Path(folder).rglob(pattern)):
            if p.is_symlink():
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
            elif p.is_file() and pattern == ".*.tmp":  # a killed write_private's temp file (.report.json.*.tmp)
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


@contextlib.contextmanager
def publish_dir(final: Path):
    """Yield a temp dir beside ``final``; on success fsync it and put it at ``final`` in one atomic step.

    An existing ``final`` (an adapter in use) is swapped out by ``renameat2(RENAME_EXCHANGE)``, never
    removed first: at every instant ``final`` is the old or the new complete folder. (Without that call,
    e.g. on macOS, the old folder is renamed aside first: a crash between the two renames leaves
    ``.<name>.old``, which ``clean_leftovers`` and the next publish remove.) A crash, an exception or a
    full disk leaves ``final`` as it was (absent or the previous version).
    """
    final = Path(final)
    root = root_of(final)
    if root is not None:  # no link on the way from the home (a linked stages/ would receive the adapter)
        os.close(open_dir(root, final.parent, create=True))
    else:
        ensure_dir(final.parent)
    for stale in list(final.parent.glob(f".{final.name}.*.tmp")) + [final.with_name(f".{final.name}.old")]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            if exchange(tmp, final):  # tmp now holds the previous version
                fsync_dir(final.parent)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                old = final.with_name(f".{final.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        fsync_dir(final.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        disk = as_disk_error(exc, final) if isinstance(exc, Exception) else None
        if disk is not None:
            raise disk from None
        raise


def copy_adapter(src: Path, dst: Path) -> None:
    """Publish a copy of the adapter folder ``src`` as ``dst`` (publish_dir: never half there)."""
    with publish_dir(dst) as tmp:
        for p in Path(src).iterdir():
            if p.is_file():
                shutil.copy2(p, tmp / p.name)
