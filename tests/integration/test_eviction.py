"""
The two lock-out attacks of issue 8 (finding 4), rebuilt on real loopback sockets, with the
attack still running while an honest node tries to get in:

  - trusted, chatty attackers from a few addresses keep the inbound table full: the honest
    newcomer evicts one of them (the youngest of the most represented /16) and stays;
  - silent connections from many addresses, renewed as they time out, keep the pending table
    full: the honest newcomer takes the place of the oldest pending one.

Each 127.x.y.z address is a distinct source (Linux routes all of 127.0.0.0/8 to lo), bound
with C{bindAddress}: the trusted attackers and honest nodes are ordinary L{PeerNetwork}s whose
reactor binds every outgoing TCP connection to one such address.  Limits are scaled down
(fewer slots, a shorter handshake deadline) so that the attack patterns fit in a few seconds.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from zope.interface import directlyProvides, providedBy

from p2pnet_tx.channel import ChannelLimits, PeerChannel
from p2pnet_tx.network import NetworkLimits, PeerNetwork
from p2pnet_tx.network.admission import EVICTED
from p2pnet_tx.network.eviction import network_group
from p2pnet_tx.network.rtt import kernel_rtt
from p2pnet_tx.peer import GenericPeer

from .support import eventually

HONEST_DEADLINE = 5.0
"""Seconds within which an honest node must be trusted while the attack runs."""

RENEW_DELAY = 0.05
"""Seconds an attacker waits before it replaces a lost connection."""

MAX_ATTEMPTS = 2000
"""Connections one attack may open in all: every loop here is bounded."""


class BoundReactor:
    """
    The global reactor, but every outgoing TCP connection leaves from C{source}: an ordinary
    L{PeerNetwork} given this reactor plays a node at that address.
    """

    def __init__(self, source: str) -> None:
        self._source = source
        directlyProvides(self, providedBy(reactor))

    def connectTCP(self, host: str, port: int, factory: Any, timeout: float = 30,
                   bindAddress: Any = None) -> Any:
        return reactor.connectTCP(host, port, factory, timeout, (self._source, 0))

    def connectSSL(self, host: str, port: int, factory: Any, contextFactory: Any,
                   timeout: float = 30, bindAddress: Any = None) -> Any:
        return reactor.connectSSL(host, port, factory, contextFactory, timeout,
                                  (self._source, 0))

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class ChattyAttacker:
    """
    A trusted peer at C{source} that sends a message at once and then every 30 s, and that
    connects again RENEW_DELAY after its channel closes or its dial fails, while it runs.
    """

    def __init__(self, source: str, server_port: int) -> None:
        self.network = PeerNetwork(BoundReactor(source))
        self._server = GenericPeer("127.0.0.1", server_port)
        self._renewal: IDelayedCall | None = None
        self.running = True
        self.attempts = 0

    def start(self) -> None:
        self._renewal = None
        if self.running and self.attempts < MAX_ATTEMPTS:
            self.attempts += 1
            Deferred.fromCoroutine(self._session())

    async def _session(self) -> None:
        try:
            channel = await self.network.connect(self._server)
            await channel.when_trusted()
        except Exception:  # noqa: BLE001 - an attacker retries whatever went wrong
            self._renew()
            return
        chatter = LoopingCall(channel.send_message, "still here")
        chatter.clock = reactor
        chatter.start(30.0, now=True).addErrback(lambda _: None)
        await channel.when_closed()
        if chatter.running:
            chatter.stop()
        self._renew()

    def _renew(self) -> None:
        if self.running:
            self._renewal = reactor.callLater(RENEW_DELAY, self.start)

    async def stop(self) -> None:
        self.running = False
        if self._renewal is not None and self._renewal.active():
            self._renewal.cancel()
        await self.network.close()


class SilentConnection(Protocol):
    """A connection that never sends a byte; tells its pool when it is gone."""

    def __init__(self, pool: SilentPool) -> None:
        self._pool = pool

    def connectionMade(self) -> None:
        self._pool.opened(self)

    def connectionLost(self, reason: object) -> None:
        self._pool.lost(self)


class SilentPool:
    """
    C{size} silent connections at all times, each from the next of C{sources} in turn, each
    replaced RENEW_DELAY after it is lost (timed out, evicted or refused).
    """

    def __init__(self, server_port: int, sources: list[str], size: int) -> None:
        self._port = server_port
        self._sources = sources
        self.size = size
        self.running = True
        self.attempts = 0
        self.open: set[SilentConnection] = set()
        self.seen_pending: list[int] = []
        self._server: PeerNetwork | None = None
        self._renewals: list[IDelayedCall] = []

    def watch(self, server: PeerNetwork) -> None:
        """Sample the server's pending table each time a connection of the pool is made."""
        self._server = server

    def start(self) -> None:
        for _ in range(self.size):
            self._dial()

    def _dial(self) -> None:
        if not self.running or self.attempts >= MAX_ATTEMPTS:
            return
        source = self._sources[self.attempts % len(self._sources)]
        self.attempts += 1
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self._port, bindAddress=(source, 0))
        connectProtocol(endpoint, SilentConnection(self)).addErrback(self._failed)

    def _failed(self, failure: object) -> None:
        self._renew()

    def _renew(self) -> None:
        if self.running:
            self._renewals = [call for call in self._renewals if call.active()]
            self._renewals.append(reactor.callLater(RENEW_DELAY, self._dial))

    def opened(self, connection: SilentConnection) -> None:
        self.open.add(connection)
        if self._server is not None:
            self.seen_pending.append(len(self._server.pending_channels))

    def lost(self, connection: SilentConnection) -> None:
        self.open.discard(connection)
        if self._server is not None:
            self.seen_pending.append(len(self._server.pending_channels))
        self._renew()

    def stop(self) -> None:
        self.running = False
        for call in self._renewals:
            if call.active():
                call.cancel()
        for connection in list(self.open):
            connection.transport.abortConnection()


