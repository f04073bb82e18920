# -*- test-case-name: tests.test_discovery_service -*-
"""
L{LanDiscoveryService}: LAN discovery as a part of a node (C{twistd p2pnet --discovery lan}).

A C{p2pnet} node listens on UDP port L{DEFAULT_PORT} (8004), joined to the multicast group
L{DEFAULT_GROUP} (239.255.80.80, administratively scoped: RFC 2365 keeps it inside an
organisation, and the TTL of 1 inside the LAN), and sends its signed announcement
(L{p2pnet_tx.discovery.announcement}) to 255.255.255.255:8004 and to the group.

A C{dotnet} node speaks the reference's discovery: it listens on UDP 8001, 8002, 8003 and on
3000 joined to 224.0.0.1, and sends the .NET datagram (L{p2pnet_tx.discovery.dotnet_datagram})
to 255.255.255.255:8001 and to 224.0.0.1:3000.

Every port is opened with C{SO_REUSEADDR} and C{SO_REUSEPORT} (Twisted's C{listenMultiple}),
so several nodes on one host all listen: each gets its own copy of every broadcast and
multicast datagram.  What is received is judged by L{DiscoveryProtocol
<p2pnet_tx.discovery.protocol.DiscoveryProtocol>} and the peers found are dialled by
L{DiscoveryDialer <p2pnet_tx.discovery.dials.DiscoveryDialer>}; L{LanDiscoveryService.status}
is what C{/api/status} shows under C{"discovery"}.
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx.discovery.announcement import (
    DEFAULT_MAX_AGE,
    AnnouncementReader,
    encode_announcement,
)
from p2pnet_tx.discovery.dials import DEFAULT_MAX_PENDING_DIALS, DiscoveryDialer
from p2pnet_tx.discovery.dotnet_datagram import (
    DotNetDatagramReader,
    encode_dotnet_datagram,
)
from p2pnet_tx.discovery.protocol import (
    DEFAULT_MAX_DATAGRAM,
    DiscoveryProtocol,
    LogBudget,
    SourceRateLimit,
)
from p2pnet_tx.discovery.sender import DEFAULT_INTERVAL, Announcer, outgoing_address
from p2pnet_tx.identity import public_key_bytes
from p2pnet_tx.interfaces import IPeer

if TYPE_CHECKING:
    from p2pnet_tx.network import PeerNetwork

__all__ = [
    "BROADCAST",
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "DOTNET_GROUP",
    "DOTNET_MULTICAST_PORT",
    "DOTNET_PORTS",
    "LanDiscoveryConfig",
    "LanDiscoveryService",
]

BROADCAST = "255.255.255.255"
"""The limited broadcast address: never routed beyond the LAN."""

DEFAULT_PORT = 8004
"""The UDP port of p2pnet announcements."""

DEFAULT_GROUP = "239.255.80.80"
"""The multicast group of p2pnet announcements (IPv4 organisation-local scope)."""

DOTNET_PORTS = (8001, 8002, 8003)
"""The UDP ports .NET listens on (C{PeerNetwork.DesignatedPorts}); it sends to one of them."""

DOTNET_GROUP = "224.0.0.1"
"""The multicast group .NET's multicast channel is meant to send to (all hosts on the link)."""

DOTNET_MULTICAST_PORT = 3000
"""The port of .NET's multicast listener (C{MulticastChannel.MULTICAST_PORTS[0]})."""


