"""Training run directories: ids, the per-profile lock, the manifest, checkpoints that can be trusted,
stop signals and time budgets.

Shared by ``engine finetune`` and ``engine reward`` (any command that trains overnight). A run lives in
``home/runs/<profile>/<run-id>/``; everything here is plain Python (no torch at import time) so the
CLI can refuse bad input before any heavy import. Distributed helpers import torch only when a
process group is actually running.

Overnight-safety rules kept here:
- a checkpoint is trusted only when its ``COMPLETE`` marker exists; the marker is written last, after
  every file in the checkpoint was fsync'd, so a run killed mid-save leaves a checkpoint without it;
- finished artefacts (an adapter, a reward model) are written to a temp dir beside the target and
  renamed into place, so a full disk or a crash never leaves a half-written adapter under its name;
- stops (budget, signals) live in engine.runs.stopping and rank-0-only helpers in
  engine.runs.distributed; both are re-exported here so callers need one import;
- one run per profile at a time (``flock`` on ``runs/<profile>/.<name>.lock``), released by the kernel
  when the process dies, so a SIGKILLed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from engine.errors import UserError
from engine.home import (
    Home,
    LinkRefused,
    check_name,
    check_tree,
    ensure_dir,
    fsync_dir,
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
EXIT_INTERRUPTED = 3
"""Exit code of a run stopped by SIGINT/SIGTERM after saving a checkpoint (resume with ``--resume``)."""

_RUN_ID = re.compile(r"^(\d{8}-\d{6})(?:-(\d+))?-([a-z0-9][a-z0-9-]*)$")


# ----------------------------------------------------------------------------------------------
# run ids and directories


def new_run_id(kind: str, now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-<kind>`` in local time, sortable by start time."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return check_name(f"{stamp}-{kind}", "run id")


def run_kind(run_id: str) -> str | None:
    """The ``<kind>`` part of a run id (``sft``, ``sft-dpo``, ``reward`` ...), None if not a run id."""
    m = _RUN_ID.match(run_id)
    return m.group(3) if m else None


@dataclass(frozen=True)
class RunDir:
    """The paths of one run. Nothing is created until ``create``/``ensure`` is called."""

    home: Home
    profile: str
    run_id: str

    @property
    def root(self) -> Path:
        return self.home.run_dir(self.profile, self.run_id)

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def report_json(self) -> Path:
        return self.root / REPORT_JSON

    @property
    def finished(self) -> bool:
        return self.report_json.is_file()

    def read_manifest(self) -> dict:
        """manifest.json, checked against :class:`engine.runs.records.Manifest` (a damaged one: one sentence)."""
        from engine.runs.records import check_manifest

        return check_manifest(read_json(self.manifest), self.manifest)

    def read_report(self) -> dict:
        """report.json, checked against :class:`engine.runs.records.Report`; ``{}`` until the run finished."""
        from engine.runs.records import check_report

        return check_report(read_json(self.report_json), self.report_json) if self.finished else {}

    def write_manifest(self, manifest: dict) -> None:
        """Write manifest.json; the checkpoint hashes :func:`mark_complete` recorded there are kept."""
        try:
            recorded = read_json(self.manifest).get(CHECKPOINT_HASHES)
        except (UserError, OSError):
            recorded = None
        if isinstance(recorded, dict) and CHECKPOINT_HASHES not in manifest:
            manifest = {**manifest, CHECKPOINT_HASHES: recorded}
        write_json(self.manifest, manifest, self.home)

    def write_json(self, path: Path, obj) -> None:
        """write_json for a file of this run, reached from the home without following links."""
        write_json(path, obj, self.home)

    def check(self, *folders: Path) -> None:
        """Refuse (one sentence) if the run folder, or one of ``folders`` in it, is reached through a link;
        called before libraries write there (Trainer checkpoints, adapters)."""
        self.home.check_dir(self.root)
        for folder in folders:
            self.home.check_dir(folder, create=True)
        check_tree(self.root, self.home)  # and nothing in it is a link (metrics.jsonl, stages/, checkpoints)

    @classmethod
    def create(cls, home: Home, profile: str, kind: str, now: float | None = None) -> "RunDir":
        """Make a fresh run directory; a second run in the same second gets ``-2``, ``-3`` ... suffixes."""
        base = new_run_id(kind, now)
        stamp, rest = base[:15], base[16:]
        home.check_dir(home.runs_dir(profile), create=True)
        for n in range(1, 1000):
            run_id = base if n == 1 else f"{stamp}-{n}-{rest}"
            path = home.run_dir(profile, run_id)
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            os.chmod(path, 0o700)
            return cls(home, profile, run_id)
        raise UserError(f"cannot create a run directory in {home.runs_dir(profile)}: too many runs this second.")


@dataclass(frozen=True)
class RunSummary:
    """What a listing shows about one run (`engine adapters`, the app's F3/F4 panels, reward listings),
    read from its manifest and report.json by :func:`run_summaries`, the one reader of both for listings."""

    run_id: str
    manifest: dict
    report: dict
    """report.json, ``{}`` until the run finished (its presence marks a finished run)."""
    problem: str | None = None
    """One sentence when the manifest or the report cannot be read (the run is listed, not skipped)."""

    @property
    def command(self) -> str | None:
        return self.manifest.get("command")

    @property
    def plan(self) -> list[str]:
        return list(self.manifest.get("plan", []))

    @property
    def finished(self) -> bool:
        return bool(self.report)

    @property
    def verdict(self) -> str:
        """The gate's verdict in words: passed the gate / refused by the gate / no report yet."""
        if self.problem:
            return "report unreadable"
        if not self.report:
            return "no report yet"
        return "passed the gate" if self.report.get("promoted") else "refused by the gate"


def run_summaries(home: Home, profile: str, kinds: Iterable[str] | None = None,
                  command: str | None = None, keep_problems: bool = False) -> list[RunSummary]:
    """One RunSummary per run of ``profile`` (oldest first), optionally only ``kinds`` of run id or runs
    of one ``command`` ("finetune", "reward"); ``keep_problems``: also runs whose files cannot be read (their
    command is unknown), with ``problem`` set."""
    out = []
    for rd in list_runs(home, profile, kinds):
        manifest: dict = {}
        report: dict = {}
        problem = None
        try:
            manifest = rd.read_manifest()
            report = rd.read_report()
        except UserError as exc:
            problem = str(exc)
        if command is not None and manifest.get("command") != command and not (problem and keep_problems):
            continue
        out.append(RunSummary(rd.run_id, manifest, report, problem))
    return out


def list_runs(home: Home, profile: str, kinds: Iterable[str] | None = None) -> list[RunDir]:
    """Every run directory of ``profile`` that has a manifest, oldest first."""
    root = home.runs_dir(profile)
    if not root.is_dir():
        return []
    wanted = set(kinds) if kinds is not None else None
    out = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or not (p / MANIFEST).is_file() or run_kind(p.name) is None:
            continue
        if wanted is not None and run_kind(p.name) not in wanted:
            continue
        out.append(RunDir(home, profile, p.name))
    return out


def last_unfinished_run(home: Home, profile: str, kinds: Iterable[str] | None = None) -> RunDir | None:
    """The newest run that has a manifest but no report (it was stopped or killed)."""
    runs = list_runs(home, profile, kinds)
    if not runs or runs[-1].finished:
        return None
    return runs[-1]


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
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
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


# ----------------------------------------------------------------------------------------------
# the lock


class RunLock:
    """An exclusive ``flock`` on ``runs/<profile>/.<name>.lock`` for the life of a run.

    The file records who holds it (pid, run id) so the refusal can say which run is in the way.
    The kernel drops the lock when the process dies, so a killed run never leaves a stale lock.
    """

    def __init__(self, home: Home, profile: str, name: str = "train") -> None:
        self.home = home
        self.path = home.runs_dir(profile) / f".{check_name(name, 'lock name')}.lock"
        self.profile = profile
        self._fd: int | None = None

    def acquire(self, run_id: str | None = None, what: str = "engine finetune") -> "RunLock":
        # No link is followed: update() truncates this file, so a planted link would clobber its target.
        fd = self.home.open(self.path, os.O_RDWR | os.O_CREAT, make_dirs=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
                holder = f" (pid {info.get('pid')}, run {info.get('run_id') or 'starting'})"
            except (ValueError, OSError):
                pass
            os.close(fd)
            raise UserError(f"another {what} run is using profile {self.profile!r}{holder}; wait for it to finish "
                            "or stop it first.") from None
        self._fd = fd
        self.update(run_id)
        return self

    def update(self, run_id: str | None) -> None:
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), "run_id": run_id, "since": time.time()}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def copy_adapter(src: Path, dst: Path) -> None:
    """Publish a copy of the adapter folder ``src`` as ``dst`` (publish_dir: never half there)."""
    with publish_dir(dst) as tmp:
        for p in Path(src).iterdir():
            if p.is_file():
                shutil.copy2(p, tmp / p.name)


# Re-exported so callers keep one import (engine.reward uses runs.Deadline, runs.StopRequest, ...).
from engine.runs.distributed import (  # noqa: E402,F401
    any_rank,
    barrier,
    broadcast,
    init_distributed,
    is_distributed,
    is_main_process,
    on_main,
    world_size,
)
from engine.runs.stopping import Deadline, StopRequest, parse_duration, parse_until  # noqa: E402,F401
