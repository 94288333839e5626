"""One reply at a time on the one loaded model, first come first served, with a bounded queue.

``admit`` is called on the event loop before any work starts: when ``max_waiting`` requests are
already waiting it refuses (the client gets a 429). A worker thread then waits its turn in
``wait_turn`` and gives the model back with ``done``. A request cancelled while it waits (its client
went away) leaves the queue without having generated anything.
"""

from __future__ import annotations

import threading
from collections import deque


class Scheduler:
    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._busy = False
        self._running = None
        self.counts = {"admitted": 0, "refused": 0, "finished": 0, "cancelled": 0, "dropped_waiting": 0}
        """Running totals, for tests and a status line: finished replies, cancelled ones (stopped early
        because the client went away), requests dropped while waiting, requests refused (429)."""

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._busy

    def admit(self, job) -> bool:
        with self._cond:
            if len(self._queue) >= self.max_waiting + (0 if self._busy else 1):
                self.counts["refused"] += 1
                return False
            self._queue.append(job)
            self.counts["admitted"] += 1
            return True

    def wait_turn(self, job) -> bool:
        """Block until ``job`` may use the model (True), or it was cancelled while waiting (False)."""
        with self._cond:
            while not job.cancelled and (self._busy or self._queue[0] is not job):
                self._cond.wait(0.1)
            if job.cancelled:
                self._queue.remove(job)
                self.counts["dropped_waiting"] += 1
                self._cond.notify_all()
                return False
            self._queue.popleft()
            self._busy = True
            self._running = job
            return True

    def done(self, cancelled: bool = False) -> None:
        with self._cond:
            self._busy = False
            self._running = None
            self.counts["cancelled" if cancelled else "finished"] += 1
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancel flag now (a job was cancelled)."""
        with self._cond:
            self._cond.notify_all()

    def cancel_all(self, reason: str = "shutdown") -> None:
        """Stop the reply being generated and drop every waiting request (the server is stopping)."""
        with self._cond:
            jobs = [*self._queue, *([self._running] if self._running is not None else [])]
        for job in jobs:
            job.cancel(reason)
        self.wake()