@attrs.frozen
class LanDiscoveryConfig:
    """
    The settings of LAN discovery; the defaults are those C{twistd p2pnet} uses.

    @ivar port: the UDP port of p2pnet announcements (not used by a C{dotnet} node).
    @ivar group: the multicast group of p2pnet announcements.
    @ivar interval: seconds between announcements once started (the first come faster).
    @ivar max_pending_dials: how many dials to discovered peers may be under way at once.
    @ivar max_datagram: the largest datagram read, in bytes.
    @ivar source_rate: datagrams a second accepted from one source address...
    @ivar source_burst: ...and at once.
    @ivar max_age: how far an announcement's time may be from this node's clock, in seconds.
    @ivar address: the address to announce; by default the one the routing table gives for
        the broadcast address, found again each round.
    """

    port: int = attrs.field(default=DEFAULT_PORT)
    group: str = DEFAULT_GROUP
    interval: float = DEFAULT_INTERVAL
    max_pending_dials: int = DEFAULT_MAX_PENDING_DIALS
    max_datagram: int = DEFAULT_MAX_DATAGRAM
    source_rate: float = 1.0
    source_burst: int = 5
    max_age: float = DEFAULT_MAX_AGE
    address: str | None = None

    @port.validator
    def _check_port(self, attribute: attrs.Attribute, value: int) -> None:
        if not isinstance(value, int) or not 1 <= value <= 65535:
            raise ValueError(f"the discovery port must be 1-65535, not {value!r}")

    def __attrs_post_init__(self) -> None:
        if not _is_ipv4(self.group) or not ipaddress.IPv4Address(self.group).is_multicast:
            raise ValueError(f"the discovery group must be an IPv4 multicast address, not "
                             f"{self.group!r}")
        if self.address is not None and not _is_ipv4(self.address):
            raise ValueError(f"the announced address must be IPv4, not {self.address!r}")
        if not self.interval > 0:
            raise ValueError(f"the announce interval must be above 0 s, not {self.interval!r}")
        if self.max_pending_dials < 1 or self.max_datagram < 1 or self.source_burst < 1:
            raise ValueError("max_pending_dials, max_datagram and source_burst must be at "
                             "least 1")


def _is_ipv4(text: object) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


