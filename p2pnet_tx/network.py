# -*- test-case-name: tests.test_network -*-
"""
L{PeerNetwork}: a node's peers and channels, and L{PeerChannelFactory}, which builds a
L{PeerChannel} per connection.

A network is an instance, never global state: several live in one process.  It owns the known
peers, the active and trusted channels, the inbound queue, the handler registry and the events,
and it makes the decisions a channel leaves to its owner: who is a duplicate, who is blocked,
whom to dial from a shared peer list.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict
from collections.abc import Iterable
from itertools import islice
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    serverFromString,
)
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pnet_tx._observer import Observers, OneShotObserver
from p2pnet_tx.channel import ChannelLimits, ChannelOwner, PeerChannel, TrustProtocol
from p2pnet_tx.errors import (
    ChannelClosed,
    DuplicatePeer,
    NetworkClosed,
    PeerBlocked,
    PeerRefused,
    SelfConnection,
    TooManyPeers,
)
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.inbound import InboundConnectingPeersQueue
from p2pnet_tx.interfaces import IPeer, IPeerChannelOwner
from p2pnet_tx.packets import CollectionSharePacket, IdentifierPacket, Packet, PacketType
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import (
    BlockList,
    IncomingPeerPlacement,
    IncomingPeerTrustPolicy,
    normalize_ip,
)
from p2pnet_tx.trust import identifier_for_public_key, key_trust, ping_trust
from p2pnet_tx.wire import get_codec

MAX_RATE_TRACKED_HOSTS = 10_000
"""Addresses whose connection rate is tracked; past it the least recently seen is forgotten."""

DEFAULT_BACKLOG = 1024
"""The listen backlog used unless the endpoint string gives one."""

IDENTITY_MESSAGE = "connect"
"""The C{message} of the Identity packet a channel opens with."""


@attrs.frozen
class NetworkLimits:
    """
    The limits of a network; see RELIABILITY.md for where each default comes from.

    :ivar max_inbound: inbound channels at once.
    :ivar max_outbound: outbound channels at once.
    :ivar max_pending: inbound channels still in their handshake (not yet trusted).
    :ivar max_per_ip: inbound channels from one IP address (not 1: NAT and shared hosts).
    :ivar connect_timeout: seconds to wait for a TCP connection.
    :ivar max_peer_list: peers in one shared list; more is misbehaviour.
    :ivar max_known_peers: peers remembered; past it the oldest is forgotten.
    :ivar dial_rate: dials per second started from shared peer lists (a token bucket) ...
    :ivar dial_burst: ... of this size.
    :ivar discourage_seconds: how long a misbehaving IP is discouraged.
    :ivar gossip_rate: addresses a second taken from shared peer lists into the known peers
        (a token bucket) ...
    :ivar gossip_burst: ... of this size.
    :ivar accept_rate: inbound connections a second accepted from one address (a token
        bucket per address) ...
    :ivar accept_burst: ... of this size.
    """

    max_inbound: int = 48
    max_outbound: int = 16
    max_pending: int = 16
    max_per_ip: int = 8
    connect_timeout: float = 10.0
    max_peer_list: int = 1000
    max_known_peers: int = 10_000
    dial_rate: float = 0.2
    dial_burst: int = 16
    discourage_seconds: float = 24 * 3600.0
    gossip_rate: float = 0.1
    gossip_burst: int = 1000
    accept_rate: float = 0.2
    accept_burst: int = 16


class TokenBucket:
    """A token bucket on a clock: C{rate} tokens a second, at most C{burst} saved up."""

    def __init__(self, clock: IReactorTime, rate: float, burst: int) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = clock.seconds()

    def take(self) -> bool:
        """Spend a token if there is one; return whether there was."""
        now = self._clock.seconds()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class PeerChannelFactory(ServerFactory):
    """
    Builds a L{PeerChannel} per inbound connection, or refuses it (C{None}) before a byte is
    read: blocked IPs, too many connections from one IP, too many inbound or pending channels.
    """

    log = Logger()
    noisy = False

    def __init__(self, network: PeerNetwork) -> None:
        self.network = network

    def buildProtocol(self, addr: IAddress) -> PeerChannel | None:
        network = self.network
        host = getattr(addr, "host", "")
        refusal = network.inbound_refusal(host)
        if refusal is not None:
            network.counters["refused_connections"] += 1
            self.log.info("refused connection from {host}: {why}", host=host, why=refusal)
            return None
        channel = network.make_channel(outbound=False)
        channel.factory = self
        return channel


class _OutboundFactory(ClientFactory):
    """Builds the one channel of an outbound connection to C{peer}."""

    noisy = False

    def __init__(self, network: PeerNetwork, peer: IPeer) -> None:
        self.network = network
        self.peer = peer

    def buildProtocol(self, addr: IAddress) -> PeerChannel:
        channel = self.network.make_channel(outbound=True, peer=self.peer)
        channel.factory = self
        return channel


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@implementer(IPeerChannelOwner)
class PeerNetwork(ChannelOwner):
    """
    A node's view of the network: its identity, its peers and channels, and its policies.

    :param reactor: provides TCP, time and name resolution; every timer runs on it.
    :param identifier: this node's identifier; by default derived from C{private_key}.
    :param private_key: this node's Ed25519 key; a fresh one by default.
    :param policy: the trust policy.
    :param wire: C{"p2pnet"} (default) or C{"dotnet"}.  In C{dotnet} mode channels exchange no
        Identity packets (.NET peers send none) and a peer is known by address and port.
    :param trust_protocol: C{"key"} (default), C{"ping"}, C{"none"} (peers stay untrusted
        unless the application trusts them) or a trust protocol callable.
    :param limits: the network's limits; C{channel_limits}, each channel's.

    :ivar known_peers: peers heard of (connected or named in peer lists), by address and port.
    :ivar active_peer_channels: channels whose peer is identified, in order of arrival.
    :ivar inbound: the queue of new inbound peers (see C{incoming_peer_placement}).
    :ivar handlers: the packet handler registry every channel of this network uses.
    :ivar incoming_peer_connection_attempt: observers C{(peer, channel)} of new inbound peers.
    :ivar peer_added: observers C{(channel)} of channels whose peer was accepted.
    :ivar peer_removed: observers C{(channel)} of accepted channels that closed.
    :ivar peer_trusted: observers C{(channel)} of channels whose peer became trusted.
    :ivar peer_blocked: observers C{(ip, identifier)} of L{block} calls.
    :ivar counters: totals of the channels' counters, and the network's own.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        *,
        identifier: str | None = None,
        private_key: Ed25519PrivateKey | None = None,
        policy: IncomingPeerTrustPolicy | None = None,
        wire: str = "p2pnet",
        trust_protocol: TrustProtocol | str = "key",
        limits: NetworkLimits | None = None,
        channel_limits: ChannelLimits | None = None,
    ) -> None:
        self.reactor = reactor
        self.private_key = Ed25519PrivateKey.generate() if private_key is None else private_key
        self.identifier = identifier or identifier_for_public_key(self.private_key)
        GenericPeer("127.0.0.1", 1, self.identifier)  # validates the identifier
        self.policy = IncomingPeerTrustPolicy() if policy is None else policy
        self.wire = get_codec(wire).name
        self.limits = NetworkLimits() if limits is None else limits
        self.channel_limits = ChannelLimits() if channel_limits is None else channel_limits
        self.trust_protocol = self._resolve_trust_protocol(trust_protocol)
        self.handlers = PacketHandleProtocol(defaults={
            PacketType.IDENTITY: self.add_peer,
            PacketType.PEER_GROUP: self.process_peer_list,
            PacketType.DATA_TRANSMIT: self.data_received,
        })
        self.inbound = InboundConnectingPeersQueue()
        self.known_peers: OrderedDict[tuple[str, int], GenericPeer] = OrderedDict()
        self.active_peer_channels: list[PeerChannel] = []
        self.counters: Counter[str] = Counter()
        self.incoming_peer_connection_attempt = Observers("incoming peer connection attempt")
        self.peer_added = Observers("peer added")
        self.peer_removed = Observers("peer removed")
        self.peer_trusted = Observers("peer trusted")
        self.peer_blocked = Observers("peer blocked")
        self.factory = PeerChannelFactory(self)
        self.discouraged_ips = BlockList(
            clock=reactor, default_duration=self.limits.discourage_seconds, normalize=normalize_ip
        )
        self.listening_port: int = 0
        self._ports: list[IListeningPort] = []
        self._channels: set[PeerChannel] = set()
        self._outbound: set[PeerChannel] = set()
        self._arrivals: dict[PeerChannel, OneShotObserver[PeerChannel]] = {}
        self._refusals: dict[PeerChannel, PeerRefused] = {}
        self._dialing: dict[tuple[str, int], _Dial] = {}
        self._dials = TokenBucket(reactor, self.limits.dial_rate, self.limits.dial_burst)
        self._gossip = TokenBucket(reactor, self.limits.gossip_rate, self.limits.gossip_burst)
        self._closed = False
        # Kept up to date as channels come and go, so that deciding on a connection or an
        # identity costs the same with 10 peers or 10,000.
        self._inbound_hosts: dict[PeerChannel, str] = {}
        self._per_host: Counter[str] = Counter()
        self._handshaking: set[PeerChannel] = set()
        # Inbound peers that gave no listening port: known by their connection's port, which
        # is worth neither remembering nor sharing.
        self._not_listening: set[PeerChannel] = set()
        # Trusted channels whose peers may be shared, oldest first (a dict as an ordered set),
        # so that building a peer list never scans peers that cannot be in it.
        self._shareable: dict[PeerChannel, None] = {}
        self._accepts: OrderedDict[str, TokenBucket] = OrderedDict()
        self._by_identifier: dict[str, PeerChannel] = {}
        self._by_address: dict[tuple[str, int], PeerChannel] = {}

    def _resolve_trust_protocol(self, value: TrustProtocol | str) -> TrustProtocol | None:
        if self.policy.default_trust_protocol is not None:
            return self.policy.default_trust_protocol
        if callable(value):
            return value
        if value == "key":
            return key_trust(self.private_key)
        if value == "ping":
            return ping_trust
        if value == "none":
            return None
        raise ValueError(f"unknown trust protocol {value!r}; choose key, ping or none")

    def __repr__(self) -> str:
        return f"<PeerNetwork {self.identifier} {len(self.active_peer_channels)} peers>"

    # -- State ------------------------------------------------------------------------------------

    @property
    def trusted_peer_channels(self) -> list[PeerChannel]:
        """The active channels whose peer is trusted."""
        return [channel for channel in self.active_peer_channels if channel.is_trusted]

    @property
    def pending_channels(self) -> list[PeerChannel]:
        """Inbound channels still in their handshake: not yet identified, or not yet trusted."""
        return list(self._handshaking)

    def is_outbound(self, channel: PeerChannel) -> bool:
        """Whether this node opened C{channel}."""
        return channel in self._outbound

    def channel_for(self, peer: IPeer) -> PeerChannel | None:
        """Return the active channel to C{peer} (same identifier, or address and port)."""
        for channel in self.active_peer_channels:
            if _same_peer(channel.peer, peer):
                return channel
        return None

    def total_counters(self) -> Counter[str]:
        """The network's counters plus those of its live channels."""
        total = Counter(self.counters)
        for channel in self._channels:
            total.update(channel.counters)
        return total

    def local_identity(self) -> IdentifierPacket | None:
        """The Identity packet channels open with (none in C{dotnet} mode)."""
        if self.wire == "dotnet":
            return None
        return IdentifierPacket(
            IDENTITY_MESSAGE, self.listening_port, "", source_origin_identifier=self.identifier
        )

    def make_channel(self, outbound: bool, peer: IPeer | None = None) -> PeerChannel:
        """Build a channel owned by this network (the factories call this)."""
        identity = self.local_identity()
        channel = PeerChannel(
            self.wire,
            self.handlers,
            self.trust_protocol,
            clock=self.reactor,
            policy=self.policy,
            owner=self,
            limits=self.channel_limits,
            peer=peer,
            local_identity=identity,
            await_identity=identity is not None,
            local_identifier=self.identifier,
        )
        if outbound:
            self._outbound.add(channel)
        return channel

    def inbound_refusal(self, host: str) -> str | None:
        """Why an inbound connection from C{host} must be refused now, or None."""
        try:
            host = normalize_ip(host)
        except ValueError:
            pass
        if self._closed:
            return "network closed"
        if self.policy.is_blocked_ip(host):
            return "blocked"
        inbound = len(self._inbound_hosts)
        if inbound >= self.limits.max_inbound:
            return "too many inbound peers"
        if len(self._handshaking) >= self.limits.max_pending:
            return "too many pending handshakes"
        if self._per_host[host] >= self.limits.max_per_ip:
            return "too many connections from this address"
        if host in self.discouraged_ips and inbound >= self.limits.max_inbound // 2:
            return "discouraged"
        if not self._accept_bucket(host).take():
            return "connecting too often"
        return None

    def _accept_bucket(self, host: str) -> TokenBucket:
        bucket = self._accepts.pop(host, None)
        if bucket is None:
            bucket = TokenBucket(self.reactor, self.limits.accept_rate, self.limits.accept_burst)
        self._accepts[host] = bucket
        while len(self._accepts) > MAX_RATE_TRACKED_HOSTS:
            self._accepts.popitem(last=False)
        return bucket

    # -- Listening and connecting ---------------------------------------------------------------

    def listen(self, endpoint: str) -> Deferred[IListeningPort]:
        """
        Accept peers on a server endpoint string, e.g. C{"tcp:8051"}; a TCP endpoint gets a
        backlog of L{DEFAULT_BACKLOG} unless it names one.

        :return: a Deferred firing with the listening port; it fails with the endpoint's error.
        """
        if self._closed:
            return fail(NetworkClosed("the network is closed"))
        if endpoint.split(":", 1)[0] in ("tcp", "tcp6") and "backlog=" not in endpoint:
            endpoint += f":backlog={DEFAULT_BACKLOG}"
        try:
            server = serverFromString(self.reactor, endpoint)
        except (ValueError, KeyError, TypeError) as e:
            return fail(ValueError(f"bad endpoint {endpoint!r}: {e}"))
        return server.listen(self.factory).addCallback(self.port_opened)

    def port_opened(self, port: IListeningPort) -> IListeningPort:
        """Remember a port this network listens on; the first one is announced to peers."""
        self._ports.append(port)
        if not self.listening_port:
            self.listening_port = getattr(port.getHost(), "port", 0)
        self.log.info("{identifier} listening on {address}", identifier=self.identifier,
                      address=port.getHost())
        return port

    def connect(self, peer: IPeer, timeout: float | None = None) -> Deferred[PeerChannel]:
        """
        Connect to a peer, or return the channel already open to it.

        :param timeout: seconds for the TCP connection (default C{limits.connect_timeout}).
        :return: a Deferred firing with the channel once the peer has said who it is and been
            accepted (await C{channel.when_trusted()} for trust).  It fails with
            L{SelfConnection}, L{DuplicatePeer}, L{PeerBlocked}, L{TooManyPeers},
            L{NetworkClosed}, L{ChannelClosed} or the connection error.  Cancelling it drops the
            attempt.
        """
        if not IPeer.providedBy(peer):
            return fail(TypeError(f"connect() needs an IPeer, not {peer!r}"))
        if self._closed:
            return fail(NetworkClosed("the network is closed"))
        if self.policy.is_blocked_ip(peer.address) or self.policy.is_blocked_identifier(
            peer.identifier
        ):
            return fail(PeerBlocked(f"{peer} is blocked", peer))
        if self.is_self(peer):
            return fail(SelfConnection(f"{peer} is this node", peer))
        existing = self.channel_for(peer)
        if existing is not None:
            return succeed(existing)
        key = (peer.address, peer.port)
        dialing = self._dialing.get(key)
        if dialing is not None:
            return dialing.follow()
        if len(self._outbound) >= self.limits.max_outbound:
            return fail(TooManyPeers(f"{len(self._outbound)} outbound channels already", peer))
        endpoint_type = TCP6ClientEndpoint if ":" in peer.address else TCP4ClientEndpoint
        endpoint = endpoint_type(
            self.reactor, peer.address, peer.port,
            timeout=self.limits.connect_timeout if timeout is None else timeout,
        )
        attempt = endpoint.connect(_OutboundFactory(self, peer))
        connected: list[PeerChannel] = []

        def arrived(channel: PeerChannel) -> Deferred[PeerChannel]:
            connected.append(channel)
            return self._arrival(channel).when_fired()

        def cancel(result: Deferred[PeerChannel]) -> None:
            if connected:
                connected[0].abort("connection attempt cancelled")
            else:
                attempt.cancel()

        result: Deferred[PeerChannel] = Deferred(cancel)
        attempt.addCallback(arrived).chainDeferred(result)

        def done(outcome: object) -> object:
            self._dialing.pop(key, None)
            return outcome

        result.addBoth(done)
        dial = self._dialing[key] = _Dial(result)
        return dial.follow()

    def is_self(self, peer: IPeer) -> bool:
        """Whether C{peer} is this node (same identifier, or our own listening address)."""
        if peer.identifier is not None and peer.identifier == self.identifier:
            return True
        if not self.listening_port or peer.port != self.listening_port:
            return False
        for port in self._ports:
            host = getattr(port.getHost(), "host", None)
            if host == peer.address or (host in ("0.0.0.0", "::") and _is_local(peer.address)):
                return True
        return False

    # -- Managing peers ---------------------------------------------------------------------------

    def remove_peer(self, channel: PeerChannel) -> Deferred[str]:
        """
        Disconnect a peer and forget it.

        :return: a Deferred firing with the close reason once its connection is gone.
        """
        if channel.peer is not None:
            self.known_peers.pop((channel.peer.address, channel.peer.port), None)
        return channel.close("removed")

    def elevate_peer_permission(self, channel: PeerChannel) -> None:
        """Trust a peer without a handshake, as the reference's ElevatePeerPermission does."""
        channel.trust()

    def block(self, ip: str | None = None, identifier: str | None = None) -> list[PeerChannel]:
        """
        Block an IP address and/or an identifier, and drop the channels they match.

        :return: the channels dropped.
        :raises ValueError: for an invalid IP address, or when neither is given.
        """
        if ip is None and identifier is None:
            raise ValueError("block() needs an ip or an identifier")
        if ip is not None:
            self.policy.blocked_ips.add(ip)
        if identifier is not None:
            self.policy.blocked_identifiers.add(identifier)
        dropped = []
        for channel in list(self._channels):
            if (ip is not None and _host_of(channel) == normalize_ip(ip)) or (
                identifier is not None and getattr(channel.peer, "identifier", None) == identifier
            ):
                dropped.append(channel)
                channel.close("blocked")
        self.log.info("blocked {ip} {identifier}; dropped {count} channels", ip=ip,
                      identifier=identifier, count=len(dropped))
        self.peer_blocked.notify(ip, identifier)
        return dropped

    def broadcast(self, packet: Packet) -> int:
        """Send C{packet} to every trusted channel; return how many it was written to."""
        return sum(1 for channel in self.trusted_peer_channels if channel.send(packet))

    def remember(self, peer: GenericPeer) -> None:
        """Add C{peer} to the known peers, forgetting the oldest past the limit."""
        key = (peer.address, peer.port)
        self.known_peers.pop(key, None)
        self.known_peers[key] = peer
        while len(self.known_peers) > self.limits.max_known_peers:
            self.known_peers.popitem(last=False)

    def close(self) -> Deferred[None]:
        """
        Stop listening and close every channel.

        :return: a Deferred firing once every port is closed and every connection is gone.
        """
        self._closed = True
        waits: list[Deferred[Any]] = []
        ports, self._ports = self._ports, []
        for port in ports:
            waits.append(maybeDeferred(port.stopListening))
        for dialing in list(self._dialing.values()):
            dialing.attempt.cancel()
        for channel in list(self._channels):
            waits.append(channel.close("node shutting down"))
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    # -- IPeerChannelOwner ------------------------------------------------------------------------

    def channel_connected(self, channel: PeerChannel) -> None:
        """Track a new connection; in C{dotnet} mode its peer is accepted at once."""
        self._channels.add(channel)
        if channel not in self._outbound:
            host = self._inbound_hosts[channel] = _host_of(channel)
            self._per_host[host] += 1
            self._handshaking.add(channel)
            if self.wire == "dotnet":
                self._not_listening.add(channel)  # known only by its connection's port
        if self.wire == "dotnet" and channel.peer is not None:
            self._accept(channel, GenericPeer(channel.peer.address, channel.peer.port))

    def identity_received(self, channel: PeerChannel, packet: IdentifierPacket) -> bool:
        """Decide on a peer that said who it is: blocked, self, duplicate or welcome."""
        host = _host_of(channel)
        identifier = packet.source_origin_identifier or None
        try:
            port = packet.data or getattr(channel.transport.getPeer(), "port", 0)
            peer = GenericPeer(host, port, identifier)
            if not packet.data:
                self._not_listening.add(channel)
        except (ValueError, TypeError) as e:
            return self._refuse(channel, PeerRefused(f"bad identity: {e}"))
        if self.policy.is_blocked_identifier(identifier):
            return self._refuse(channel, PeerBlocked(f"{peer} is blocked", peer))
        if identifier == self.identifier:
            return self._refuse(channel, SelfConnection("connected to ourselves", peer))
        channel.peer = peer
        existing = self._find_duplicate(channel, peer)
        if existing is not None:
            if existing.is_trusted or not self._newcomer_wins(channel, existing):
                self._refusals[channel] = DuplicatePeer(f"{peer} is already connected", peer)
                self._arrival(channel).fire(existing)
                self.counters["duplicates_refused"] += 1
                self.log.info("refused duplicate {peer}", peer=peer)
                return False
            self.log.info("replacing duplicate channel to {peer}", peer=peer)
            self.active_peer_channels.remove(existing)
            self._unindex(existing)
            self._arrival(existing).fire(channel)
            existing.close("duplicate")
            self.peer_removed.notify(existing)
        self._accept(channel, peer)
        return True

    def add_peer(self, channel: PeerChannel, packet: IdentifierPacket) -> None:
        """A later Identity packet names a peer: remember it (never dial it from this alone)."""
        if packet.data and packet.ip and _is_ip(packet.ip):
            try:
                peer = GenericPeer(packet.ip, packet.data, packet.source_origin_identifier or None)
            except ValueError:
                return
            if (peer.address, peer.port) in self.known_peers or self._gossip.take():
                self.remember(peer)

    def process_peer_list(
        self,
        channel: PeerChannel | CollectionSharePacket | None,
        packet: CollectionSharePacket | None = None,
    ) -> None:
        """
        Remember the peers a shared list names and dial the unknown ones, within the dial rate
        and the outbound limit.  Called as C{process_peer_list(packet)} by applications and as
        C{process_peer_list(channel, packet)} by channels; from a channel, a list over
        C{limits.max_peer_list} entries is misbehaviour (the sender is dropped), otherwise
        only the first C{max_peer_list} entries are used.
        """
        if packet is None and isinstance(channel, CollectionSharePacket):
            channel, packet = None, channel
        if not isinstance(packet, CollectionSharePacket):
            raise TypeError(f"process_peer_list needs a CollectionSharePacket, not {packet!r}")
        if len(packet.peers) > self.limits.max_peer_list and isinstance(channel, PeerChannel):
            self.counters["oversized_peer_lists"] += 1
            error = PeerRefused(f"peer list of {len(packet.peers)} entries")
            self.peer_misbehaved(channel, error)
            channel.abort(str(error))
            return
        for peer in packet.peers[: self.limits.max_peer_list]:
            if self._refused_address(peer):
                continue
            key = (peer.address, peer.port)
            if key not in self.known_peers:
                # Peers can only name addresses so fast, or they would flush the peers we
                # know with their own (RELIABILITY.md row 21).
                if not self._gossip.take():
                    self.counters["gossip_dropped"] += 1
                    continue
            self.remember(peer)
            self._maybe_dial(peer)

    def dial_known_peers(self) -> int:
        """
        Dial the known peers that are not connected, within the dial rate and the outbound
        limit (a restarted node rejoins the peers it knew this way).

        :return: how many dials were started.
        """
        started = 0
        for peer in list(self.known_peers.values()):
            if not self._refused_address(peer) and self._maybe_dial(peer):
                started += 1
        return started

    def _refused_address(self, peer: IPeer) -> bool:
        return (
            self.is_self(peer)
            or self.policy.is_blocked_ip(peer.address)
            or self.policy.is_blocked_identifier(peer.identifier)
        )

    def _maybe_dial(self, peer: IPeer) -> bool:
        if self.channel_for(peer) is not None or (peer.address, peer.port) in self._dialing:
            return False
        if len(self._outbound) >= self.limits.max_outbound or not self._dials.take():
            self.counters["dials_deferred"] += 1
            return False
        self.connect(peer).addErrback(self._dial_failed, peer)
        return True

    def data_received(self, channel: PeerChannel, packet: Any) -> None:
        """The distribution hook: log it (the distribution module replaces this)."""
        self.log.debug("{size} bytes of data from {peer}", size=len(packet.payload),
                       peer=channel.peer)

    def channel_trusted(self, channel: PeerChannel) -> None:
        """Announce the trusted peer and share our peers with it."""
        self.counters["handshakes_ok"] += 1
        self._handshaking.discard(channel)
        self.log.info("peer {peer} trusted ({direction})", peer=channel.peer,
                      direction=self._direction(channel))
        peer = channel.peer
        if isinstance(peer, GenericPeer) and channel not in self._not_listening:
            self.remember(peer)  # an inbound peer's claimed listening port, now worth keeping
        self.peer_trusted.notify(channel)
        peers = list(islice(
            (c.peer for c in self._shareable if c.is_trusted and c is not channel),
            self.limits.max_peer_list,
        ))
        if isinstance(peer, GenericPeer) and channel not in self._not_listening:
            self._shareable[channel] = None
        if self.wire != "dotnet" or peers:
            channel.send(
                CollectionSharePacket(100, peers, source_origin_identifier=self.identifier)
            )

    def peer_misbehaved(self, channel: PeerChannel, error: object) -> None:
        """Discourage the offender's address."""
        host = _host_of(channel)
        self.counters["misbehaving_peers"] += 1
        if host:
            self.discouraged_ips.add(host)

    def channel_closed(self, channel: PeerChannel, reason: str) -> None:
        """Forget a closed channel and tell the observers."""
        self._channels.discard(channel)
        self._outbound.discard(channel)
        self._handshaking.discard(channel)
        self._not_listening.discard(channel)
        self._shareable.pop(channel, None)
        host = self._inbound_hosts.pop(channel, None)
        if host is not None:
            self._per_host[host] -= 1
            if not self._per_host[host]:
                del self._per_host[host]
        self._unindex(channel)
        self.counters.update(channel.counters)
        was_active = channel in self.active_peer_channels
        if was_active:
            self.active_peer_channels.remove(channel)
        arrival = self._arrivals.pop(channel, None)
        refusal = self._refusals.pop(channel, None)
        if arrival is not None:
            arrival.fire(Failure(refusal or ChannelClosed(reason)))
        if was_active:
            self.peer_removed.notify(channel)

    # -- Internals ------------------------------------------------------------------------------

    def _arrival(self, channel: PeerChannel) -> OneShotObserver[PeerChannel]:
        arrival = self._arrivals.get(channel)
        if arrival is None:
            arrival = self._arrivals[channel] = OneShotObserver()
        return arrival

    def _refuse(self, channel: PeerChannel, error: PeerRefused) -> bool:
        self._refusals[channel] = error
        self.counters["identities_refused"] += 1
        self.log.info("refused peer on {channel}: {why}", channel=channel, why=str(error))
        return False

    def _find_duplicate(self, channel: PeerChannel, peer: GenericPeer) -> PeerChannel | None:
        if peer.identifier is not None:
            other = self._by_identifier.get(peer.identifier)
            if other is not None and other is not channel:
                return other
        other = self._by_address.get((peer.address, peer.port))
        if other is not None and other is not channel:
            return other
        return None

    def _index(self, channel: PeerChannel) -> None:
        peer = channel.peer
        if peer.identifier is not None:
            self._by_identifier[peer.identifier] = channel
        self._by_address[(peer.address, peer.port)] = channel

    def _unindex(self, channel: PeerChannel) -> None:
        peer = channel.peer
        if peer is None:
            return
        if peer.identifier is not None and self._by_identifier.get(peer.identifier) is channel:
            del self._by_identifier[peer.identifier]
        if self._by_address.get((peer.address, peer.port)) is channel:
            del self._by_address[(peer.address, peer.port)]

    def _newcomer_wins(self, newcomer: PeerChannel, existing: PeerChannel) -> bool:
        # Two nodes that dial each other at once each see the other's connection as a
        # duplicate.  Both must keep the same one: the one opened by the smaller identifier.
        # (Only while the existing channel is untrusted: identifiers are claims, and a trusted
        # channel is never given up for an unproven newcomer.)
        if self.is_outbound(newcomer) == self.is_outbound(existing):
            return False
        peer_identifier = getattr(newcomer.peer, "identifier", None)
        if peer_identifier is None:
            return False
        we_opened_newcomer = self.is_outbound(newcomer)
        return we_opened_newcomer == (self.identifier < peer_identifier)

    def _accept(self, channel: PeerChannel, peer: GenericPeer) -> None:
        channel.peer = peer
        self.active_peer_channels.append(channel)
        self._index(channel)
        handshake_follows = self.trust_protocol is not None and self.policy.run_default_trust_protocol
        if not handshake_follows:
            self._handshaking.discard(channel)
        if self.is_outbound(channel):
            self.remember(peer)
        else:
            placement = self.policy.incoming_peer_placement
            if placement is not IncomingPeerPlacement.EVENT_BASED:
                self.inbound.put(peer)
            if placement is not IncomingPeerPlacement.QUEUE_BASED:
                self.incoming_peer_connection_attempt.notify(peer, channel)
        if not handshake_follows:
            # With a handshake to come, the "trusted" line says it all (one event less per
            # peer: a formatted log line costs as much as a tenth of a handshake).
            self.log.info("peer {peer} added ({direction})", peer=peer,
                          direction=self._direction(channel))
        self.peer_added.notify(channel)
        self._arrival(channel).fire(channel)

    def _direction(self, channel: PeerChannel) -> str:
        return "outbound" if self.is_outbound(channel) else "inbound"

    def _dial_failed(self, failure: Failure, peer: IPeer) -> None:
        self.counters["dials_failed"] += 1
        self.log.info("could not connect to {peer}: {why}", peer=peer,
                      why=failure.getErrorMessage())

    def disconnect_all(self, reason: str) -> Deferred[None]:
        """
        Cancel the pending dials and close every channel, leaving the network usable (unlike
        L{close}): a stopped service does this, and may start again.

        @param reason: the close reason every channel is given.
        @return: a Deferred firing with C{None} once every connection is gone.
        """
        for dialing in list(self._dialing.values()):
            dialing.attempt.cancel()
        waits = [channel.close(reason) for channel in list(self._channels)]

        def forgotten(_: object) -> Deferred[None] | None:
            # A channel fires its closed waiters just before it tells the network: wait one
            # turn for the network to forget the last one.
            if not self._channels:
                return None
            later: Deferred[None] = Deferred()
            self.reactor.callLater(0, later.callback, None)
            return later

        return DeferredList(waits, consumeErrors=True).addCallback(forgotten)

    def port_closed(self, port: IListeningPort) -> None:
        """
        Forget a port this network no longer listens on (the undo of L{port_opened}); the
        announced listening port moves to the next open port, or to 0.

        @param port: a port earlier given to L{port_opened}.
        """
        if port not in self._ports:
            return
        self._ports.remove(port)
        # A closed port may no longer know its address: only ask the open ones.
        self.listening_port = getattr(self._ports[0].getHost(), "port", 0) if self._ports else 0


