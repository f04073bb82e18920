# -*- test-case-name: tests.test_channel_loglimit -*-
"""
L{LogLimiter}: how many lines about one peer may be logged, and how many were not.

A peer decides how often it sends what a node logs (an unknown packet type, a failing
handler, a message at debug level): left alone, one connection could fill the node's disk with
log lines.  A channel therefore logs what its peer causes through a token bucket on its clock:
a burst of lines, then a steady rate; what is over it is counted, and the count is logged when
logging resumes or when the channel closes.  No timer runs: the bucket fills up when asked.
"""

from __future__ import annotations

__all__ = ["LogLimiter"]


class LogLimiter:
    """
    A token bucket over the lines logged about one peer: C{burst} lines at once, then C{burst}
    lines per C{window} seconds.  The lines refused are counted in C{suppressed}.

    @param burst: the lines that may be logged at once; at least 1.
    @param window: the seconds in which a spent burst fills up again; more than 0.
    @param now: the time the bucket starts full, on the channel's clock.

    @ivar suppressed: the lines refused since L{take_suppressed} was last called.
    @raise ValueError: if C{burst} or C{window} is out of range.
    """

    __slots__ = ("_burst", "_rate", "_tokens", "_updated", "suppressed")

    def __init__(self, burst: int, window: float, now: float) -> None:
        if burst < 1 or not window > 0:
            raise ValueError(f"need burst >= 1 and window > 0, not {burst!r} and {window!r}")
        self._burst = float(burst)
        self._rate = burst / window
        self._tokens = self._burst
        self._updated = now
        self.suppressed = 0

    def admit(self, now: float) -> bool:
        """
        Take a line: whether it may be logged at C{now}.  A refused line is counted.
        """
        # A clock set back fills nothing: the bucket never grows past its burst either way.
        tokens = self._tokens + max(now - self._updated, 0.0) * self._rate
        self._tokens = min(tokens, self._burst)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """Return how many lines were refused since the last call, and start counting anew."""
        count, self.suppressed = self.suppressed, 0
        return count