class LanDiscoveryService(Service):
    """
    Finds peers on the LAN and dials them; announces this node.

    @param network: the node's network: its wire decides the format (C{"dotnet"}: .NET's
        datagram; otherwise the signed announcement), its key signs, its C{connect} dials.
    @param reactor: listens (C{listenMulticast}) and keeps time; by default the network's.
    @param config: the settings.
    @param local_address: finds the address to announce (L{outgoing_address}); C{None} when
        there is no route.
    @param rng: the jitter's randomness.
    @param nonce: makes each announcement's 16-byte nonce.
    @ivar counters: what was sent, received, refused (C{rejected.<cause>}) and dialled.
    @ivar format: C{"p2pnet"} or C{"dotnet"}.
    @ivar ports: the listening UDP ports while running.
    """

    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        reactor: Any = None,
        config: LanDiscoveryConfig | None = None,
        local_address: Callable[[], str | None] = outgoing_address,
        rng: random.Random | None = None,
        nonce: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.network = network
        self.reactor = network.reactor if reactor is None else reactor
        self.config = LanDiscoveryConfig() if config is None else config
        self.format = "dotnet" if network.wire == "dotnet" else "p2pnet"
        self._local_address = local_address
        self._nonce = nonce
        self.counters: Counter[str] = Counter()
        self._limit = SourceRateLimit(
            self.reactor, self.config.source_rate, self.config.source_burst
        )
        self._log_budget = LogBudget(self.reactor)
        self.dialer = DiscoveryDialer(network, self.counters, self.config.max_pending_dials)
        self.announcer = Announcer(self.reactor, self._datagrams, self._write, self.counters,
                                   self.config.interval, rng)
        self._read: Callable[[bytes, str], IPeer]
        if self.format == "dotnet":
            self._read = DotNetDatagramReader(network.identifier).read
        else:
            reader = AnnouncementReader(self.reactor.seconds,
                                        public_key_bytes(network.private_key),
                                        self.config.max_age)
            self._read = lambda data, source: reader.read(data, source).peer()
        self.ports: list[IListeningPort] = []
        self._groups: list[str | None] = []
        self._no_address_logged = False

    # -- Where ------------------------------------------------------------------------------

    def listens_on(self) -> list[tuple[int, str | None]]:
        """The UDP ports listened on, each with the group it joins (or C{None})."""
        if self.format == "dotnet":
            return [(port, None) for port in DOTNET_PORTS] + [
                (DOTNET_MULTICAST_PORT, DOTNET_GROUP)
            ]
        return [(self.config.port, self.config.group)]

    def sends_to(self) -> list[tuple[str, int]]:
        """The destinations of each round of announcements."""
        if self.format == "dotnet":
            return [(BROADCAST, DOTNET_PORTS[0]), (DOTNET_GROUP, DOTNET_MULTICAST_PORT)]
        return [(BROADCAST, self.config.port), (self.config.group, self.config.port)]

    # -- Service ---------------------------------------------------------------------------

    def startService(self) -> None:
        """
        Listen on the discovery ports and start announcing.  A port that cannot be opened is
        logged as an error and left out; the node runs on without it.
        """
        super().startService()
        for number, group in self.listens_on():
            port = self._listen(number, group)
            if port is not None:
                self.ports.append(port)
                self._groups.append(group)
        if not self.ports:
            self.log.error("LAN discovery could not open any port: not announcing")
            return
        self.ports[0].setBroadcastAllowed(True)
        self.log.info(
            "LAN discovery ({wire} format) listening on UDP {ports}, announcing to {destinations} "
            "every {interval} s", wire=self.format,
            ports=", ".join(str(number) for number, _ in self.listens_on()),
            destinations=", ".join(f"{h}:{p}" for h, p in self.sends_to()),
            interval=self.config.interval)
        self.announcer.start()

    def _listen(self, number: int, group: str | None) -> IListeningPort | None:
        protocol = DiscoveryProtocol(self._read, self._found, self.counters, self._limit,
                                     self._log_budget, self.config.max_datagram)
        try:
            port = self.reactor.listenMulticast(
                number, protocol, maxPacketSize=self.config.max_datagram + 1,
                listenMultiple=True,
            )
        except CannotListenError as e:
            self.counters["listen_failed"] += 1
            self.log.error("LAN discovery cannot listen on UDP port {port}: {why}",
                           port=number, why=str(e.socketError))
            return None
        port.setTTL(1)
        if group is not None:
            port.joinGroup(group).addErrback(self._join_failed, group)
        return port

    def _join_failed(self, failure: Failure, group: str) -> None:
        self.counters["join_failed"] += 1
        self.log.warn("LAN discovery cannot join multicast group {group}: {why} (broadcast "
                      "still works)", group=group, why=failure.getErrorMessage())

    def stopService(self) -> Deferred[None]:
        """
        Stop announcing, cancel the dials under way and close the ports.

        @return: a Deferred firing once every port is closed.
        """
        super().stopService()
        self.announcer.stop()
        self.dialer.cancel_all()
        ports, self.ports, self._groups = self.ports, [], []
        closing = [maybeDeferred(port.stopListening) for port in ports]
        return DeferredList(closing, consumeErrors=True).addCallback(lambda _: None)

    # -- Sending and receiving ------------------------------------------------------------

    def _datagrams(self) -> list[tuple[bytes, tuple[str, int]]]:
        port = self.network.listening_port
        if not port:
            return []  # nothing to announce until the node accepts peers
        address = self.config.address or self._local_address()
        if address is None:
            self.counters["no_address"] += 1
            if not self._no_address_logged:
                self._no_address_logged = True
                self.log.warn("LAN discovery: no route to {broadcast}, so no address to "
                              "announce; not announcing until there is one", broadcast=BROADCAST)
            return []
        self._no_address_logged = False
        now = self.reactor.seconds()
        if self.format == "dotnet":
            data = encode_dotnet_datagram(self.network.identifier, address, port,
                                          datetime.fromtimestamp(now, UTC))
            return [(data, destination) for destination in self.sends_to()]
        key = self.network.private_key
        return [
            (encode_announcement(key, address, port, now, self._nonce(16)), destination)
            for destination in self.sends_to()
        ]

    def _write(self, data: bytes, destination: tuple[str, int]) -> None:
        self.ports[0].write(data, destination)

    def _found(self, peer: IPeer) -> None:
        self.dialer.offer(peer)

    # -- Visibility ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """
        What C{/api/status} shows under C{"discovery"}: where it listens and sends, and the
        counts of datagrams sent, received, accepted and rejected (by cause), and of dials.
        """
        counters = self.counters
        rejected = {key.partition(".")[2]: n for key, n in counters.items()
                    if key.startswith("rejected.")}
        skipped = {key.partition(".")[2]: n for key, n in counters.items()
                   if key.startswith("dials_skipped.")}
        return {
            "mode": "lan",
            "format": self.format,
            "running": bool(self.running),
            "listening": [
                {"port": port.getHost().port, "group": group}
                for port, group in zip(self.ports, self._groups)
            ],
            "sends_to": [f"{host}:{port}" for host, port in self.sends_to()],
            "interval": self.config.interval,
            "sent": counters["sent"],
            "send_failed": counters["send_failed"],
            "received": counters["received"],
            "accepted": counters["accepted"],
            "rejected": dict(sorted(rejected.items())),
            "dials_started": counters["dials_started"],
            "dials_connected": counters["dials_connected"],
            "dials_failed": counters["dials_failed"],
            "dials_skipped": dict(sorted(skipped.items())),
            "pending_dials": self.dialer.pending,
        }
