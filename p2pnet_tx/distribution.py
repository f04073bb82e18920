# -*- test-case-name: tests.test_distribution -*-
"""
L{Distribution}: what a node does with the data its trusted peers send, and how it sends
data to them.

Every received C{DataTransmit} is routed by its C{DataType}:

  - B{MiscData} to the L{Distribution.misc_data} observers, C{fn(channel, payload)}, or to a
    handler set with L{Distribution.set_handler};
  - B{Task} to the task runner set with L{Distribution.set_task_runner}.  By default there is
    none: a task from an ordinary trusted peer is refused, counted (C{tasks_refused}) and
    logged once, never run;
  - B{File} to the file part (L{p2pnet_tx.files.transfers.FileTransfers}), which sets itself
    as that type's handler.

L{Distribution.distribute} sends data to every trusted peer, or to chosen ones, event-driven:
each channel's backpressure is respected (a send that meets C{SendBufferFull} waits for that
channel's C{drain()} and goes on), so a slow peer never blocks the others, and packets to one
peer keep their order.  The distribution is a part of the node beside the network, not a
method of it: build one per network (C{Distribution(network)}) and keep it with the network.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from p2pnet_tx._observer import Observers
from p2pnet_tx.errors import ChannelClosed, SendBufferFull
from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket, PacketType

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network import PeerNetwork

__all__ = ["DataHandler", "Distribution"]

DataHandler = Callable[["PeerChannel", DataTransmissionPacket], Any]
"""C{fn(channel, packet)}: may return a Deferred; its failure is logged and counted."""


class Distribution:
    """
    Routes received data by type and sends data to trusted peers; one per network.

    Building it makes it the network's C{DataTransmit} handler.

    @param network: the node's network.
    @ivar misc_data: observers of received MiscData, called with C{(channel, payload)}.
    @ivar counters: C{received.<type>}, C{sent}, C{send_waits} (a send that waited for a
        channel to drain), C{send_dropped} (its channel closed first), C{tasks_refused}.
    """

    log = Logger()

    def __init__(self, network: PeerNetwork) -> None:
        self.network = network
        self.misc_data = Observers("misc data received")
        self.counters: Counter[str] = Counter()
        self._handlers: dict[DataPayloadFormat, DataHandler] = {}
        self._task_runner: DataHandler | None = None
        self._task_refusal_logged = False
        # Per channel, what waits for it to drain, in order: (packet, Deferred[bool]).
        self._waiting: dict[PeerChannel, deque[tuple[DataTransmissionPacket, Deferred[bool]]]] = {}
        network.handlers.set_handler(PacketType.DATA_TRANSMIT, self.data_received)

    # -- Receiving ----------------------------------------------------------------------------

    def set_handler(self, data_type: DataPayloadFormat, handler: DataHandler | None) -> None:
        """
        Send received data of C{data_type} to C{handler}; None restores the default (MiscData:
        the observers; File: logged and dropped).  Tasks have their own setter,
        L{set_task_runner}, so that no handler for all types lets tasks in by accident.

        @raise ValueError: for L{DataPayloadFormat.TASK}.
        """
        data_type = DataPayloadFormat(data_type)
        if data_type is DataPayloadFormat.TASK:
            raise ValueError("tasks go to set_task_runner(), which decides who may send them")
        if handler is None:
            self._handlers.pop(data_type, None)
        else:
            self._handlers[data_type] = handler

    def set_task_runner(self, runner: DataHandler | None) -> None:
        """
        Hand received tasks to C{runner(channel, packet)}, which decides whether the sender
        may give that task (the bootstrap authority's signature, an application callback) and
        runs it.  None (the default): every task is refused.
        """
        self._task_runner = runner

    def data_received(self, channel: PeerChannel, packet: DataTransmissionPacket) -> Any:
        """The network's C{DataTransmit} handler: route C{packet} by its data type."""
        data_type = packet.data_type
        self.counters["received." + data_type.name.lower()] += 1
        if data_type is DataPayloadFormat.TASK:
            return self._task(channel, packet)
        handler = self._handlers.get(data_type)
        if handler is not None:
            return handler(channel, packet)
        if data_type is DataPayloadFormat.MISC_DATA:
            self.misc_data.notify(channel, packet.payload)
            return None
        channel.log_peer(self.log, LogLevel.info,
                         "dropped {size} bytes of {kind} data from {peer}: nothing takes it",
                         size=len(packet.payload), kind=data_type.name, peer=channel.peer)
        return None

    def _task(self, channel: PeerChannel, packet: DataTransmissionPacket) -> Any:
        if self._task_runner is not None:
            return self._task_runner(channel, packet)
        self.counters["tasks_refused"] += 1
        if not self._task_refusal_logged:
            self._task_refusal_logged = True
            self.log.warn(
                "refused a task from {peer}: no task runner authorises tasks (every later "
                "refusal is only counted, as tasks_refused)", peer=channel.peer)
        return None

    # -- Sending ------------------------------------------------------------------------------

    def distribute(
        self,
        data: bytes,
        data_type: DataPayloadFormat = DataPayloadFormat.MISC_DATA,
        to: Iterable[str] | None = None,
    ) -> Deferred[dict[str, bool]]:
        """
        Send C{data} to every trusted peer, or to the trusted peers whose identifiers C{to}
        names.

        @return: a Deferred firing with C{{identifier: sent}}: True once the packet is in the
            peer's channel (sent or queued), False if its channel closed first.  It fails
            with ValueError if C{to} names a peer that is not connected and trusted, or
            TypeError for data that is not bytes.
        """
        try:
            packet = DataTransmissionPacket(
                data, data_type, source_origin_identifier=self.network.identifier
            )
            channels = self._targets(to)
        except (TypeError, ValueError) as e:
            return fail(e)
        if not channels:
            return succeed({})
        identifiers = [self._identifier(channel) for channel in channels]
        sends = DeferredList([self.send(channel, packet) for channel in channels])
        return sends.addCallback(
            lambda results: {i: ok and sent for i, (ok, sent) in zip(identifiers, results)}
        )

    @staticmethod
    def _identifier(channel: PeerChannel) -> str:
        return channel.peer.identifier if channel.peer is not None else ""

    def _targets(self, to: Iterable[str] | None) -> list[PeerChannel]:
        trusted = self.network.trusted_peer_channels
        if to is None:
            return list(trusted)
        if isinstance(to, str):
            raise TypeError("'to' must be a list of identifiers, not one string")
        by_identifier = {self._identifier(channel): channel for channel in trusted}
        wanted = list(dict.fromkeys(to))
        unknown = [i for i in wanted if i not in by_identifier]
        if unknown:
            raise ValueError(f"not a connected, trusted peer: {', '.join(unknown)}")
        return [by_identifier[i] for i in wanted]

    def send(self, channel: PeerChannel, packet: DataTransmissionPacket) -> Deferred[bool]:
        """
        Send C{packet} to one channel, after what already waits for it, respecting its
        backpressure.

        @return: a Deferred firing True once the packet is sent or queued in the channel,
            False if the channel closed first.
        """
        waiting = self._waiting.get(channel)
        if waiting is not None:
            done: Deferred[bool] = Deferred()
            waiting.append((packet, done))
            return done
        try:
            sent = channel.send(packet)
        except SendBufferFull:
            done = Deferred()
            self._wait(channel, deque([(packet, done)]))
            return done
        self.counters["sent" if sent else "send_dropped"] += 1
        return succeed(sent)

    def _wait(self, channel: PeerChannel,
              waiting: deque[tuple[DataTransmissionPacket, Deferred[bool]]]) -> None:
        self.counters["send_waits"] += 1
        self._waiting[channel] = waiting
        channel.drain().addCallbacks(lambda _: self._drained(channel),
                                     lambda failure: self._closed(channel, failure))

    def _drained(self, channel: PeerChannel) -> None:
        waiting = self._waiting.pop(channel)
        while waiting:
            packet, done = waiting[0]
            try:
                sent = channel.send(packet)
            except SendBufferFull:
                self._wait(channel, waiting)
                return
            waiting.popleft()
            self.counters["sent" if sent else "send_dropped"] += 1
            done.callback(sent)

    def _closed(self, channel: PeerChannel, failure: Failure) -> None:
        failure.trap(ChannelClosed)
        for _, done in self._waiting.pop(channel, ()):
            self.counters["send_dropped"] += 1
            done.callback(False)

    def status(self) -> dict[str, Any]:
        """The counters and the channels with data waiting, as JSON."""
        return {"counters": dict(self.counters),
                "waiting": {self._identifier(c): len(q) for c, q in self._waiting.items()}}
