"""Notice when ``engine finetune`` (or ``engine adapters use``) changes the adapter a profile uses.

The app polls the pointer file ``runs/<profile>/promoted.json`` once a second with one ``stat``
(microseconds; no read), and reads it in a thread worker only when its stamp changed. The app then
offers the switch (a notice and F6) instead of changing the model under a person mid-conversation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from engine.adapters import promoted_file
from engine.home import Home

POLL_SECONDS = 1.0


def _stamp(path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass
class PromotionWatch:
    """The last seen stamp of one profile's promoted.json; :meth:`changed` says if it moved since."""

    home: Home
    profile: str
    _seen: tuple | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._seen = _stamp(promoted_file(self.home, self.profile))

    def changed(self) -> bool:
        now = _stamp(promoted_file(self.home, self.profile))
        if now == self._seen:
            return False
        self._seen = now
        return True