@attrs.define
class _Dial:
    """
    A connection attempt that several connect() callers may be waiting on: each gets its own
    Deferred, and cancelling one withdraws only that caller; the attempt itself is cancelled
    with the last one.
    """

    attempt: Deferred[PeerChannel]
    waiting: list[Deferred[PeerChannel]] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.attempt.addBoth(self._fire)

    def follow(self) -> Deferred[PeerChannel]:
        """Return a new Deferred for the attempt's result."""

        def withdraw(waiter: Deferred[PeerChannel]) -> None:
            self.waiting.remove(waiter)
            if not self.waiting:
                self.attempt.cancel()

        waiter: Deferred[PeerChannel] = Deferred(withdraw)
        self.waiting.append(waiter)
        return waiter

    def _fire(self, result: PeerChannel | Failure) -> None:
        waiting, self.waiting = self.waiting, []
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


def _host_of(channel: PeerChannel) -> str:
    peer = channel.peer
    if peer is not None:
        return peer.address
    host = getattr(channel.transport.getPeer(), "host", "") if channel.transport else ""
    try:
        return normalize_ip(host)
    except ValueError:
        return host


def _same_peer(one: IPeer | None, other: IPeer | None) -> bool:
    if one is None or other is None:
        return False
    if one.identifier is not None and one.identifier == other.identifier:
        return True
    return (one.address, one.port) == (other.address, other.port)


def _is_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def peers_from_strings(values: Iterable[str]) -> list[GenericPeer]:
    """
    Parse C{HOST:PORT} (or C{[V6]:PORT}) strings into peers.

    :raises ValueError: with the offending value, for a bad one.
    """
    peers = []
    for value in values:
        host, sep, port = value.rpartition(":")
        if not sep:
            raise ValueError(f"{value!r} is not HOST:PORT")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            peers.append(GenericPeer(host, int(port)))
        except ValueError as e:
            raise ValueError(f"{value!r} is not HOST:PORT: {e}") from None
    return peers
