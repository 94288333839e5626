"""Stop sequences on streamed text: cut the reply before the first stop string, and hold back a tail
that could still become one, so a client never sees part of a stop sequence."""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""  # everything accepted so far (cut at the stop sequence once hit)
        self.sent = 0  # characters of ``text`` handed out
        self.hit: str | None = None

    def feed(self, piece: str) -> str:
        """Add a piece of the reply; return the text that is safe to send now."""
        if self.hit is not None:
            return ""
        start = max(0, len(self.text) - self._hold)
        self.text += piece
        first = None
        for stop in self.stops:
            at = self.text.find(stop, start)
            if at >= 0 and (first is None or at < first[0]):
                first = (at, stop)
        if first is not None:
            self.text = self.text[: first[0]]
            self.hit = first[1]
            return self._take(len(self.text))
        return self._take(len(self.text) - self._hold)

    def flush(self) -> str:
        """The held-back tail, once the reply has ended."""
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        out = self.text[self.sent : upto]
        self.sent = upto
        return out
