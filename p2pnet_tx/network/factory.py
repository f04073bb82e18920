# -*- test-case-name: tests.test_network_factory -*-
"""
How a network's channels are made (L{resolve_trust_protocol} is re-exported from
L{p2pnet_tx.network.security}): L{ChannelMaker} builds each L{PeerChannel} with what the
network configured, L{PeerChannelFactory} is the server factory that refuses or builds inbound
channels, and L{OutboundChannelFactory} builds the one channel of a dial.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.logger import Logger

from p2pnet_tx.channel import ChannelLimits, DeadlineQueue, PeerChannel, TrustProtocol
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.interfaces import IPeer, IPeerChannelOwner
from p2pnet_tx.network.security import resolve_trust_protocol  # noqa: F401 (re-exported)
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.wire_mode import WireMode

if TYPE_CHECKING:
    from p2pnet_tx.network.admission import Admission
    from p2pnet_tx.network.local import LocalNode
    from p2pnet_tx.network.table import PeerTable


class ChannelMaker:
    """
    Builds the channels of one network, all alike but for their direction and expected peer.

    @param clock: every timer of every channel runs on it.
    @param wire_mode: the wire format, and whether channels exchange Identity packets.
    @param handlers: the network's handler registry.
    @param trust_protocol: run by each channel to decide trust, or C{None}.
    @param policy: the trust gate's settings.
    @param limits: each channel's limits.
    @param owner: what every channel reports to.
    @param local: this node, for the Identity packet channels open with.
    @param table: told which channels are outbound.
    """

    def __init__(
        self,
        *,
        clock: IReactorTime,
        wire_mode: WireMode,
        handlers: PacketHandleProtocol,
        trust_protocol: TrustProtocol | None,
        policy: IncomingPeerTrustPolicy,
        limits: ChannelLimits,
        owner: IPeerChannelOwner,
        local: LocalNode,
        table: PeerTable,
    ) -> None:
        self._clock = clock
        self._wire_mode = wire_mode
        # Shared by every channel: codecs are stateless, and one deadline queue wakes all the
        # channels' timers with one DelayedCall instead of one each.
        self._codec = wire_mode.codec()
        self._deadlines = DeadlineQueue(clock)
        self._handlers = handlers
        self.trust_protocol = trust_protocol
        self._policy = policy
        self._limits = limits
        self._owner = owner
        self._local = local
        self._table = table

    def make(self, outbound: bool, peer: IPeer | None = None) -> PeerChannel:
        """
        Build a channel.

        @param outbound: whether this node opens the connection.
        @param peer: who is expected at the other end of an outbound connection.
        """
        identity = self._local.identity()
        channel = PeerChannel(
            self._codec,
            self._handlers,
            self.trust_protocol,
            clock=self._clock,
            policy=self._policy,
            owner=self._owner,
            limits=self._limits,
            peer=peer,
            local_identity=identity,
            await_identity=self._wire_mode.exchanges_identity,
            local_identifier=self._local.identifier,
            deadlines=self._deadlines,
            writer_class=self._wire_mode.writer_class,
            says_goodbye=self._wire_mode.says_goodbye,
        )
        if outbound:
            self._table.mark_outbound(channel)
        return channel


class PeerChannelFactory(ServerFactory):
    """
    Builds a L{PeerChannel} per inbound connection, or refuses it (C{None}) before a byte is
    read, as admission control decides: blocked or discouraged addresses, too many connections
    from one address, too many inbound or pending channels, a closed network.

    @param admission: decides on each connection.
    @param channels: builds the accepted ones.
    @param counters: the network's counters; C{refused_connections} is counted here, and
        C{refused_connections.<cause>} for each cause.
    """

    log = Logger()
    noisy = False

    def __init__(
        self, admission: Admission, channels: ChannelMaker, counters: Counter[str]
    ) -> None:
        self._admission = admission
        self._channels = channels
        self._counters = counters

    def buildProtocol(self, addr: IAddress) -> PeerChannel | None:
        host = getattr(addr, "host", "")
        refusal = self._admission.refusal(host)
        if refusal is not None:
            self._counters["refused_connections"] += 1
            self._counters["refused_connections." + refusal] += 1
            self.log.info("refused connection from {host}: {why}", host=host, why=refusal)
            return None
        channel = self._channels.make(outbound=False)
        channel.factory = self
        return channel


class OutboundChannelFactory(ClientFactory):
    """
    Builds the one channel of an outbound connection to C{peer}.

    @param channels: builds it.
    @param peer: who is expected at the other end.
    @param built: called with the channel as soon as it is built, before its connection is
        made (the dialer counts it from then on as a channel, no longer as a dial).
    """

    noisy = False

    def __init__(
        self,
        channels: ChannelMaker,
        peer: IPeer,
        built: Callable[[PeerChannel], object] | None = None,
    ) -> None:
        self._channels = channels
        self.peer = peer
        self._built = built

    def buildProtocol(self, addr: IAddress) -> PeerChannel:
        channel = self._channels.make(outbound=True, peer=self.peer)
        channel.factory = self
        if self._built is not None:
            self._built(channel)
        return channel
