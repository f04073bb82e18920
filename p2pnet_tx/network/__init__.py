# -*- test-case-name: tests.test_network,tests.test_network_facade -*-
"""
L{PeerNetwork}: a node's peers and channels, as a thin facade over named parts.

A network is an instance, never global state: several live in one process.  Its parts, one
module each, are wired together by the facade as magic-wormhole's C{Boss} wires its machines:
each is built with the collaborators it needs and nothing else, and none reaches back through
the facade.

  - L{PeerTable<p2pnet_tx.network.table.PeerTable>}: channels, indexes, known peers.
  - L{Admission<p2pnet_tx.network.admission.Admission>}: inbound refusals, discouragement.
  - L{Membership<p2pnet_tx.network.membership.Membership>}: who joins the active peers.
  - L{Dialer<p2pnet_tx.network.dialer.Dialer>}: outbound dials, their budget, their retries.
  - L{Gossip<p2pnet_tx.network.gossip.Gossip>}: peer lists in and out.
  - L{LocalNode<p2pnet_tx.network.local.LocalNode>}: this node's identifier and ports.
  - L{ChannelMaker<p2pnet_tx.network.factory.ChannelMaker>} and the factories.

The facade holds the configuration and the events, routes what channels report (it is their
L{IPeerChannelOwner}) to the parts, and keeps the public API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from p2pnet_tx._observer import Observers
from p2pnet_tx.channel import ChannelLimits, ChannelOwner, PeerChannel, TrustProtocol
from p2pnet_tx.errors import NetworkClosed, SendBufferFull
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.identity import identifier_for_public_key
from p2pnet_tx.inbound import InboundConnectingPeersQueue
from p2pnet_tx.interfaces import IPeer, IPeerChannelOwner
from p2pnet_tx.network.admission import MAX_RATE_TRACKED_HOSTS, Admission, TokenBucket
from p2pnet_tx.network.dialer import Dialer
from p2pnet_tx.network.factory import (
    ChannelMaker,
    OutboundChannelFactory,
    PeerChannelFactory,
)
from p2pnet_tx.network.gossip import Gossip
from p2pnet_tx.network.limits import NetworkLimits
from p2pnet_tx.network.local import DEFAULT_BACKLOG, IDENTITY_MESSAGE, LocalNode
from p2pnet_tx.network.membership import Membership
from p2pnet_tx.network.security import (
    KeyBinding,
    check_names,
    resolve_transport,
    resolve_trust_protocol,
    security_warnings,
)
from p2pnet_tx.network.table import PeerTable, host_of
from p2pnet_tx.packets import (
    CollectionSharePacket,
    IdentifierPacket,
    Packet,
    PacketType,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.tls import NodeTLS
from p2pnet_tx.trust import ping_trust
from p2pnet_tx.wire_mode import WireMode, get_wire_mode

__all__ = [
    "DEFAULT_BACKLOG", "IDENTITY_MESSAGE", "MAX_RATE_TRACKED_HOSTS", "NetworkLimits",
    "OutboundChannelFactory", "PeerChannelFactory", "PeerNetwork", "TokenBucket",
    "peers_from_strings",
]

@implementer(IPeerChannelOwner)
class PeerNetwork(ChannelOwner):
    """
    A node's view of the network: its identity, its peers and channels, and its policies.

    @param reactor: provides TCP, time and name resolution; every timer runs on it.
    @param private_key: this node's Ed25519 key, its identity; a fresh one by default.  The
        node's identifier is derived from it (L{identifier_for_public_key
        <p2pnet_tx.identity.identifier_for_public_key>}).
    @param display_name: a name to show peers (at most 64 printable characters), sent in the
        Identity packet; never what a peer is trusted for.
    @param identifier: a chosen identifier instead of the derived one: only with transport
        C{"tcp"}, where nothing binds identifiers to keys.
    @param policy: the trust policy.
    @param wire: C{"p2pnet"} (default) or C{"dotnet"}, or a L{WireMode}.
    @param transport: C{"tls"} (the default for the p2pnet wire: TLS 1.3, mutual, each side
        proving its node key) or C{"tcp"} (plaintext: the default, and the only choice, for
        the dotnet wire).
    @param trust_protocol: C{"key"} (the default over TLS: the verdict on the key TLS
        proved), C{"ping"} (the default on the dotnet wire), C{"none"} (peers stay untrusted
        unless the application trusts them) or a trust protocol callable.  Over plaintext TCP
        with the p2pnet wire it must be chosen, and cannot be key trust.
    @param limits: the network's limits; C{channel_limits}, each channel's.
    @raise ValueError: for an unknown wire, transport or trust protocol; for TLS with the
        dotnet wire; for key trust over TCP; for C{identifier} over TLS; for a display name
        unfit to show.

    @ivar identifier: this node's identifier.
    @ivar display_name: this node's display name, or C{None}.
    @ivar transport: C{"tls"} or C{"tcp"}.
    @ivar tls: the node's L{NodeTLS<p2pnet_tx.tls.NodeTLS>} (certificate, contexts), or C{None}
        over TCP.
    @ivar wire: the wire mode's name; C{wire_mode}, the L{WireMode} itself.
    @ivar known_peers: peers heard of (connected or named in peer lists), by address and port,
        oldest first, at most C{limits.max_known_peers}.
    @ivar discouraged_ips: addresses that misbehaved, refused for a while when half full.
    @ivar inbound: the queue of new inbound peers (see C{incoming_peer_placement}).
    @ivar handlers: the packet handler registry every channel of this network uses.
    @ivar factory: the server factory to listen with (with any stream endpoint): over TLS it
        wraps C{channel_factory} in TLS.
    @ivar channel_factory: the factory of inbound channels, without TLS.
    @ivar incoming_peer_connection_attempt: observers C{(peer, channel)} of new inbound peers.
    @ivar peer_added: observers C{(channel)} of channels whose peer was accepted.
    @ivar peer_removed: observers C{(channel)} of accepted channels that closed.
    @ivar peer_trusted: observers C{(channel)} of channels whose peer became trusted.
    @ivar peer_blocked: observers C{(ip, identifier)} of L{block} calls.
    @ivar counters: totals of the closed channels' counters, and the network's own.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        *,
        private_key: Ed25519PrivateKey | None = None,
        display_name: str | None = None,
        identifier: str | None = None,
        policy: IncomingPeerTrustPolicy | None = None,
        wire: str | WireMode = "p2pnet",
        transport: str | None = None,
        trust_protocol: TrustProtocol | str | None = None,
        limits: NetworkLimits | None = None,
        channel_limits: ChannelLimits | None = None,
    ) -> None:
        self.reactor = reactor
        self.wire_mode = get_wire_mode(wire)
        self.wire = self.wire_mode.name
        self.transport = resolve_transport(transport, self.wire_mode)
        check_names(identifier, display_name, self.transport)
        self.display_name = display_name
        self.private_key = Ed25519PrivateKey.generate() if private_key is None else private_key
        self.identifier = identifier or identifier_for_public_key(self.private_key)
        GenericPeer("127.0.0.1", 1, self.identifier)  # validates the identifier
        self.policy = IncomingPeerTrustPolicy() if policy is None else policy
        self.limits = NetworkLimits() if limits is None else limits
        self.channel_limits = (
            self.wire_mode.channel_limits if channel_limits is None else channel_limits
        )
        self.trust_protocol = resolve_trust_protocol(
            trust_protocol, self.policy, self.transport, self.wire_mode
        )
        self.tls = NodeTLS(self.private_key, reactor) if self.transport == "tls" else None
        self.handlers = PacketHandleProtocol(defaults={
            PacketType.IDENTITY: self.add_peer,
            PacketType.PEER_GROUP: self.process_peer_list,
            PacketType.DATA_TRANSMIT: self.data_received,
        })
        self.inbound = InboundConnectingPeersQueue()
        self.counters: Counter[str] = Counter()
        self.incoming_peer_connection_attempt = Observers("incoming peer connection attempt")
        self.peer_added = Observers("peer added")
        self.peer_removed = Observers("peer removed")
        self.peer_trusted = Observers("peer trusted")
        self.peer_blocked = Observers("peer blocked")
        self._closed = False
        self._build_parts()
        for warning in security_warnings(self.wire_mode, self.transport, self.trust_protocol,
                                         self.policy):
            self.log.warn("insecure node {identifier}: {warning}", identifier=self.identifier,
                          warning=warning)

    def _build_parts(self) -> None:
        # Each part gets what it needs, by name; the facade itself only as channel owner.
        self._table = PeerTable(self.limits.max_known_peers)
        self._local = LocalNode(self.reactor, self.identifier, self.wire_mode, self.display_name)
        self._admission = Admission(self.reactor, self.policy, self.limits, self._table,
                                    self.counters)
        self._channels = ChannelMaker(
            clock=self.reactor, wire_mode=self.wire_mode, handlers=self.handlers,
            trust_protocol=self.trust_protocol, policy=self.policy, limits=self.channel_limits,
            owner=self, local=self._local, table=self._table,
        )
        self._membership = Membership(
            table=self._table, policy=self.policy, identifier=self.identifier,
            wire_mode=self.wire_mode, trust_protocol=self.trust_protocol, inbound=self.inbound,
            counters=self.counters, incoming_peer_connection_attempt=(
                self.incoming_peer_connection_attempt), peer_added=self.peer_added,
            peer_removed=self.peer_removed,
            binding=KeyBinding(self.counters) if self.tls is not None else None,
            drop=self._drop_misbehaving,
        )
        self._dialer = Dialer(
            self.reactor, limits=self.limits, policy=self.policy, local=self._local,
            table=self._table, membership=self._membership, channels=self._channels,
            counters=self.counters,
            wrap_endpoint=self.tls.client_endpoint if self.tls is not None else None,
        )
        self._gossip = Gossip(
            self.reactor, limits=self.limits, table=self._table, dialer=self._dialer,
            admission=self._admission, counters=self.counters, identifier=self.identifier,
            wire_mode=self.wire_mode,
        )
        self.channel_factory = PeerChannelFactory(self._admission, self._channels, self.counters)
        self.factory: Factory = (
            self.tls.server_factory(self.channel_factory) if self.tls is not None
            else self.channel_factory
        )
        self.known_peers = self._table.known_peers
        self.discouraged_ips = self._admission.discouraged_ips

    def __repr__(self) -> str:
        return f"<PeerNetwork {self.identifier} {len(self._table.active)} peers>"

    # -- State (each a view of a part) ---------------------------------------------------------

    @property
    def active_peer_channels(self) -> list[PeerChannel]:
        """A snapshot of the channels whose peer is accepted, in order of arrival."""
        return self._table.active

    @property
    def trusted_peer_channels(self) -> list[PeerChannel]:
        """The active channels whose peer is trusted."""
        return self._table.trusted()

    @property
    def pending_channels(self) -> list[PeerChannel]:
        """Inbound channels still in their handshake: not yet identified, or not yet trusted."""
        return self._table.pending

    @property
    def listening_port(self) -> int:
        """The port announced to peers: the first open one, or 0."""
        return self._local.listening_port

    def is_outbound(self, channel: PeerChannel) -> bool:
        """Whether this node opened C{channel}."""
        return self._table.is_outbound(channel)

    def channel_for(self, peer: IPeer) -> PeerChannel | None:
        """The active channel to C{peer} (same identifier, or address and port), in O(1)."""
        return self._table.channel_for(peer)

    def is_self(self, peer: IPeer) -> bool:
        """Whether C{peer} is this node (same identifier, or our own listening address)."""
        return self._local.is_self(peer)

    def total_counters(self) -> Counter[str]:
        """The network's counters plus those of its live channels."""
        total = Counter(self.counters)
        for channel in self._table.connections():
            total.update(channel.counters)
        return total

    def local_identity(self) -> IdentifierPacket | None:
        """The Identity packet channels open with (none in a mode that exchanges none)."""
        return self._local.identity()

    def make_channel(self, outbound: bool, peer: IPeer | None = None) -> PeerChannel:
        """Build a channel owned by this network (the factories do)."""
        return self._channels.make(outbound, peer)

    def inbound_refusal(self, host: str) -> str | None:
        """
        Why an inbound connection from C{host} must be refused now, or C{None}; when the node
        is full, a C{None} means a peer was evicted to make room (see L{Admission.refusal
        <p2pnet_tx.network.admission.Admission.refusal>}).
        """
        return self._admission.refusal(host)

    # -- Listening and connecting --------------------------------------------------------------

    def listen(self, endpoint: str) -> Deferred[IListeningPort]:
        """
        Accept peers on a server endpoint string, e.g. C{"tcp:8051"} (see L{LocalNode.listen
        <p2pnet_tx.network.local.LocalNode.listen>}).

        @return: a Deferred firing with the listening port; it fails with L{NetworkClosed}, a
            L{ValueError} for a bad endpoint string, or the endpoint's error.
        """
        if self._closed:
            return fail(NetworkClosed("the network is closed"))
        return self._local.listen(endpoint, self.factory).addCallback(self._port_opened, True)

    def port_opened(self, port: IListeningPort) -> IListeningPort:
        """
        Remember a port opened elsewhere with L{factory}; the first port is announced to
        peers.  Whoever opened it stops it, and reports that with L{port_closed}.
        """
        return self._port_opened(port, False)

    def _port_opened(self, port: IListeningPort, own: bool) -> IListeningPort:
        self._local.port_opened(port, own)
        self.log.info("{identifier} listening on {address}", identifier=self.identifier,
                      address=port.getHost())
        return port

    def port_closed(self, port: IListeningPort) -> None:
        """Forget a port given to L{port_opened}; the next one left (or 0) is announced."""
        where = self._local.port_closed(port)
        if where is not None:
            self.log.info("{identifier} no longer listening on {host}:{port}",
                          identifier=self.identifier, host=where[0], port=where[1])

    def connect(self, peer: IPeer, timeout: float | None = None) -> Deferred[PeerChannel]:
        """See L{Dialer.connect<p2pnet_tx.network.dialer.Dialer.connect>}."""
        return self._dialer.connect(peer, timeout)

    def dial_known_peers(self) -> int:
        """Dial the known peers not connected, as peer lists are; return how many dials started."""
        return self._dialer.dial_all(self._table.known_peers.values())

    # -- Managing peers ------------------------------------------------------------------------

    def remember(self, peer: GenericPeer) -> None:
        """Add C{peer} to the known peers, forgetting the oldest past the limit."""
        self._table.remember(peer)

    def remove_peer(self, channel: PeerChannel) -> Deferred[str]:
        """Disconnect a peer and forget it; the Deferred fires with the close reason."""
        if channel.peer is not None:
            self._table.forget(channel.peer)
        return channel.close("removed")

    def elevate_peer_permission(self, channel: PeerChannel) -> None:
        """Trust a peer without a handshake, as the reference's ElevatePeerPermission does."""
        channel.trust()

    def block(self, ip: str | None = None, identifier: str | None = None) -> list[PeerChannel]:
        """
        Block an IP address and/or an identifier, and drop the channels they match.

        @return: the channels dropped.
        @raise ValueError: for an invalid IP address, or when neither is given.
        """
        dropped = self._admission.block(ip, identifier)
        self.peer_blocked.notify(ip, identifier)
        return dropped

    def broadcast(self, packet: Packet) -> int:
        """
        Send C{packet} to every trusted channel; one over its send cap is skipped and counted
        in C{counters["broadcast_skipped"]}.

        @return: how many channels took the packet.
        """
        sent = skipped = 0
        for channel in self._table.trusted():
            try:
                sent += channel.send(packet) is not False
            except SendBufferFull:
                skipped += 1
        if skipped:
            self.counters["broadcast_skipped"] += skipped
            self.log.debug("broadcast of {kind} skipped {count} channels over their send cap",
                           kind=packet.kind.value, count=skipped)
        return sent

    def disconnect_all(self, reason: str = "node stopping") -> Deferred[None]:
        """
        Cancel pending and put-off dials and close every channel; the network stays usable.

        @return: a Deferred firing once every connection is gone.
        """
        self._dialer.cancel_all()
        closing = [channel.close(reason) for channel in self._table.connections()]
        return DeferredList(closing, consumeErrors=True).addCallback(lambda _: None)

    def close(self) -> Deferred[None]:
        """
        Stop the ports this network opened with L{listen} (and forget those it was told of),
        then L{disconnect_all}, for good: later L{listen} and L{connect} calls fail with
        L{NetworkClosed}.

        @return: a Deferred firing once every port is closed and every connection is gone.
        """
        self._closed = True
        self._admission.close()
        self._dialer.close()
        waits = [maybeDeferred(port.stopListening) for port in self._local.forget_ports()]
        waits.append(self.disconnect_all("node shutting down"))
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    # -- What the handler registry hands the network -------------------------------------------

    def add_peer(self, channel: PeerChannel, packet: IdentifierPacket) -> None:
        """A later Identity packet names a peer: remember it (never dial it from this alone)."""
        self._gossip.identity_named(channel, packet)

    def process_peer_list(
        self,
        channel: PeerChannel | CollectionSharePacket | None,
        packet: CollectionSharePacket | None = None,
    ) -> None:
        """
        Remember the peers a list names and dial the unknown ones: C{process_peer_list(packet)}
        from applications, C{(channel, packet)} from channels (see L{Gossip.peer_list_received
        <p2pnet_tx.network.gossip.Gossip.peer_list_received>}).
        """
        self._gossip.peer_list_received(channel, packet)

    def data_received(self, channel: PeerChannel, packet: Any) -> None:
        """The distribution hook: log it (the distribution part will replace this)."""
        channel.log_peer(self.log, LogLevel.debug, "{size} bytes of data from {peer}",
                         size=len(packet.payload), peer=channel.peer)

    # -- IPeerChannelOwner: routed to the parts ------------------------------------------------

    def channel_connected(self, channel: PeerChannel) -> None:
        """Track a new connection; a mode without Identity accepts its peer at once."""
        self._membership.connected(channel)

    def channel_secured(self, channel: PeerChannel) -> None:
        """A channel's TLS handshake is over: hold its peer to the key it proved."""
        self._membership.secured(channel)

    def identity_received(self, channel: PeerChannel, packet: IdentifierPacket) -> bool:
        """Decide on a peer that said who it is: unbound, blocked, self, duplicate or welcome."""
        return self._membership.identity_received(channel, packet)

    def channel_trusted(self, channel: PeerChannel) -> None:
        """Announce the trusted peer and send it our peers (built before it joins them)."""
        if not self._table.is_connected(channel):
            return  # closed before its trust was reported: nothing to announce or keep
        peers = self._gossip.peer_list_for(channel)
        self._membership.trusted(channel)
        self._gossip.trusted(channel)
        self.peer_trusted.notify(channel)
        if not self._table.is_connected(channel):  # an observer may have closed it
            return
        if (self.wire_mode.peer_group_awaits_peer_trust and self.trust_protocol is ping_trust
                and not channel.is_trusted_by_peer):
            # .NET's gate drops a PeerGroup from a peer it does not trust yet, and it never
            # asks again: send it once our pings made it trust us (docs/dotnet.md).
            channel.when_peer_trusts_us().addCallbacks(
                self._send_peer_list_late, lambda _: None
            )
            return
        self._gossip.send(channel, peers)

    def _send_peer_list_late(self, channel: PeerChannel) -> None:
        if channel.is_trusted and self._table.is_connected(channel):
            self._gossip.send(channel, self._gossip.peer_list_for(channel))

    def peer_misbehaved(self, channel: PeerChannel, error: object) -> None:
        """Discourage the offender's address."""
        self._admission.misbehaved(host_of(channel))

    def _drop_misbehaving(self, channel: PeerChannel, error: Exception) -> None:
        self.log.warn("dropping misbehaving peer {peer}: {error}", peer=channel.peer,
                      error=str(error))
        self.peer_misbehaved(channel, error)
        channel.abort(f"misbehaving: {error}")

    def channel_closed(self, channel: PeerChannel, reason: str) -> None:
        """
        Forget a closed channel everywhere, then tell its connect() callers and the observers:
        any of them may reconnect, and finds no trace of it.
        """
        was_active = self._table.remove(channel)
        self._gossip.gone(channel)
        self.counters.update(channel.counters)
        self._membership.closed(channel, reason)
        self._dialer.slot_freed()
        if was_active:
            self.peer_removed.notify(channel)


def peers_from_strings(values: Iterable[str]) -> list[GenericPeer]:
    """
    Parse C{HOST:PORT} (or C{[V6]:PORT}) strings into peers.

    @raise ValueError: with the offending value, for a bad one.
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
