"""Who may talk to the server: loopback binds need no key; any other address refuses to start
without one. The key is compared in constant time (``hmac.compare_digest``)."""

from __future__ import annotations

import hmac
import ipaddress

from engine.errors import UserError

API_KEY_ENV = "TUNELOOP_API_KEY"


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise UserError(
            f"refusing to listen on {host} without an API key; pass --api-key or set {API_KEY_ENV} "
            "(only 127.0.0.1, ::1 and localhost may go without one)."
        )


def key_matches(header: str | None, api_key: str) -> bool:
    """``Authorization: Bearer <key>`` against the server's key, in constant time."""
    scheme, _, token = (header or "").partition(" ")
    ok_scheme = scheme.lower() == "bearer"
    same = hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), api_key.encode("utf-8"))
    return ok_scheme and same
