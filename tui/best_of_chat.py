"""Best-of-n replies in the chat: n sampled replies, scored by the profile's reward model, best first.

Runs inside the reply worker thread (tui.replies). The engine does the work
(``engine.reward.best_of.best_of_for_profile``: it loads the newest reward run's scorer once, caches it
per home and profile, and reloads it only when a newer reward run finishes); this module only makes
the candidates visible while they generate and stoppable with Esc: ``best_of_n`` joins each reply's
pieces itself, so the model handed to it is a thin relay that reports each stream and its growing text.

No torch at import: the engine module is imported inside :func:`run_best_of`.
"""

from __future__ import annotations

import time
from typing import Callable

DEFAULT_N = 3
"""n for the best-of key when the profile's ``generation.best_of`` is 1."""


class RelayStream:
    """One candidate's stream: yields the real pieces and reports the text so far after each one."""

    def __init__(self, stream, on_text: Callable[[str, int, float], None]) -> None:
        self.stream = stream
        self.on_text = on_text

    def __iter__(self):
        text, pieces, first = "", 0, None
        for piece in self.stream:
            now = time.monotonic()
            first = first or now
            text += piece
            pieces += 1
            self.on_text(text, pieces, now - first)
            yield piece

    @property
    def record(self) -> dict:
        return self.stream.record

    def cancel(self) -> None:
        self.stream.cancel()


class RelayModel:
    """The loaded model as ``best_of_n`` sees it; each ``stream()`` is announced through ``on_stream``
    (so Esc can cancel it) with its candidate number, and its text goes to ``on_text``."""

    def __init__(self, lm, on_stream: Callable[[RelayStream, int], None],
                 on_text: Callable[[int, str, int, float], None]) -> None:
        self.lm = lm
        self.on_stream = on_stream
        self.on_text = on_text
        self.count = 0

    def stream(self, messages, params=None, system_prompt=None) -> RelayStream:
        index = self.count
        self.count += 1
        real = self.lm.stream(messages, params=params, system_prompt=system_prompt)
        relay = RelayStream(real, lambda text, pieces, seconds: self.on_text(index, text, pieces, seconds))
        self.on_stream(relay, index)
        return relay


def best_of_n_for(profile) -> int:
    """n for the best-of key: the profile's ``generation.best_of`` when above 1, else :data:`DEFAULT_N`."""
    n = int(getattr(profile.generation, "best_of", 1) or 1)
    return n if n > 1 else DEFAULT_N


def no_reward_notice(profile_name: str, n: int) -> str:
    return (f"Best of {n} needs a reward model and profile {profile_name!r} has none yet "
            f"(train one with `engine reward --profile {profile_name}`): replying once.")


def run_best_of(lm, home, profile, messages: list[dict], n: int, params,
                on_stream: Callable[[RelayStream, int], None],
                on_text: Callable[[int, str, int, float], None],
                stop_requested: Callable[[], bool]):
    """``best_of_for_profile`` through a relay; returns its candidates (best first), or None when the
    profile has no finished reward run (the caller then generates one reply as usual)."""
    from engine.reward.best_of import best_of_for_profile

    relay = RelayModel(lm, on_stream, on_text)
    return best_of_for_profile(relay, home, profile, messages, n=n, params=params, cancelled=stop_requested)
