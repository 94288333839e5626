"""Refuse every network connection in this process (Unix sockets excepted) and log each attempt.

``install(log_path)`` patches ``socket.socket.connect``/``connect_ex``/``sendto``,
``socket.create_connection`` and ``socket.getaddrinfo``: an attempt raises OSError (ENETUNREACH) and
appends one line to ``log_path``, so a test sees an attempt even when the caller swallowed the error.
Used in-process by the tests and in subprocesses through this folder's sitecustomize.py.
"""

from __future__ import annotations

import errno
import os
import socket

LOG_ENV = "TUNELOOP_NET_GUARD_LOG"
_LOCAL_NAMES = {None, "", "localhost"}


def _refuse(log_path: str | None, what: str, target) -> None:
    if log_path:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(f"pid {os.getpid()} {what} {target!r}\n")
    raise OSError(errno.ENETUNREACH, f"network refused by the tuneloop test guard: {what} {target!r}")


def install(log_path: str | None, patch=None) -> None:
    """Install the guard. ``patch(obj, name, value)`` lets pytest's monkeypatch undo it later."""
    setter = patch or setattr
    orig_connect, orig_connect_ex = socket.socket.connect, socket.socket.connect_ex
    orig_sendto, orig_getaddrinfo = socket.socket.sendto, socket.getaddrinfo

    def is_unix(sock) -> bool:
        return getattr(socket, "AF_UNIX", None) is not None and sock.family == socket.AF_UNIX

    def connect(self, address):
        if is_unix(self):
            return orig_connect(self, address)
        _refuse(log_path, "connect", address)

    def connect_ex(self, address):
        if is_unix(self):
            return orig_connect_ex(self, address)
        _refuse(log_path, "connect_ex", address)

    def sendto(self, *args):
        if is_unix(self):
            return orig_sendto(self, *args)
        _refuse(log_path, "sendto", args[-1])

    def create_connection(address, *args, **kwargs):
        _refuse(log_path, "create_connection", address)

    def getaddrinfo(host, *args, **kwargs):
        if host in _LOCAL_NAMES:
            return orig_getaddrinfo(host, *args, **kwargs)
        _refuse(log_path, "getaddrinfo", host)

    setter(socket.socket, "connect", connect)
    setter(socket.socket, "connect_ex", connect_ex)
    setter(socket.socket, "sendto", sendto)
    setter(socket, "create_connection", create_connection)
    setter(socket, "getaddrinfo", getaddrinfo)
