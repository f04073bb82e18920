# -*- test-case-name: tests.test_discovery_sender -*-
"""
L{Announcer}: when a node announces itself on the LAN.

The first announcement goes out a fraction of a second after start, the next ones after 1, 2,
4 ... seconds, doubling up to the interval, then every interval; every wait is jittered (by
10% either way, plus 100-300 ms as .NET adds), so that nodes started together do not announce
in step.  One timer on the injected clock, nothing polled.

L{outgoing_address} finds the address datagrams to a destination leave from, which an
announcement must name.
"""

from __future__ import annotations

import errno
import random
import socket
from collections import Counter
from collections.abc import Callable, Iterable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["DEFAULT_INTERVAL", "FIRST_DELAY", "Announcer", "outgoing_address"]

DEFAULT_INTERVAL = 10.0
"""Seconds between announcements once the node has been up a while."""

FIRST_DELAY = 0.5
"""The first announcement goes out within this many seconds of start."""

_FAST_START = 1.0
"""The wait after the first announcement; it doubles up to the interval."""

Datagram = tuple[bytes, tuple[str, int]]


class Announcer:
    """
    Sends a node's announcements on a schedule.

    @param clock: schedules the sends (C{callLater}).
    @param datagrams: makes this round's datagrams, each with its destination (empty when there
        is nothing to announce yet, e.g. no listening port).
    @param write: sends one datagram, C{write(data, (host, port))}; an C{OSError} is counted
        in C{send_failed} and logged, and the schedule goes on.
    @param counters: where C{sent} and C{send_failed} are counted.
    @param interval: the steady interval, in seconds.
    @param rng: the jitter's randomness (a C{random.Random}).
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        datagrams: Callable[[], Iterable[Datagram]],
        write: Callable[[bytes, tuple[str, int]], object],
        counters: Counter[str],
        interval: float = DEFAULT_INTERVAL,
        rng: random.Random | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"the announce interval must be above 0 s, not {interval!r}")
        self._clock = clock
        self._datagrams = datagrams
        self._write = write
        self.counters = counters
        self.interval = interval
        self._rng = rng or random.Random()
        self._call: IDelayedCall | None = None
        self._next_wait = _FAST_START
        self._last_error: int | None = None

    @property
    def running(self) -> bool:
        """Whether an announcement is scheduled."""
        return self._call is not None

    def start(self) -> None:
        """Announce soon, then on the schedule (a second start does nothing)."""
        if self._call is not None:
            return
        self._next_wait = min(_FAST_START, self.interval)
        self._call = self._clock.callLater(self._rng.uniform(0, FIRST_DELAY), self._announce)

    def stop(self) -> None:
        """Cancel the next announcement."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def announce_now(self) -> None:
        """Send this round's datagrams at once (the schedule is unchanged)."""
        for data, destination in self._datagrams():
            try:
                self._write(data, destination)
            except OSError as e:
                self._failed(destination, e)
            else:
                self.counters["sent"] += 1
                self._last_error = None

    def _announce(self) -> None:
        wait = self._next_wait
        self._next_wait = min(self._next_wait * 2, self.interval)
        jittered = wait * self._rng.uniform(0.9, 1.1) + self._rng.uniform(0.1, 0.3)
        # The next round is scheduled first: a round that fails does not end the schedule.
        self._call = self._clock.callLater(jittered, self._announce)
        try:
            self.announce_now()
        except Exception:  # noqa: BLE001
            self.counters["send_failed"] += 1
            self.log.failure("making this round's discovery datagrams failed")

    def _failed(self, destination: tuple[str, int], error: OSError) -> None:
        self.counters["send_failed"] += 1
        # One line per kind of failure, not one per round: a node with no route stays quiet.
        if error.errno != self._last_error:
            self._last_error = error.errno
            self.log.warn("cannot send a discovery datagram to {host}:{port}: {why}",
                          host=destination[0], port=destination[1],
                          why=error.strerror or str(error))


def outgoing_address(destination: str = "255.255.255.255") -> str | None:
    """
    The local IPv4 address datagrams to C{destination} leave from, as the routing table says
    (no datagram is sent), or C{None} when there is no route.

    @param destination: an IPv4 address; the limited broadcast address by default.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        probe.connect((destination, 9))
        address: str = probe.getsockname()[0]
    except OSError as e:
        if e.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL,
                           errno.EACCES, errno.ENODEV):
            raise
        return None
    finally:
        probe.close()
    return address if address != "0.0.0.0" else None
