"""One run per profile at a time: ``flock`` on ``runs/<profile>/.<name>.lock``, released by the kernel when
the process dies."""

from __future__ import annotations

import fcntl
import json
import os
import time

from engine.errors import UserError
from engine.home import Home, check_name

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
