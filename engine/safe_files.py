"""Files under the tuneloop home, opened and written safely: 0700 folders and 0600 files whatever the umask
(the feedback log is the user's private data), atomic replacement (temp file, fsync, one rename), and no link
followed below the home.

Safe opens: every file under the home is opened by walking from the home's own directory descriptor,
one component at a time, with ``O_NOFOLLOW`` (``open_beneath``, ``open_dir``, ``Home.open``,
``write_private(..., base=home)``). A symbolic link anywhere below the home (a planted
``runs/<p>/.train.lock``, a linked ``feedback/<p>`` folder or ``events.jsonl``) is refused with one
sentence naming it (:class:`LinkRefused`) instead of being followed to a file outside; a FIFO or a
device is refused too, so nothing hangs or reads forever. The home folder itself may be a link: the
user chose it. Reads that get only a path find the home that holds it (:func:`root_of`: every
:class:`engine.home.Home` made in this process registers its root).
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from engine.errors import UserError


class HasRoot(Protocol):
    """A tuneloop home (:class:`engine.home.Home`), as the ``base`` of the functions below."""

    @property
    def root(self) -> Path: ...


DIR_MODE = 0o700
FILE_MODE = 0o600

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


class LinkRefused(UserError):
    """A symbolic link (or a FIFO/device) where tuneloop expects its own file or folder."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse_link(path: Path) -> LinkRefused:
    return LinkRefused(f"{path} is a symbolic link; tuneloop never follows links inside its home (one could "
                       "point at any of your files), so remove it and run again.")


def _parts(root: Path, path: Path | str) -> tuple[str, ...]:
    path = Path(path)
    try:
        parts = path.relative_to(root).parts  # a path built from the home (also when the home is relative)
    except ValueError:
        if path.is_absolute():
            raise UserError(f"{path} is outside the tuneloop home {root}; tuneloop only writes inside it.") from None
        parts = path.parts  # relative to the home
    if not parts or any(p in ("..", ".") for p in parts):
        raise UserError(f"{path} is not a file path inside the tuneloop home {root}.")
    return parts


