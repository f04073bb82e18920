# -*- test-case-name: tests.test_discovery_dials -*-
"""
L{DiscoveryDialer}: turns the peers LAN discovery finds into dials, within bounds.

A peer is skipped, and counted in C{dials_skipped.<why>}, when it is this node (C{self}),
blocked by address or identifier (C{blocked}), discouraged for misbehaving (C{discouraged}),
already connected (C{connected}), already being dialled by discovery (C{pending}), or when
C{max_pending} dials are under way (C{busy}).  Otherwise it is dialled with the network's
C{connect(peer)}: for a C{p2pnet} peer the announced identifier goes with it, so TLS must
prove the announced key.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx.interfaces import IPeer

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network import PeerNetwork

__all__ = ["DEFAULT_MAX_PENDING_DIALS", "DiscoveryDialer"]

DEFAULT_MAX_PENDING_DIALS = 8
"""How many dials discovery keeps under way at most."""


class DiscoveryDialer:
    """
    Dials discovered peers.

    @param network: the node's network (its C{connect}, C{is_self}, C{channel_for}, C{policy}
        and C{discouraged_ips}).
    @param counters: where C{dials_started}, C{dials_connected}, C{dials_failed} and
        C{dials_skipped.<why>} are counted.
    @param max_pending: how many dials may be under way at once.
    """

    log = Logger()

    def __init__(
        self, network: PeerNetwork, counters: Counter[str],
        max_pending: int = DEFAULT_MAX_PENDING_DIALS,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending}")
        self._network = network
        self.counters = counters
        self.max_pending = max_pending
        self._pending: dict[tuple[str, int], Deferred[PeerChannel]] = {}

    @property
    def pending(self) -> int:
        """How many dials are under way."""
        return len(self._pending)

    def skip_reason(self, peer: IPeer) -> str | None:
        """Why C{peer} is not to be dialled now, or C{None}."""
        network = self._network
        if network.is_self(peer):
            return "self"
        if network.policy.is_blocked_ip(peer.address) or network.policy.is_blocked_identifier(
            peer.identifier
        ):
            return "blocked"
        if peer.address in network.discouraged_ips:
            return "discouraged"
        if network.channel_for(peer) is not None:
            return "connected"
        if (peer.address, peer.port) in self._pending:
            return "pending"
        if len(self._pending) >= self.max_pending:
            return "busy"
        return None

    def offer(self, peer: IPeer) -> bool:
        """
        Dial C{peer} unless it is to be skipped.

        @return: whether a dial started.
        """
        why = self.skip_reason(peer)
        if why is not None:
            self.counters["dials_skipped." + why] += 1
            return False
        key = (peer.address, peer.port)
        self.counters["dials_started"] += 1
        self.log.info("dialling {peer}, found on the LAN", peer=peer)
        dialing = self._network.connect(peer)
        self._pending[key] = dialing
        dialing.addCallbacks(self._connected, self._failed, errbackArgs=(peer,))
        dialing.addBoth(self._done, key, dialing)
        return True

    def cancel_all(self) -> None:
        """Cancel every dial under way."""
        for dialing in list(self._pending.values()):
            dialing.cancel()

    def _connected(self, channel: PeerChannel) -> None:
        self.counters["dials_connected"] += 1

    def _failed(self, failure: Failure, peer: IPeer) -> None:
        if failure.check(CancelledError):
            self.counters["dials_cancelled"] += 1
            return
        self.counters["dials_failed"] += 1
        self.log.info("dialling {peer}, found on the LAN, failed: {why}", peer=peer,
                      why=failure.getErrorMessage())

    def _done(self, _: object, key: tuple[str, int], dialing: Deferred[PeerChannel]) -> None:
        if self._pending.get(key) is dialing:
            del self._pending[key]