async def trusted_in_time(honest: PeerNetwork, port: int) -> tuple[PeerChannel, float]:
    """
    Connect C{honest} to the server; return its trusted channel and how long it took.

    @raise defer.TimeoutError: if it is not trusted within HONEST_DEADLINE.
    """
    started = reactor.seconds()

    async def attempt() -> PeerChannel:
        channel = await honest.connect(GenericPeer("127.0.0.1", port))
        return await channel.when_trusted()

    trusted = Deferred.fromCoroutine(attempt()).addTimeout(HONEST_DEADLINE, reactor)
    channel = await trusted
    return channel, reactor.seconds() - started


class _Handle:
    """A transport whose handle is C{handle}."""

    def __init__(self, handle: object) -> None:
        self._handle = handle

    def getHandle(self) -> object:
        return self._handle


@pytest_twisted.ensureDeferred
async def test_kernel_rtt_of_a_loopback_connection() -> None:
    """The kernel's RTT of a real TCP connection is read, and is a loopback's (under 1 s)."""
    server = PeerNetwork(reactor)
    client = PeerNetwork(BoundReactor("127.3.0.1"))
    await server.listen("tcp:0:interface=127.0.0.1")
    try:
        channel = await client.connect(GenericPeer("127.0.0.1", server.listening_port))
        await channel.when_trusted()
        await eventually(lambda: len(server.trusted_peer_channels) == 1, timeout=5)
        for side in (channel, server.trusted_peer_channels[0]):
            rtt = kernel_rtt(side.transport)
            assert rtt is not None and 0 < rtt < 1.0, rtt
        left, right = socket.socketpair()
        try:
            assert kernel_rtt(_Handle(left)) is None  # a Unix socket has no TCP_INFO
        finally:
            left.close()
            right.close()
    finally:
        await client.close()
        await server.close()