def open_dir(root: Path, rel: Path | str | tuple[str, ...] = (), create: bool = False) -> int:
    """A descriptor of ``root/rel``, reached without following any link below ``root``.

    ``create``: make missing folders (0700) on the way. Raises :class:`LinkRefused` naming the link.
    """
    root = Path(root)
    if isinstance(rel, tuple):
        parts = rel
    else:
        parts = () if str(rel) in ("", ".") or Path(rel) == root else _parts(root, rel)
    if create:
        ensure_dir(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = root
    try:
        for part in parts:
            walked = walked / part
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchmod(nfd, DIR_MODE)
            os.close(fd)
            fd = nfd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(walked):
            raise _refuse_link(walked) from None
        if exc.errno in (errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EROFS):
            raise unwritable(exc, walked) from None  # e.g. a file where a home folder should be
        raise
    return fd


def open_beneath(root: Path, path: Path | str, flags: int, mode: int = FILE_MODE, make_dirs: bool = False) -> int:
    """``os.open`` of ``path`` (absolute under ``root``, or relative to it) following no link below ``root``.

    Only regular files are opened (a FIFO would block, a device read forever): anything else raises
    :class:`LinkRefused`. A file this call creates gets mode 0600 whatever the umask.
    """
    root = Path(root)
    parts = _parts(root, path)
    full = root.joinpath(*parts)
    dfd = open_dir(root, parts[:-1], create=make_dirs)
    try:
        try:
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse_link(full) from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise LinkRefused(f"{full} is not a regular file; tuneloop only reads and writes its own files there, "
                              "so remove it and run again.")
        if not flags & os.O_NONBLOCK:
            os.set_blocking(fd, True)
        if flags & os.O_CREAT and st.st_size == 0 and stat.S_IMODE(st.st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
        return fd
    finally:
        os.close(dfd)


def _base_root(base) -> Path | None:
    if base is None:
        return None
    return Path(getattr(base, "root", base))


def write_private(path: Path, data: bytes | str, base: "HasRoot | Path | None" = None) -> Path:
    """Atomically replace ``path`` with ``data`` (temp file + fsync + rename), mode 0600.

    ``base`` (the home, or a folder of it): reach ``path``'s folder from there without following links
    (:func:`open_dir`); the temp file and the rename never follow a link either way (a link planted
    under ``path``'s name is replaced, not written through).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return write_atomic(path, lambda f: f.write(payload), base)


def write_atomic(path: Path, fill: Callable[[IO[bytes]], object], base: "HasRoot | Path | None" = None) -> Path:
    """:func:`write_private` for a file written piece by piece: ``fill(f)`` writes the open temp file, which
    replaces ``path`` in one rename once it is complete and on disk (a failure, in ``fill`` too, leaves nothing)."""
    path = Path(path)
    root = _base_root(base)
    try:
        if root is None:
            ensure_dir(path.parent)
            dfd = open_dir(path.parent)
        else:
            dfd = open_dir(root, _parts(root, path)[:-1], create=True)
    except UserError:
        raise
    except OSError as exc:
        raise unwritable(exc, path.parent) from None
    tmp = f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                         dir_fd=dfd)
        except OSError as exc:
            raise unwritable(exc, path.parent) from None
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
            raise
        try:
            os.fsync(dfd)
        except OSError:
            pass
    finally:
        os.close(dfd)
    return path


def fsync_path(path: Path | str) -> None:
    """fsync one file or folder, best effort (a file that went away or a filesystem that refuses is skipped)."""
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


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fsync_path(path)


_ROOTS: set[Path] = set()
"""Every home this process made a :class:`Home` for: reads that get only a path (run files, adapters) find
their home here and walk from it (:func:`root_of`)."""


def root_of(path: Path | str) -> Path | None:
    """The home (of this process's :class:`Home` objects) that holds ``path``, the innermost one; None if none."""
    path = Path(path)
    if not path.is_absolute():
        path = path.absolute()
    best: Path | None = None
    for root in list(_ROOTS):
        if path != root and path.is_relative_to(root) and (best is None or len(root.parts) > len(best.parts)):
            best = root
    return best


def open_file(path: Path | str, base: "HasRoot | Path | None" = None) -> int:
    """A read-only descriptor of the regular file ``path``: walked from its home (``base``, else the registered
    home that holds it) without following any link (:class:`LinkRefused`); outside every home, only the file
    itself must not be a link."""
    root = _base_root(base) or root_of(path)
    if root is not None:
        return open_beneath(root, Path(path).absolute() if not Path(path).is_absolute() else path, os.O_RDONLY)
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse_link(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefused(f"{path} is not a regular file; tuneloop only reads its own files there, so remove it "
                          "and run again.")
    os.set_blocking(fd, True)
    return fd


def read_bytes(path: Path | str, base: "HasRoot | Path | None" = None) -> bytes:
    """The bytes of ``path``, opened by :func:`open_file` (no link followed, regular files only)."""
    with os.fdopen(open_file(path, base), "rb") as f:
        return f.read()


def read_text(path: Path | str, base: "HasRoot | Path | None" = None) -> str:
    """:func:`read_bytes` as UTF-8 text (UnicodeDecodeError as usual)."""
    return read_bytes(path, base).decode("utf-8")


def check_tree(path: Path | str, base: "HasRoot | Path | None" = None) -> Path:
    """Refuse (:class:`LinkRefused`, one sentence) a folder that is reached through a link, or that holds, at any
    depth, a link, a FIFO or a device: for folders a library then opens by path (PEFT adapters, a Trainer
    checkpoint, the demo model). A missing folder raises FileNotFoundError. Returns ``path``."""
    path = Path(path)
    root = _base_root(base) or root_of(path)
    if root is None:
        if path.is_symlink():
            raise _refuse_link(path)
        fd = os.open(path, _DIR_FLAGS)
    else:
        fd = open_dir(root, path)
    try:
        _check_fd_tree(fd, path)
    finally:
        os.close(fd)
    return path


def _check_fd_tree(fd: int, where: Path, depth: int = 0) -> None:
    if depth > 32:
        raise LinkRefused(f"{where} is nested too deep to be tuneloop's own folder; remove it and run again.")
    with os.scandir(fd) as it:
        entries = list(it)
    for entry in entries:
        full = where / entry.name
        if entry.is_symlink():
            raise _refuse_link(full)
        if entry.is_dir(follow_symlinks=False):
            try:
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refuse_link(full) from None
                raise
            try:
                _check_fd_tree(sub, full, depth + 1)
            finally:
                os.close(sub)
        elif not entry.is_file(follow_symlinks=False):
            raise LinkRefused(f"{full} is not a regular file; tuneloop only reads and writes its own files there, "
                              "so remove it and run again.")
