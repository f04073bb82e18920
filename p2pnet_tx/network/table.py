# -*- test-case-name: tests.test_network_table -*-
"""
L{PeerTable}: every collection a network keeps about its channels and peers, kept in step.

The table decides nothing and does no I/O: the other parts of the network ask it questions
(is this peer connected? how many inbound channels from this address?) and tell it what
happened.  Every question costs the same with 10 peers or 10,000; L{remove} leaves no trace of a
channel in any collection, so that whoever reacts to a close finds the channel gone.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import normalize_ip

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel

Address = tuple[str, int]
"""A peer's address and listening port, the key of the known peers."""


class PeerTable:
    """
    The channels of a network and the peers it knows.

    A channel goes through up to three stages here: I{connected} (L{connect}: its connection is
    made; inbound ones count against their address), I{active} (L{activate}: its peer is
    accepted and indexed by identifier and by address), I{shared} (L{share}: trusted, and its
    peer may be named in peer lists).  L{remove} takes it out of all of them at once.

    @param max_known_peers: the most peers remembered; past it the oldest is forgotten.

    @ivar known_peers: peers heard of, by address and listening port, oldest first.
    """

    def __init__(self, max_known_peers: int) -> None:
        self.max_known_peers = max_known_peers
        self.known_peers: OrderedDict[Address, GenericPeer] = OrderedDict()
        self._connections: set[PeerChannel] = set()
        self._outbound: set[PeerChannel] = set()
        # Inbound channels and their address, and the pending ones, oldest first: eviction
        # asks for the youngest and the oldest.
        self._inbound_hosts: dict[PeerChannel, str] = {}
        self._per_host: Counter[str] = Counter()
        self._handshaking: dict[PeerChannel, None] = {}
        # Inbound peers that gave no listening port: known by their connection's port, which
        # is worth neither remembering nor sharing.
        self._not_listening: set[PeerChannel] = set()
        # Dicts as ordered sets: arrival order is what users see, and O(1) removal.
        self._active: dict[PeerChannel, None] = {}
        self._shared: dict[PeerChannel, None] = {}
        # The keys a channel was indexed under, so that unindexing never depends on a peer
        # attribute that may have changed since.
        self._index_keys: dict[PeerChannel, tuple[str | None, Address]] = {}
        self._by_identifier: dict[str, PeerChannel] = {}
        self._by_address: dict[Address, PeerChannel] = {}

    # -- Connections ------------------------------------------------------------------------

    def mark_outbound(self, channel: PeerChannel) -> None:
        """Record that this node opened C{channel} (before its connection is made)."""
        self._outbound.add(channel)

    def connect(self, channel: PeerChannel, inbound_host: str | None) -> None:
        """
        Record a made connection.

        @param inbound_host: for an inbound channel, the address it comes from: it counts
            against that address and is pending until its peer is trusted; C{None} for an
            outbound one.
        """
        self._connections.add(channel)
        if inbound_host is not None and channel not in self._outbound:
            self._inbound_hosts[channel] = inbound_host
            self._per_host[inbound_host] += 1
            self._handshaking[channel] = None

    def mark_not_listening(self, channel: PeerChannel) -> None:
        """Record that C{channel}'s peer is known by its connection's port, not a listening one."""
        self._not_listening.add(channel)

    def handshake_done(self, channel: PeerChannel) -> None:
        """C{channel} no longer holds a pending slot."""
        self._handshaking.pop(channel, None)

    def is_connected(self, channel: PeerChannel) -> bool:
        """Whether C{channel}'s connection is made and not yet gone."""
        return channel in self._connections

    def is_pending(self, channel: PeerChannel) -> bool:
        """Whether C{channel} holds a pending slot (inbound, handshake not done)."""
        return channel in self._handshaking

    def is_outbound(self, channel: PeerChannel) -> bool:
        """Whether this node opened C{channel}."""
        return channel in self._outbound

    def is_listening(self, channel: PeerChannel) -> bool:
        """Whether C{channel}'s peer gave a listening port (so it may be remembered, shared)."""
        return channel not in self._not_listening

    def connections(self) -> list[PeerChannel]:
        """A snapshot of every channel whose connection is made."""
        return list(self._connections)

    @property
    def outbound_count(self) -> int:
        """How many channels this node opened, connected or about to be."""
        return len(self._outbound)

    @property
    def inbound_count(self) -> int:
        """How many inbound connections there are."""
        return len(self._inbound_hosts)

    @property
    def pending(self) -> list[PeerChannel]:
        """Inbound channels not yet trusted (or not yet identified), oldest first."""
        return list(self._handshaking)

    @property
    def pending_count(self) -> int:
        """C{len(pending)}, without the copy."""
        return len(self._handshaking)

    def inbound(self) -> list[tuple[PeerChannel, str]]:
        """Every inbound channel with the address it comes from, oldest first."""
        return list(self._inbound_hosts.items())

    def pending_hosts(self) -> Iterator[tuple[PeerChannel, str]]:
        """
        Each pending channel with the address it comes from, oldest first (lazily: change
        nothing in the table while iterating).
        """
        hosts = self._inbound_hosts
        return ((channel, hosts[channel]) for channel in self._handshaking)

    def inbound_from(self, host: str) -> int:
        """How many inbound connections come from C{host}."""
        return self._per_host.get(host, 0)

    def matching(self, ip: str | None, identifier: str | None) -> list[PeerChannel]:
        """The connected channels from address C{ip} or whose peer is C{identifier}."""
        return [
            channel for channel in self._connections
            if (ip is not None and host_of(channel) == ip)
            or (identifier is not None and getattr(channel.peer, "identifier", None) == identifier)
        ]

    # -- Active peers -----------------------------------------------------------------------

    def activate(self, channel: PeerChannel) -> None:
        """Make C{channel} active and index it by its peer's identifier and address."""
        peer = channel.peer
        assert peer is not None
        self._active[channel] = None
        keys = (peer.identifier, (peer.address, peer.port))
        self._index_keys[channel] = keys
        if peer.identifier is not None:
            self._by_identifier[peer.identifier] = channel
        self._by_address[keys[1]] = channel

    def deactivate(self, channel: PeerChannel) -> bool:
        """
        Take C{channel} out of the active peers and the indexes (it stays connected).

        @return: whether it was active.
        """
        if channel not in self._active:
            return False
        del self._active[channel]
        identifier, address = self._index_keys.pop(channel)
        if identifier is not None and self._by_identifier.get(identifier) is channel:
            del self._by_identifier[identifier]
        if self._by_address.get(address) is channel:
            del self._by_address[address]
        return True

    def is_active(self, channel: PeerChannel) -> bool:
        """Whether C{channel}'s peer is accepted."""
        return channel in self._active

    @property
    def active(self) -> list[PeerChannel]:
        """A snapshot of the active channels, in order of arrival."""
        return list(self._active)

    def trusted(self) -> list[PeerChannel]:
        """The active channels whose peer is trusted now, in order of arrival."""
        return [channel for channel in self._active if channel.is_trusted]

    def channel_for(self, peer: IPeer) -> PeerChannel | None:
        """The active channel to C{peer}: same identifier, or same address and port."""
        if peer.identifier is not None:
            channel = self._by_identifier.get(peer.identifier)
            if channel is not None:
                return channel
        return self._by_address.get((peer.address, peer.port))

    def duplicate_of(self, channel: PeerChannel, peer: IPeer) -> PeerChannel | None:
        """Another active channel to C{peer} than C{channel}, if there is one."""
        other = self.channel_for(peer)
        if other is channel:
            other = self._by_address.get((peer.address, peer.port))
        return None if other is channel else other

    # -- Shared peers -----------------------------------------------------------------------

    def share(self, channel: PeerChannel) -> None:
        """Let C{channel}'s peer be named in the peer lists this node sends."""
        self._shared[channel] = None

    def shared(self) -> Iterator[PeerChannel]:
        """The channels whose peers may be shared, oldest first (trusted when shared)."""
        return iter(self._shared)

    # -- Removal ----------------------------------------------------------------------------

    def remove(self, channel: PeerChannel) -> bool:
        """
        Forget C{channel} everywhere: connections, counts, indexes, every set.

        @return: whether it was active (so observers of removed peers must hear of it).
        """
        was_active = self.deactivate(channel)
        self._connections.discard(channel)
        self._outbound.discard(channel)
        self._handshaking.pop(channel, None)
        self._not_listening.discard(channel)
        self._shared.pop(channel, None)
        host = self._inbound_hosts.pop(channel, None)
        if host is not None:
            self._per_host[host] -= 1
            if not self._per_host[host]:
                del self._per_host[host]
        return was_active

    def holds(self, channel: PeerChannel) -> bool:
        """Whether any collection of the table still names C{channel} (for tests and asserts)."""
        return any(
            channel in collection
            for collection in (
                self._connections, self._outbound, self._inbound_hosts, self._handshaking,
                self._not_listening, self._active, self._shared, self._index_keys,
            )
        ) or channel in self._by_identifier.values() or channel in self._by_address.values()

    # -- Known peers ------------------------------------------------------------------------

    def remember(self, peer: GenericPeer) -> None:
        """Add C{peer} to the known peers (as the newest), forgetting the oldest past the limit."""
        key = (peer.address, peer.port)
        self.known_peers.pop(key, None)
        self.known_peers[key] = peer
        while len(self.known_peers) > self.max_known_peers:
            self.known_peers.popitem(last=False)

    def forget(self, peer: IPeer) -> None:
        """Drop C{peer} from the known peers, if it is there."""
        self.known_peers.pop((peer.address, peer.port), None)

    def knows(self, peer: IPeer) -> bool:
        """Whether C{peer}'s address and port are among the known peers."""
        return (peer.address, peer.port) in self.known_peers


def host_of(channel: PeerChannel) -> str:
    """
    The normalised address of C{channel}'s peer: its peer's, or its connection's.
    """
    peer = channel.peer
    if peer is not None:
        return peer.address
    host = getattr(channel.transport.getPeer(), "host", "") if channel.transport else ""
    try:
        return normalize_ip(host)
    except ValueError:
        return host
