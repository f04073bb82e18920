# -*- test-case-name: tests.test_network_dialer -*-
"""
L{Dialer}: a network's outbound connections.

C{connect()} dials a peer, or follows the dial already under way to it, or returns the channel
already open to it.  Dials the network starts on its own (from peer lists, from the known peers)
spend the dial budget, a token bucket, and respect the outbound limit; those put off are retried
by one timer, set for when the bucket will next hold a token, or when an outbound slot frees.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.interfaces import IAddress, IDelayedCall, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx.errors import NetworkClosed, PeerBlocked, SelfConnection, TooManyPeers
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.network.admission import TokenBucket
from p2pnet_tx.network.factory import ChannelMaker, OutboundChannelFactory
from p2pnet_tx.peer import GenericPeer, HostnamePeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network.limits import NetworkLimits
    from p2pnet_tx.network.local import LocalNode
    from p2pnet_tx.network.membership import Membership
    from p2pnet_tx.network.table import PeerTable


class Dialer:
    """
    Opens outbound connections for one network.

    @param reactor: connects TCP and runs the retry timer.
    @param limits: the connect timeout, the outbound limit, the dial budget.
    @param policy: blocked addresses and identifiers are never dialled.
    @param local: this node, never dialled.
    @param table: the connected peers and the count of outbound channels.
    @param membership: tells when a dialled channel's peer is accepted.
    @param channels: builds the dialled channels.
    @param wrap_endpoint: applied to each TCP endpoint before it connects (the network's TLS,
        L{NodeTLS.client_endpoint<p2pnet_tx.tls.NodeTLS.client_endpoint>}), if given.
    @param counters: the network's counters: C{dials_deferred}, C{dials_retried},
        C{dials_failed}, C{deferred_dials_dropped}.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        *,
        limits: NetworkLimits,
        policy: IncomingPeerTrustPolicy,
        local: LocalNode,
        table: PeerTable,
        membership: Membership,
        channels: ChannelMaker,
        counters: Counter[str],
        wrap_endpoint: Callable[[IStreamClientEndpoint], IStreamClientEndpoint] | None = None,
    ) -> None:
        self._reactor = reactor
        self._limits = limits
        self._policy = policy
        self._local = local
        self._table = table
        self._membership = membership
        self._channels = channels
        self._counters = counters
        self._wrap_endpoint = wrap_endpoint
        self._budget = TokenBucket(reactor, limits.dial_rate, limits.dial_burst)
        self._dialing: dict[tuple[str, int], _Dial] = {}
        self._put_off: OrderedDict[tuple[str, int], IPeer] = OrderedDict()
        self._retry: IDelayedCall | None = None
        self._closed = False

    # -- Asked for ---------------------------------------------------------------------------

    def connect(self, peer: IPeer, timeout: float | None = None) -> Deferred[PeerChannel]:
        """
        Connect to C{peer}, or return the channel already open to it.

        @param timeout: seconds for the TCP connection (default C{limits.connect_timeout}).
        @return: a Deferred firing with the channel once its peer is accepted; it fails with
            L{SelfConnection}, L{DuplicatePeer}, L{PeerBlocked}, L{TooManyPeers},
            L{NetworkClosed}, L{ChannelClosed} or the connection error.  Cancelling it
            withdraws this caller; the dial is cancelled with its last caller.
        """
        if not IPeer.providedBy(peer):
            return fail(TypeError(f"connect() needs an IPeer, not {peer!r}"))
        if self._closed:
            return fail(NetworkClosed("the network is closed"))
        if self._policy.is_blocked_ip(peer.address) or self._policy.is_blocked_identifier(
            peer.identifier
        ):
            return fail(PeerBlocked(f"{peer} is blocked", peer))
        if self._local.is_self(peer):
            return fail(SelfConnection(f"{peer} is this node", peer))
        existing = self._table.channel_for(peer)
        if existing is not None:
            return succeed(existing)
        key = (peer.address, peer.port)
        dialing = self._dialing.get(key)
        if dialing is not None:
            return dialing.follow()
        outbound = self.outbound_count
        if outbound >= self._limits.max_outbound:
            return fail(TooManyPeers(f"{outbound} outbound channels already", peer))
        return self._start(key, peer, timeout)

    def never_dials(self, peer: IPeer) -> bool:
        """Whether C{peer} is this node or blocked, so not worth remembering or dialling."""
        return (
            self._local.is_self(peer)
            or self._policy.is_blocked_ip(peer.address)
            or self._policy.is_blocked_identifier(peer.identifier)
        )

    def maybe_dial(self, peer: IPeer) -> bool:
        """
        Dial C{peer} within the dial budget and the outbound limit, unless it is connected or
        being dialled; put the dial off (to be retried) when neither allows it now.

        @return: whether a dial started now.
        """
        if self._table.channel_for(peer) is not None or (peer.address, peer.port) in self._dialing:
            return False
        if self.outbound_count >= self._limits.max_outbound or not self._budget.take():
            self._counters["dials_deferred"] += 1
            self._put_off_dial(peer)
            return False
        self._dial(peer)
        return True

    def dial_all(self, peers: Iterable[IPeer]) -> int:
        """
        L{maybe_dial} each of C{peers} that is not L{never_dials}.

        @return: how many dials started now (the others are put off or not needed).
        """
        return sum(
            1 for peer in list(peers) if not self.never_dials(peer) and self.maybe_dial(peer)
        )

    @property
    def outbound_count(self) -> int:
        """Outbound channels, plus dials whose channel is not built yet."""
        return self._table.outbound_count + sum(
            1 for dial in self._dialing.values() if dial.channel is None
        )

    @property
    def put_off(self) -> list[IPeer]:
        """The peers whose dials are put off, oldest first."""
        return list(self._put_off.values())

    def is_dialing(self, peer: IPeer) -> bool:
        """Whether a dial to C{peer}'s address and port is under way."""
        return (peer.address, peer.port) in self._dialing

    def slot_freed(self) -> None:
        """An outbound channel or dial ended: put-off dials may go again."""
        self._schedule()

    def cancel_all(self) -> None:
        """Cancel every dial under way, every put-off dial, and the retry timer."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._put_off.clear()
        for dial in list(self._dialing.values()):
            dial.attempt.cancel()

    def close(self) -> None:
        """Cancel everything, and fail every later L{connect} with L{NetworkClosed}."""
        self._closed = True
        self.cancel_all()

    # -- Dialling ----------------------------------------------------------------------------

    def _start(self, key: tuple[str, int], peer: IPeer, timeout: float | None) -> Deferred[Any]:
        seconds = self._limits.connect_timeout if timeout is None else timeout
        endpoint: IStreamClientEndpoint
        if isinstance(peer, HostnamePeer):
            # The reactor's resolver names the addresses; the channel knows the one reached.
            endpoint = HostnameEndpoint(self._reactor, peer.address, peer.port, timeout=seconds)
        else:
            endpoint_type = TCP6ClientEndpoint if ":" in peer.address else TCP4ClientEndpoint
            endpoint = endpoint_type(self._reactor, peer.address, peer.port, timeout=seconds)
        if self._wrap_endpoint is not None:
            endpoint = self._wrap_endpoint(endpoint)
        dial: _Dial

        def arrived(channel: PeerChannel) -> Deferred[PeerChannel]:
            return self._membership.when_accepted(channel)

        def cancel(result: Deferred[PeerChannel]) -> None:
            if dial.channel is not None:
                dial.channel.abort("connection attempt cancelled")
            else:
                attempt.cancel()

        def done(outcome: object) -> object:
            # Before any caller hears of it: a caller that reconnects must dial afresh.
            if self._dialing.get(key) is dial:
                del self._dialing[key]
            self._schedule()
            return outcome

        result: Deferred[PeerChannel] = Deferred(cancel)
        dial = self._dialing[key] = _Dial(result)
        result.addBoth(done)
        result.addBoth(dial.fire)
        waiter = dial.follow()
        # Chained last: an endpoint may fail at once, and everything above must be in place.
        factory = (
            _ResolvedChannelFactory(self, peer, dial.built) if isinstance(peer, HostnamePeer)
            else OutboundChannelFactory(self._channels, peer, dial.built)
        )
        attempt = endpoint.connect(factory)
        attempt.addCallback(arrived).chainDeferred(result)
        return waiter

    def _dial(self, peer: IPeer) -> None:
        self.connect(peer).addErrback(self._dial_failed, peer)

    def _dial_failed(self, failure: Failure, peer: IPeer) -> None:
        self._counters["dials_failed"] += 1
        self.log.info("could not connect to {peer}: {why}", peer=peer,
                      why=failure.getErrorMessage())

    # -- Put-off dials -----------------------------------------------------------------------

    def _put_off_dial(self, peer: IPeer) -> None:
        if self._closed:
            return
        key = (peer.address, peer.port)
        self._put_off.pop(key, None)
        self._put_off[key] = peer
        while len(self._put_off) > self._limits.max_deferred_dials:
            self._put_off.popitem(last=False)
            self._counters["deferred_dials_dropped"] += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._retry is not None or not self._put_off or self._closed:
            return
        if self.outbound_count >= self._limits.max_outbound:
            return  # slot_freed() calls again when an outbound channel or dial ends
        delay = self._budget.seconds_until_token()
        if delay is None:
            return  # a budget that never refills: nothing will ever be retried
        self._retry = self._reactor.callLater(delay, self._retry_put_off)

    def _retry_put_off(self) -> None:
        self._retry = None
        while self._put_off:
            key, peer = next(iter(self._put_off.items()))
            if (
                self.never_dials(peer)
                or self._table.channel_for(peer) is not None
                or key in self._dialing
            ):
                del self._put_off[key]
                continue
            if self.outbound_count >= self._limits.max_outbound or not self._budget.take():
                break
            del self._put_off[key]
            self._counters["dials_retried"] += 1
            self._dial(peer)
        self._schedule()


class _ResolvedChannelFactory(OutboundChannelFactory):
    """
    The factory of a dial by host name: each connection is to an address the name resolved
    to, and the channel's peer is that address (a L{GenericPeer}), never the name.  An address
    that is blocked, or this node's own, fails the attempt before a byte is sent.
    """

    def __init__(
        self, dialer: Dialer, peer: HostnamePeer, built: Callable[[PeerChannel], object]
    ) -> None:
        super().__init__(dialer._channels, peer, built)
        self._dialer = dialer
        self._name = peer

    def buildProtocol(self, addr: IAddress) -> PeerChannel:
        name = self._name
        resolved = GenericPeer(getattr(addr, "host", ""), name.port, name.identifier)
        if self._dialer._policy.is_blocked_ip(resolved.address):
            raise PeerBlocked(f"{name} resolves to the blocked address {resolved.address}",
                              resolved)
        if self._dialer._local.is_self(resolved):
            raise SelfConnection(f"{name} resolves to this node", resolved)
        self.peer = resolved
        return super().buildProtocol(addr)


@attrs.define
class _Dial:
    """
    A connection attempt that several connect() callers may be waiting on: each gets its own
    Deferred, and cancelling one withdraws only that caller; the attempt itself is cancelled
    with the last one.  The attempt's result reaches the callers through L{fire}.
    """

    attempt: Deferred[PeerChannel]
    waiting: list[Deferred[PeerChannel]] = attrs.field(factory=list)
    channel: PeerChannel | None = None

    def follow(self) -> Deferred[PeerChannel]:
        """Return a new Deferred for the attempt's result."""

        def withdraw(waiter: Deferred[PeerChannel]) -> None:
            self.waiting.remove(waiter)
            if not self.waiting:
                self.attempt.cancel()

        waiter: Deferred[PeerChannel] = Deferred(withdraw)
        self.waiting.append(waiter)
        return waiter

    def built(self, channel: PeerChannel) -> None:
        """The attempt's channel is built: it counts as an outbound channel from now on."""
        self.channel = channel

    def fire(self, result: PeerChannel | Failure) -> None:
        """Hand the attempt's result to every caller still waiting."""
        waiting, self.waiting = self.waiting, []
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
