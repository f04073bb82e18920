# -*- test-case-name: tests.test_network_gossip -*-
"""
L{Gossip}: the peer lists a network receives and sends.

Received lists (and Identity packets naming a peer) feed the known peers, at the gossip rate so
that no peer can flush the peers we know with its own, and the unknown peers are dialled within
the dial budget.  A newly trusted peer is sent the peers this node trusts; that list is built
once and kept until trust changes in a way that changes it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pnet_tx.errors import PeerRefused, SendBufferFull
from p2pnet_tx.network.admission import TokenBucket
from p2pnet_tx.network.table import host_of
from p2pnet_tx.packets import CollectionSharePacket, IdentifierPacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.wire_mode import WireMode

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network.admission import Admission
    from p2pnet_tx.network.dialer import Dialer
    from p2pnet_tx.network.limits import NetworkLimits
    from p2pnet_tx.network.table import PeerTable


class Gossip:
    """
    Takes in and hands out peer lists for one network.

    @param clock: the clock of the gossip rate.
    @param limits: the size of a peer list, the gossip rate.
    @param table: the known peers, and the trusted peers that may be shared.
    @param dialer: dials the peers learnt, and says which are never worth it.
    @param admission: told of peers that send oversized lists.
    @param counters: the network's counters: C{gossip_dropped}, C{oversized_peer_lists},
        C{peer_lists_skipped}.
    @param identifier: this node's identifier, the origin of the lists it sends.
    @param wire_mode: whether an empty list is sent.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        *,
        limits: NetworkLimits,
        table: PeerTable,
        dialer: Dialer,
        admission: Admission,
        counters: Counter[str],
        identifier: str,
        wire_mode: WireMode,
    ) -> None:
        self._limits = limits
        self._table = table
        self._dialer = dialer
        self._admission = admission
        self._counters = counters
        self._identifier = identifier
        self._wire_mode = wire_mode
        self._rate = TokenBucket(clock, limits.gossip_rate, limits.gossip_burst)
        # The list last built, and the channels it names: kept until one of them goes, or a
        # newly shared peer would join it.
        self._cached: CollectionSharePacket | None = None
        self._cached_from: dict[PeerChannel, None] = {}

    # -- Received ----------------------------------------------------------------------------

    def identity_named(self, channel: PeerChannel, packet: IdentifierPacket) -> None:
        """A later Identity packet names a peer: remember it (never dial it from this alone)."""
        if packet.data and packet.ip and _is_ip(packet.ip):
            try:
                peer = GenericPeer(packet.ip, packet.data, packet.source_origin_identifier or None)
            except ValueError:
                return
            if self._table.knows(peer) or self._rate.take():
                self._table.remember(peer)

    def peer_list_received(
        self,
        channel: PeerChannel | CollectionSharePacket | None,
        packet: CollectionSharePacket | None = None,
    ) -> None:
        """
        Remember the peers a list names and dial the unknown ones.  Called as
        C{peer_list_received(packet)} for a list the application hands over, of which the first
        C{limits.max_peer_list} entries are used, and as C{peer_list_received(channel, packet)}
        for one a channel received: over C{max_peer_list} entries, that is misbehaviour and
        the sender is dropped.

        @raise TypeError: if C{packet} is not a L{CollectionSharePacket}.
        """
        if packet is None and isinstance(channel, CollectionSharePacket):
            channel, packet = None, channel
        if not isinstance(packet, CollectionSharePacket):
            raise TypeError(f"process_peer_list needs a CollectionSharePacket, not {packet!r}")
        if len(packet.peers) > self._limits.max_peer_list and channel is not None:
            self._counters["oversized_peer_lists"] += 1
            error = PeerRefused(f"peer list of {len(packet.peers)} entries")
            self._admission.misbehaved(host_of(channel))
            channel.abort(str(error))
            return
        for peer in packet.peers[: self._limits.max_peer_list]:
            if self._dialer.never_dials(peer):
                continue
            if not self._table.knows(peer):
                # Peers can only name addresses so fast, or they would flush the peers we
                # know with their own (RELIABILITY.md row 21).
                if not self._rate.take():
                    self._counters["gossip_dropped"] += 1
                    continue
            self._table.remember(peer)
            self._dialer.maybe_dial(peer)

    # -- Sent --------------------------------------------------------------------------------

    def peer_list_for(self, channel: PeerChannel) -> CollectionSharePacket | None:
        """
        The list to send to C{channel}, newly trusted: the trusted, shareable peers, oldest
        first, at most C{limits.max_peer_list}, never C{channel}'s own.

        @return: the packet, or C{None} when the mode sends no empty list and it would be empty.
        """
        packet = self._cached
        if packet is None or not all(c.is_trusted for c in self._cached_from):
            # Built when trust changed, or when a channel was untrusted behind our back (an
            # untrust does not reach the network).
            packet = self._build()
        if channel in self._cached_from:  # trusted again after an untrust: not its own entry
            packet = CollectionSharePacket(
                packet.data,
                [c.peer for c in self._cached_from if c is not channel],
                source_origin_identifier=self._identifier,
            )
        if not packet.peers and not self._wire_mode.sends_empty_peer_group:
            return None
        return packet

    def send(self, channel: PeerChannel, packet: CollectionSharePacket | None) -> bool:
        """
        Send C{packet} to C{channel}; a channel over its send cap is skipped, never dropped.

        @return: whether the channel took it.
        """
        if packet is None:
            return False
        try:
            return channel.send(packet) is not False
        except SendBufferFull:
            self._counters["peer_lists_skipped"] += 1
            self.log.debug("peer list not sent to {peer}: its send buffer is full",
                           peer=channel.peer)
            return False

    def trusted(self, channel: PeerChannel) -> None:
        """
        C{channel}'s peer is trusted: it is shared from now on if it gave a listening port.
        The cached list is dropped if the peer would be in it.
        """
        if not (isinstance(channel.peer, GenericPeer) and self._table.is_listening(channel)):
            return
        self._table.share(channel)
        if len(self._cached_from) < self._limits.max_peer_list:
            self._invalidate()

    def gone(self, channel: PeerChannel) -> None:
        """C{channel} closed: the cached list is dropped if it names its peer."""
        if channel in self._cached_from:
            self._invalidate()

    def _invalidate(self) -> None:
        self._cached = None
        self._cached_from = {}

    def _build(self) -> CollectionSharePacket:
        sources: dict[PeerChannel, None] = {}
        for shared in self._table.shared():
            if len(sources) >= self._limits.max_peer_list:
                break
            if shared.is_trusted:
                sources[shared] = None
        self._cached_from = sources
        self._cached = CollectionSharePacket(
            100, [c.peer for c in sources], source_origin_identifier=self._identifier
        )
        return self._cached


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

