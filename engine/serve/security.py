"""Who may talk to the server: loopback binds need no key; any other address refuses to start
without one. The key is compared as UTF-8 bytes, in constant time (``hmac.compare_digest`` of hashes)."""

from __future__ import annotations

import hashlib
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


def key_matches(header: bytes | str | None, api_key: str) -> bool:
    """``Authorization: Bearer <key>`` against the server's key. ``header`` is the raw header value: clients
    send a non-ASCII key as UTF-8 bytes, so bytes are compared with bytes (never a latin-1 decoding of them).
    Both sides are hashed first, so the comparison takes the same time whatever the lengths."""
    if header is None:
        return False
    raw = header if isinstance(header, bytes) else header.encode("latin-1", "replace")
    scheme, _, token = raw.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return False
    want = hashlib.sha256(api_key.encode("utf-8")).digest()
    return hmac.compare_digest(hashlib.sha256(token).digest(), want)


def authorization(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The raw ``Authorization`` header of an ASGI scope (None when absent)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            return value
    return None