@pytest_twisted.ensureDeferred
async def test_chatty_trusted_attackers_do_not_lock_out_an_honest_node() -> None:
    """
    12 trusted attackers from 4 addresses in two /16s fill max_inbound (12) and chat; each
    one evicted comes back at once.  An honest node from another /16 is trusted within 5 s,
    evicting an attacker; the attacker that comes back evicts another attacker, never the
    honest node; the inbound table never holds more than 12.
    """
    limits = NetworkLimits(max_inbound=12, protect_lowest_rtt=2, protect_recently_useful=2,
                           protect_longest_trusted=4)
    server = PeerNetwork(reactor, limits=limits)
    await server.listen("tcp:0:interface=127.0.0.1")
    port = server.listening_port
    sizes: list[int] = []
    evicted: list[PeerChannel] = []
    server.peer_added.add(lambda channel: sizes.append(len(server.active_peer_channels)))
    server.peer_removed.add(
        lambda channel: evicted.append(channel) if channel.close_reason == EVICTED else None)
    sources = ["127.1.0.1", "127.1.0.2", "127.2.0.1", "127.2.0.2"]
    attackers = [ChattyAttacker(sources[n % 4], port) for n in range(12)]
    honest = PeerNetwork(BoundReactor("127.9.0.1"))
    try:
        for attacker in attackers:
            attacker.start()
        await eventually(lambda: len(server.trusted_peer_channels) == 12, timeout=5)
        assert server.counters["evicted"] == 0

        channel, took = await trusted_in_time(honest, port)
        assert took < HONEST_DEADLINE
        assert server.counters["evicted"] >= 1
        # The attacker evicted for the honest node comes back and evicts another attacker.
        await eventually(lambda: server.counters["evicted"] >= 2
                         and len(server.trusted_peer_channels) == 12, timeout=5)
        assert not channel.is_closed and channel.is_trusted
        hosts = {c.peer.address for c in server.trusted_peer_channels}
        assert "127.9.0.1" in hosts
        assert evicted and all(network_group(c.peer.address) in ("127.1.0.0/16", "127.2.0.0/16")
                               for c in evicted)
        assert max(sizes) <= 12
        assert all(kernel_rtt(c.transport) is not None for c in server.trusted_peer_channels)
    finally:
        for attacker in attackers:
            attacker.running = False
        for attacker in attackers:
            await attacker.stop()
        await honest.close()
        await server.close()


@pytest_twisted.ensureDeferred
async def test_silent_renewed_connections_do_not_lock_out_an_honest_node() -> None:
    """
    8 silent connections from 40 addresses (10 /16s) fill max_pending (8) and are renewed as
    they time out (handshake deadline 1 s).  After a full round of renewals, an honest node
    from another /16 is trusted within 5 s, in the place of the oldest pending connection;
    the pending table never holds more than 8.
    """
    server = PeerNetwork(reactor, limits=NetworkLimits(max_pending=8),
                         channel_limits=ChannelLimits(handshake_timeout=1.0))
    await server.listen("tcp:0:interface=127.0.0.1")
    port = server.listening_port
    sources = [f"127.{20 + n % 10}.{n // 10}.1" for n in range(40)]
    assert len({network_group(s) for s in sources}) == 10
    pool = SilentPool(port, sources, size=8)
    pool.watch(server)
    honest = PeerNetwork(BoundReactor("127.99.0.1"))
    try:
        pool.start()
        await eventually(lambda: len(server.pending_channels) == 8, timeout=5)
        # A full round: every first connection timed out and was renewed; the table is full.
        await eventually(lambda: pool.attempts >= 16 and len(server.pending_channels) == 8,
                         timeout=5)
        assert server.counters["pending_evicted"] == 0

        channel, took = await trusted_in_time(honest, port)
        assert took < HONEST_DEADLINE
        assert server.counters["pending_evicted"] >= 1
        [inbound] = server.trusted_peer_channels
        assert inbound.peer.address == "127.99.0.1"
        # The attack goes on (another full round of renewals); the honest node stays.
        attempts = pool.attempts
        await eventually(lambda: pool.attempts >= attempts + 8, timeout=5)
        assert not channel.is_closed and channel.is_trusted
        assert len(server.pending_channels) <= 8 and max(pool.seen_pending) <= 8
    finally:
        pool.stop()
        await honest.close()
        await server.close()
