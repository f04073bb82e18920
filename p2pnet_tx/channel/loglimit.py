# -*- test-case-name: tests.test_channel_loglimit,tests.test_channel_logs -*-
"""
L{LogLimiter}: how many lines about one peer may be logged, and how many were not; L{log_peer}:
a line a peer caused, logged within its channel's budget.

A peer decides how often it sends what a node logs (an unknown packet type, a failing
handler, a message at debug level): left alone, one connection could fill the node's disk with
log lines.  A channel therefore logs what its peer causes through a token bucket on its clock:
a burst of lines, then a steady rate; what is over it is counted, and the count is logged when
logging resumes or when the channel closes.  No timer runs: the bucket fills up when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger, LogLevel

if TYPE_CHECKING:
    from p2pnet_tx.channel.protocol import PeerChannel

__all__ = ["LogLimiter", "log_peer"]

# The levels of the lines a peer causes in the normal course of things (one per packet, at
# most): they have a log budget of their own, so that they never use up that of warnings.
_CHATTER = frozenset({LogLevel.debug, LogLevel.info})


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


def log_peer(channel: PeerChannel, log: Logger, level: LogLevel, format: str,
             fields: dict[str, Any]) -> bool:
    """
    Log a line that C{channel}'s peer caused, within the channel's log budget: this is
    L{PeerChannel.log_peer <p2pnet_tx.channel.PeerChannel.log_peer>}, which says how.

    @param channel: the channel whose peer caused the line.
    @param log: the logger the line belongs to.
    @param level: its level.
    @param format: its template.
    @param fields: its fields.
    @return: whether the line was logged.
    """
    chatter = level in _CHATTER
    budget = channel._chatter_budget if chatter else channel._warning_budget
    now = channel.clock.seconds()
    if budget is None:
        limits = channel.limits
        budget = LogLimiter(limits.peer_log_burst, limits.peer_log_window, now)
        if chatter:
            channel._chatter_budget = budget
        else:
            channel._warning_budget = budget
    if not budget.admit(now):
        return False
    _log_suppressed(channel, log, level, budget)
    log.emit(level, format, **fields)
    return True


def log_suppressed_lines(channel: PeerChannel) -> None:
    """C{channel} is closed: say how many lines of each of its budgets were not logged."""
    _log_suppressed(channel, channel.log, LogLevel.warn, channel._warning_budget)
    _log_suppressed(channel, channel.log, LogLevel.debug, channel._chatter_budget)


def _log_suppressed(channel: PeerChannel, log: Logger, level: LogLevel,
                    budget: LogLimiter | None) -> None:
    count = budget.take_suppressed() if budget is not None else 0
    if count:
        log.emit(level, "{count} more lines about {peer} were not logged (at most {burst} "
                 "per {window} s)", count=count, peer=channel.peer,
                 burst=channel.limits.peer_log_burst, window=channel.limits.peer_log_window)
