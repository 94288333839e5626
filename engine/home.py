"""Where tuneloop keeps its data: one home directory, laid out as docs/ARCHITECTURE.md says.

Nothing here touches the disk at import time. Directories are created 0700 and files 0600 whatever
the umask, because the feedback log is the user's private data.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError

HOME_ENV = "TUNELOOP_HOME"
DIR_MODE = 0o700
FILE_MODE = 0o600

# Names that become path components (profiles, run ids, adapters) must stay inside their folder.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe single path component, else raise a UserError."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise UserError(
            f"{what} {name!r} is not allowed: use letters, digits, '.', '_' and '-' only "
            "(no '/', '..' or leading dot)."
        )
    return name


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def unwritable(exc: OSError, path: Path) -> UserError | OSError:
    """The error to raise when creating or writing ``path`` failed: one sentence naming the folder
    (a full disk stays an OSError: the CLI's disk-full sentence covers it)."""
    if exc.errno in _DISK_FULL:
        return exc
    reason = exc.strerror or type(exc).__name__
    return UserError(f"cannot write in {path} ({reason.lower()}); the tuneloop home must be a folder you can "
                     "write to: choose another with --home or $TUNELOOP_HOME, or fix its permissions.")


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 and return it; a folder that cannot be created is a
    UserError naming it (an unwritable --home, a file where a folder should be)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and not p.is_symlink():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise unwritable(exc, d) from None
        try:
            os.chmod(d, DIR_MODE)
        except OSError as exc:
            raise unwritable(exc, d) from None
    if not path.is_dir():  # it exists, but as a file (or a link to one)
        raise unwritable(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), path)
    return path


def write_private(path: Path, data: bytes | str) -> Path:
    """Atomically replace ``path`` with ``data`` (temp file + fsync + rename), mode 0600."""
    path = Path(path)
    ensure_dir(path.parent)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise unwritable(exc, path.parent) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("tuneloop", appauthor=False))


@dataclass(frozen=True)
class Home:
    """The data directory. Paths are computed, never created, until ``ensure`` is called."""

    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None) -> "Home":
        """``--home`` wins, then ``$TUNELOOP_HOME``, then the platform's user data dir."""
        if home:
            root = Path(home)
        elif os.environ.get(HOME_ENV):
            root = Path(os.environ[HOME_ENV])
        else:
            root = default_home()
        return cls(root.expanduser().absolute())

    def ensure(self) -> "Home":
        ensure_dir(self.root)
        return self

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def demo_model_dir(self) -> Path:
        return self.models_dir / "demo"

    def feedback_dir(self, profile: str) -> Path:
        return self.root / "feedback" / check_name(profile, "profile name")

    def runs_dir(self, profile: str) -> Path:
        return self.root / "runs" / check_name(profile, "profile name")

    def run_dir(self, profile: str, run_id: str) -> Path:
        return self.runs_dir(profile) / check_name(run_id, "run id")
