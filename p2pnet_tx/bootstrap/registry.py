# -*- test-case-name: tests.test_bootstrap_registry -*-
"""
The live state of a bootstrap server, in memory: registered peers in the order of their last
heartbeat, the registrations per network, the blocked addresses and identifiers, the tasks
queued per peer, and the peer counts over time.

Nothing here does I/O or schedules anything: L{p2pnet_tx.bootstrap.server} writes each change
to the store and keeps the expiry timer, from L{Registry.next_expiry}.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable

from p2pnet_tx.bootstrap.limits import BootstrapLimits, registration_group
from p2pnet_tx.bootstrap.store import PeerRecord, QueuedTask

__all__ = [
    "API_DOTNET",
    "API_V1",
    "CountHistory",
    "RegistrationRefused",
    "Registry",
    "address_text",
]

API_V1 = "v1"
"""Peers registered through C{/v1}: p2pnet_tx nodes, their identifier proven by their key."""

API_DOTNET = "dotnet"
"""Peers registered through the .NET-compatible API: nothing about them is proven."""


class RegistrationRefused(Exception):
    """
    A registration the server does not take.

    @ivar code: the HTTP status of the refusal (403 blocked, 409 taken, 429 full).
    @ivar message: why, for the client.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def address_text(ip: str, port: int) -> str:
    """C{ip:port}, with an IPv6 address in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class CountHistory:
    """
    The number of registered peers over time: one point a minute (the last count of that
    minute), the latest day kept.  A point is noted when the count changes; no timer.

    @ivar points: C{(minute start, count)} pairs, oldest first.
    """

    def __init__(self, period: float = 60.0, keep: int = 1440) -> None:
        self._period = period
        self.points: deque[tuple[float, int]] = deque(maxlen=keep)

    def note(self, now: float, count: int) -> None:
        """Note the count at C{now}."""
        minute = now - now % self._period
        if self.points and self.points[-1][0] == minute:
            self.points[-1] = (minute, count)
        else:
            self.points.append((minute, count))


class Registry:
    """
    The registered peers, blocks and queued tasks of a bootstrap server.

    @param limits: the registration caps and task queue length.
    @param ttl: seconds a peer stays registered after its last heartbeat.
    @param rng: chooses the peers of a sample (a seeded L{random.Random} in tests).

    @ivar peers: the live peers by identifier, least recently seen first.
    @ivar blocked_ips: IPs refused on register and heartbeat (every peer behind them).
    @ivar blocked_addresses: C{ip:port} addresses (L{address_text}) refused likewise: a
        blocked peer's, which leaves other peers behind the same IP (a NAT) alone.
    @ivar blocked_identifiers: identifiers refused likewise.
    @ivar history: the peer count over time.
    """

    def __init__(self, limits: BootstrapLimits, ttl: float,
                 rng: random.Random | None = None) -> None:
        self.limits = limits
        self.ttl = ttl
        self._rng = rng if rng is not None else random.SystemRandom()
        self.peers: OrderedDict[str, PeerRecord] = OrderedDict()
        self._groups: Counter[str] = Counter()
        self.blocked_ips: set[str] = set()
        self.blocked_addresses: set[str] = set()
        self.blocked_identifiers: set[str] = set()
        self._tasks: dict[str, OrderedDict[str, QueuedTask]] = {}
        self.history = CountHistory()

    # -- Peers ------------------------------------------------------------------------------------

    def is_blocked(self, identifier: str, ip: str, port: int | None = None) -> bool:
        """Whether C{identifier}, C{ip} or the address C{ip:port} is blocked."""
        return (identifier in self.blocked_identifiers or ip in self.blocked_ips
                or (port is not None and address_text(ip, port) in self.blocked_addresses))

    def blocks(self, kind: str) -> set[str]:
        """The blocked values of a kind: C{"identifier"}, C{"ip"} or C{"address"}."""
        return {"identifier": self.blocked_identifiers, "ip": self.blocked_ips,
                "address": self.blocked_addresses}[kind]

    def check(self, identifier: str, ip: str, api: str, port: int | None = None) -> None:
        """
        Say whether a registration of C{identifier} from C{ip} through C{api} would be taken.

        @raise RegistrationRefused: blocked (403); an identifier registered through C{/v1}
            claimed through the .NET API (409); its network or the table full (429).
        """
        if self.is_blocked(identifier, ip, port):
            raise RegistrationRefused(403, "blocked by the operator of this server")
        existing = self.peers.get(identifier)
        if existing is not None and existing.api == API_V1 and api != API_V1:
            raise RegistrationRefused(409, "this identifier is registered with its key")
        group = registration_group(ip)
        if existing is None or registration_group(existing.ip) != group:
            if self._groups[group] >= self.limits.max_per_group:
                raise RegistrationRefused(
                    429, f"{self.limits.max_per_group} peers are registered from {group}")
            if existing is None and len(self.peers) >= self.limits.max_peers:
                raise RegistrationRefused(429, "this server has no room for more peers")

    def add(self, record: PeerRecord) -> PeerRecord | None:
        """
        Register (or register again) a peer, checked with L{check} first.

        @return: the record it replaced, if any (its C{registered} time is kept).
        """
        old = self.peers.pop(record.identifier, None)
        if old is not None:
            self._groups[registration_group(old.ip)] -= 1
            record.registered = old.registered
        self.peers[record.identifier] = record
        self._groups[registration_group(record.ip)] += 1
        self.history.note(record.last_seen, len(self.peers))
        return old

    def seen(self, identifier: str, now: float) -> PeerRecord | None:
        """
        Note a heartbeat.

        @return: the peer, or C{None} if it is not registered (or has expired).
        """
        record = self.peers.get(identifier)
        if record is None or record.last_seen + self.ttl <= now:
            return None
        record.last_seen = now
        self.peers.move_to_end(identifier)
        return record

    def remove(self, identifier: str, now: float) -> PeerRecord | None:
        """
        Forget a peer and its queued tasks.

        @return: its record, or C{None} if it was not registered.
        """
        record = self.peers.pop(identifier, None)
        if record is not None:
            self._groups[registration_group(record.ip)] -= 1
            self._tasks.pop(identifier, None)
            self.history.note(now, len(self.peers))
        return record

    def expire(self, now: float) -> list[PeerRecord]:
        """
        Forget every peer with no heartbeat for C{ttl} seconds.

        @return: the peers forgotten.
        """
        gone = []
        for record in self.peers.values():
            if record.last_seen + self.ttl > now:
                break
            gone.append(record)
        for record in gone:
            self.remove(record.identifier, now)
        return gone

    def next_expiry(self) -> float | None:
        """When the least recently seen peer expires, or C{None} with no peers."""
        for record in self.peers.values():
            return record.last_seen + self.ttl
        return None

    def sample(self, api: str, limit: int, exclude: str | None = None) -> list[PeerRecord]:
        """
        A uniform random sample of at most C{limit} live peers registered through C{api}.

        @param exclude: an identifier left out (the caller).
        """
        candidates = [record for record in self.peers.values()
                      if record.api == api and record.identifier != exclude]
        if len(candidates) <= limit:
            self._rng.shuffle(candidates)
            return candidates
        return self._rng.sample(candidates, limit)

    def count(self, api: str) -> int:
        """How many live peers registered through C{api}."""
        return sum(1 for record in self.peers.values() if record.api == api)

    # -- Tasks ------------------------------------------------------------------------------------

    def queue(self, task: QueuedTask) -> QueuedTask | None:
        """
        Queue a task for its recipient.

        @return: the oldest task dropped to keep the queue within its bound, if one was.
        """
        queue = self._tasks.setdefault(task.recipient, OrderedDict())
        queue[task.id] = task
        if len(queue) > self.limits.max_tasks_per_peer:
            return queue.popitem(last=False)[1]
        return None

    def take_tasks(self, recipient: str, now: float) -> tuple[list[QueuedTask], list[QueuedTask]]:
        """
        Take every task queued for C{recipient}.

        @return: the live tasks to deliver, and the expired ones dropped.
        """
        queue = self._tasks.pop(recipient, None)
        if not queue:
            return [], []
        live = [task for task in queue.values() if task.expires > now]
        expired = [task for task in queue.values() if task.expires <= now]
        return live, expired

    def queued(self) -> list[QueuedTask]:
        """Every queued task, by recipient, oldest first."""
        return [task for queue in self._tasks.values() for task in queue.values()]

    def load(self, peers: Iterable[PeerRecord], tasks: Iterable[QueuedTask],
             blocks: Iterable[tuple[str, str]], now: float) -> None:
        """
        Take back the state read from the store (peers in the order of their last heartbeat).
        """
        for kind, value in blocks:
            if kind in ("identifier", "ip", "address"):
                self.blocks(kind).add(value)
        for record in sorted(peers, key=lambda r: r.last_seen):
            self.peers[record.identifier] = record
            self._groups[registration_group(record.ip)] += 1
        for task in tasks:
            if task.recipient in self.peers:
                self.queue(task)
        self.history.note(now, len(self.peers))
