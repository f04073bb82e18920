# -*- test-case-name: tests.test_network_membership -*-
"""
L{Membership}: who joins a network's active peers.

A channel's peer is accepted on connection (in a wire mode without Identity packets) or when
it says who it is: refused if, over TLS, the identifier it claims is not the one its key derives
(dropped as misbehaving), if blocked, this node, or a duplicate of a connected peer, where the
simultaneous-dial tie-break decides which of two connections both nodes keep.  Accepted peers
are placed on the inbound queue and/or announced, per the policy.  The callers of C{connect()}
wait here for their channel's peer to be accepted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx._observer import Observers, OneShotObserver
from p2pnet_tx.channel import TrustProtocol
from p2pnet_tx.errors import (
    ChannelClosed,
    DuplicatePeer,
    IdentityMismatch,
    PeerBlocked,
    PeerRefused,
    SelfConnection,
)
from p2pnet_tx.identity import sanitize_display_name
from p2pnet_tx.inbound import InboundConnectingPeersQueue
from p2pnet_tx.logtext import REASON_TEXT_LIMIT, peer_text
from p2pnet_tx.network.local import IDENTITY_MESSAGE
from p2pnet_tx.network.table import PeerTable, host_of
from p2pnet_tx.packets import IdentifierPacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerPlacement, IncomingPeerTrustPolicy
from p2pnet_tx.wire_mode import WireMode

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network.security import KeyBinding


def display_name_of(packet: IdentifierPacket) -> str | None:
    """
    The display name a peer announced in its Identity packet's message: C{None} for the plain
    C{"connect"}, and for a name unfit to show (L{sanitize_display_name}).
    """
    message = packet.message
    if message == IDENTITY_MESSAGE:
        return None
    return sanitize_display_name(message)


class Membership:
    """
    Accepts or refuses the peers of a network's channels.

    Every table change is made before any observer hears of it, and after each notification
    the channel is looked up again: an observer may close it, or the whole network.

    @param table: the peer table it updates.
    @param policy: blocked identifiers, incoming peer placement, whether trust is negotiated.
    @param identifier: this node's identifier (a peer claiming it is this node).
    @param wire_mode: whether peers are accepted on connection.
    @param trust_protocol: the network's trust protocol; with none, a peer is not pending
        once accepted.
    @param inbound: the queue of new inbound peers.
    @param counters: the network's counters.
    @param incoming_peer_connection_attempt: observers C{(peer, channel)} of new inbound peers.
    @param peer_added: observers C{(channel)} of accepted peers.
    @param peer_removed: observers C{(channel)} of accepted peers gone; here, those replaced.
    @param binding: holds TLS peers to their keys (C{None} over plaintext TCP).
    @param drop: called with a channel and the error, to drop a peer as misbehaving.
    """

    log = Logger()

    def __init__(
        self,
        *,
        table: PeerTable,
        policy: IncomingPeerTrustPolicy,
        identifier: str,
        wire_mode: WireMode,
        trust_protocol: TrustProtocol | None,
        inbound: InboundConnectingPeersQueue,
        counters: Counter[str],
        incoming_peer_connection_attempt: Observers,
        peer_added: Observers,
        peer_removed: Observers,
        binding: KeyBinding | None = None,
        drop: Callable[[PeerChannel, Exception], None] | None = None,
    ) -> None:
        self._table = table
        self._policy = policy
        self._identifier = identifier
        self._wire_mode = wire_mode
        self._trust_protocol = trust_protocol
        self._inbound = inbound
        self._counters = counters
        self._incoming = incoming_peer_connection_attempt
        self._peer_added = peer_added
        self._peer_removed = peer_removed
        self._binding = binding
        self._drop = drop
        # Outbound channels only: their connect() callers wait for the outcome.
        self._arrivals: dict[PeerChannel, OneShotObserver[PeerChannel]] = {}
        self._refusals: dict[PeerChannel, PeerRefused] = {}

    def when_accepted(self, channel: PeerChannel) -> Deferred[PeerChannel]:
        """
        @return: a new Deferred firing with the channel once its peer is accepted, or with the
            connected channel its peer duplicates; it fails with the L{PeerRefused} that refused
            the peer, or with L{ChannelClosed}.
        """
        arrival = self._arrivals.get(channel)
        if arrival is None:
            # close_reason is set as soon as a channel starts closing (before it tells us), and
            # a channel that is closing will never be accepted.
            if channel.close_reason is not None:
                return fail(self._refusals.get(channel) or ChannelClosed(channel.close_reason))
            arrival = self._arrivals[channel] = OneShotObserver()
        return arrival.when_fired()

    def connected(self, channel: PeerChannel) -> None:
        """Record a made connection; in a mode without Identity, accept its peer at once."""
        outbound = self._table.is_outbound(channel)
        self._table.connect(channel, None if outbound else host_of(channel))
        if self._wire_mode.peer_known_by_connection:
            if not outbound:
                self._table.mark_not_listening(channel)
            if channel.peer is not None:
                self._accept(channel, GenericPeer(channel.peer.address, channel.peer.port))

    def secured(self, channel: PeerChannel) -> None:
        """
        A channel's TLS handshake is over: a peer without a usable key is dropped as
        misbehaving; one without the key of the identifier it was dialled as is dropped (it is
        not the peer we wanted), but not held to blame.
        """
        if self._binding is None:
            return
        refusal = self._binding.secured(channel)
        if refusal is None:
            return
        self._refusals[channel] = refusal
        if isinstance(refusal, IdentityMismatch):
            # Not the peer's fault: what we expected came from elsewhere (a peer list, an old
            # address), and discouraging it would let a gossiper get honest nodes refused.
            channel.abort(f"not the peer dialled: {refusal}")
        else:
            self._dropped(channel, refusal)

    def identity_received(self, channel: PeerChannel, packet: IdentifierPacket) -> bool:
        """
        Decide on a peer that said who it is.  Its display name, if it announced a fit one, is
        kept in C{channel.properties["display_name"]}.

        @return: whether it is accepted (else the channel closes).
        """
        identifier = packet.source_origin_identifier or None
        if self._binding is not None:
            refusal = self._binding.claim_refusal(channel, identifier)
            if refusal is not None:
                self._refusals[channel] = refusal
                self._dropped(channel, refusal)
                return False
        display_name = display_name_of(packet)
        if display_name is not None:
            channel.properties["display_name"] = display_name
        try:
            port = packet.data or getattr(channel.transport.getPeer(), "port", 0)
            peer = GenericPeer(host_of(channel), port, identifier)
        except (ValueError, TypeError) as e:
            return self._refuse(channel, PeerRefused(f"bad identity: {e}"))
        if not packet.data:
            self._table.mark_not_listening(channel)
        if self._policy.is_blocked_identifier(identifier):
            refused = self._refuse(channel, PeerBlocked(f"{peer} is blocked", peer))
            channel.close("blocked")  # the goodbye tells the peer why
            return refused
        if identifier == self._identifier:
            return self._refuse(channel, SelfConnection("connected to ourselves", peer))
        channel.peer = peer
        existing = self._table.duplicate_of(channel, peer)
        if existing is not None:
            if existing.is_trusted or not self._newcomer_wins(channel, existing):
                self._refusals[channel] = DuplicatePeer(f"{peer} is already connected", peer)
                self._settle(channel, existing)
                self._counters["duplicates_refused"] += 1
                self.log.info("refused duplicate {peer}", peer=peer)
                return False
            self.log.info("replacing duplicate channel to {peer}", peer=peer)
            self._table.deactivate(existing)
            self._settle(existing, channel)  # its dial, if still waiting, gets the survivor
            existing.close("duplicate")
            self._peer_removed.notify(existing)
            if not self._table.is_connected(channel):
                return False  # an observer closed the newcomer too
        self._accept(channel, peer)
        return True

    def trusted(self, channel: PeerChannel) -> None:
        """A channel's peer is trusted: its pending slot frees, its listening address is kept."""
        self._counters["handshakes_ok"] += 1
        self._table.handshake_done(channel)
        self.log.info("peer {peer} trusted ({direction})", peer=channel.peer,
                      direction=self._direction(channel))
        peer = channel.peer
        if isinstance(peer, GenericPeer) and self._table.is_listening(channel):
            self._table.remember(peer)  # an inbound peer's claimed listening port, now worth it

    def closed(self, channel: PeerChannel, reason: str) -> None:
        """A channel is gone: its connect() callers learn why (after the table forgot it)."""
        arrival = self._arrivals.pop(channel, None)
        refusal = self._refusals.pop(channel, None)
        if arrival is not None:
            arrival.fire(Failure(refusal or ChannelClosed(reason)))

    def _settle(self, channel: PeerChannel, result: PeerChannel) -> None:
        arrival = self._arrivals.get(channel)
        if arrival is None:
            # Nobody waits yet; an outbound channel's dial will (the endpoint reports the
            # connection after connectionMade, when a peer may already be accepted).
            if not (self._table.is_outbound(channel) and self._table.is_connected(channel)):
                return
            arrival = self._arrivals[channel] = OneShotObserver()
        arrival.fire(result)

    def _dropped(self, channel: PeerChannel, error: PeerRefused) -> None:
        if self._drop is not None:
            self._drop(channel, error)
        else:
            channel.abort(f"misbehaving: {error}")

    def _refuse(self, channel: PeerChannel, error: PeerRefused) -> bool:
        self._refusals[channel] = error
        self._counters["identities_refused"] += 1
        self.log.info("refused peer on {channel}: {why}", channel=channel,
                      why=peer_text(str(error), REASON_TEXT_LIMIT))
        return False

    def _newcomer_wins(self, newcomer: PeerChannel, existing: PeerChannel) -> bool:
        # Two nodes that dial each other at once each see the other's connection as a
        # duplicate.  Both must keep the same one: the one opened by the smaller identifier.
        # (Only while the existing channel is untrusted: identifiers are claims, and a trusted
        # channel is never given up for an unproven newcomer.)
        outbound = self._table.is_outbound(newcomer)
        if outbound == self._table.is_outbound(existing):
            return False
        peer_identifier = getattr(newcomer.peer, "identifier", None)
        if peer_identifier is None:
            return False
        return outbound == (self._identifier < peer_identifier)

    def _accept(self, channel: PeerChannel, peer: GenericPeer) -> None:
        channel.peer = peer
        self._table.activate(channel)
        handshake_follows = (
            self._trust_protocol is not None and self._policy.run_default_trust_protocol
        )
        if not handshake_follows:
            self._table.handshake_done(channel)
        if self._table.is_outbound(channel):
            self._table.remember(peer)
        else:
            placement = self._policy.incoming_peer_placement
            if placement is not IncomingPeerPlacement.EVENT_BASED:
                self._inbound.put(peer)
            if placement is not IncomingPeerPlacement.QUEUE_BASED:
                self._incoming.notify(peer, channel)
                if not self._table.is_active(channel):
                    return  # an observer closed it: it was announced removed already
        if not handshake_follows:
            # With a handshake to come, the "trusted" line says it all (one event less per
            # peer: a formatted log line costs as much as a tenth of a handshake).
            self.log.info("peer {peer} added ({direction})", peer=peer,
                          direction=self._direction(channel))
        self._peer_added.notify(channel)
        if self._table.is_active(channel):
            self._settle(channel, channel)

    def _direction(self, channel: PeerChannel) -> str:
        return "outbound" if self._table.is_outbound(channel) else "inbound"
