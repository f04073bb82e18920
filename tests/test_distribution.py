"""
Tests for L{p2pnet_tx.distribution}: routing received data by type, and sending to trusted
peers with each channel's backpressure.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.distribution import Distribution
from p2pnet_tx.errors import ChannelClosed, SendBufferFull
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket, PacketType
from p2pnet_tx.peer import GenericPeer


class FakeChannel:
    """A channel whose queue holds C{room} packets before SendBufferFull."""

    def __init__(self, identifier: str, room: int = 100) -> None:
        self.peer = GenericPeer("127.0.0.1", 8000, identifier)
        self.room = room
        self.sent: list[DataTransmissionPacket] = []
        self.waiters: list[Deferred[Any]] = []
        self.closed = False

    def send(self, packet: DataTransmissionPacket) -> bool:
        if self.closed:
            return False
        if len(self.sent) >= self.room:
            raise SendBufferFull(self.room, self.room)
        self.sent.append(packet)
        return True

    def drain(self) -> Deferred[Any]:
        if self.closed:
            return fail(ChannelClosed("closed"))
        waiter: Deferred[Any] = Deferred()
        self.waiters.append(waiter)
        return waiter

    def drained(self, room: int) -> None:
        self.room += room
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.callback(self)

    def close(self) -> None:
        self.closed = True
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.errback(ChannelClosed("closed"))

    def log_peer(self, log: Any, level: Any, format: str, **fields: Any) -> bool:
        log.emit(level, format, **fields)
        return True


class FakeNetwork:
    def __init__(self, channels: list[FakeChannel]) -> None:
        self.handlers = PacketHandleProtocol()
        self.trusted_peer_channels = channels
        self.identifier = "me"


def packet(data_type: DataPayloadFormat, payload: bytes = b"data") -> DataTransmissionPacket:
    return DataTransmissionPacket(payload, data_type)


class ReceivingTests(SynchronousTestCase):
    """Every DataTransmit is routed by its DataType."""

    def setUp(self) -> None:
        self.channel = FakeChannel("peer")
        self.network = FakeNetwork([self.channel])
        self.distribution = Distribution(self.network)  # type: ignore[arg-type]

    def receive(self, data_type: DataPayloadFormat) -> Any:
        return self.network.handlers.dispatch(self.channel, packet(data_type))  # type: ignore

    def test_registers_as_data_transmit_handler(self) -> None:
        """Building a distribution makes it the network's DataTransmit handler."""
        self.assertEqual(self.network.handlers.get_handler(PacketType.DATA_TRANSMIT),
                         self.distribution.data_received)

    def test_misc_data_to_observers_and_handler(self) -> None:
        """MiscData reaches the observers, or the handler set for it."""
        seen: list[Any] = []
        self.distribution.misc_data.add(lambda channel, payload: seen.append((channel, payload)))
        self.receive(DataPayloadFormat.MISC_DATA)
        self.assertEqual(seen, [(self.channel, b"data")])
        self.distribution.set_handler(DataPayloadFormat.MISC_DATA,
                                      lambda channel, p: seen.append(p.payload + b"!"))
        self.receive(DataPayloadFormat.MISC_DATA)
        self.assertEqual(seen[-1], b"data!")
        self.distribution.set_handler(DataPayloadFormat.MISC_DATA, None)
        self.receive(DataPayloadFormat.MISC_DATA)
        self.assertEqual(len(seen), 3)
        self.assertEqual(self.distribution.counters["received.misc_data"], 3)

    def test_tasks_refused_by_default(self) -> None:
        """A task from a trusted peer is refused, counted, and logged once."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        for _ in range(3):
            self.receive(DataPayloadFormat.TASK)
        self.assertEqual(self.distribution.counters["tasks_refused"], 3)
        self.assertEqual(len([e for e in events if "refused a task" in e["log_format"]]), 1)
        self.assertRaises(ValueError, self.distribution.set_handler, DataPayloadFormat.TASK,
                          lambda c, p: None)

    def test_task_runner(self) -> None:
        """A task runner set gets every task, and decides."""
        seen: list[Any] = []
        self.distribution.set_task_runner(lambda channel, p: seen.append(p.data_type))
        self.receive(DataPayloadFormat.TASK)
        self.assertEqual(seen, [DataPayloadFormat.TASK])
        self.assertEqual(self.distribution.counters["tasks_refused"], 0)

    def test_file_handler(self) -> None:
        """File data goes to the file part's handler; without one it is logged, dropped."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.receive(DataPayloadFormat.FILE)
        self.assertTrue(any("nothing takes it" in e["log_format"] for e in events))
        seen: list[Any] = []
        self.distribution.set_handler(DataPayloadFormat.FILE, lambda c, p: seen.append(p))
        self.receive(DataPayloadFormat.FILE)
        self.assertEqual(len(seen), 1)


class SendingTests(SynchronousTestCase):
    """distribute() reaches every trusted peer, each at its own pace."""

    def setUp(self) -> None:
        self.fast = FakeChannel("fast")
        self.slow = FakeChannel("slow", room=1)
        self.network = FakeNetwork([self.fast, self.slow])
        self.distribution = Distribution(self.network)  # type: ignore[arg-type]

    def test_to_everyone(self) -> None:
        """Every trusted peer gets the packet, from this node."""
        result = self.successResultOf(self.distribution.distribute(b"hi"))
        self.assertEqual(result, {"fast": True, "slow": True})
        self.assertEqual(self.fast.sent[0].payload, b"hi")
        self.assertEqual(self.fast.sent[0].source_origin_identifier, "me")
        self.assertEqual(self.fast.sent[0].data_type, DataPayloadFormat.MISC_DATA)

    def test_to_chosen(self) -> None:
        """Only the chosen peers; an unknown one fails the call, sending nothing."""
        self.successResultOf(self.distribution.distribute(b"a", to=["fast"]))
        self.assertEqual((len(self.fast.sent), len(self.slow.sent)), (1, 0))
        self.failureResultOf(self.distribution.distribute(b"a", to=["nobody"]), ValueError)
        self.failureResultOf(self.distribution.distribute(b"a", to="fast"), TypeError)
        self.failureResultOf(self.distribution.distribute("text"), TypeError)  # type: ignore
        self.assertEqual((len(self.fast.sent), len(self.slow.sent)), (1, 0))

    def test_no_peers(self) -> None:
        """With no trusted peer, nothing is sent and the result is empty."""
        self.network.trusted_peer_channels = []
        self.assertEqual(self.successResultOf(self.distribution.distribute(b"x")), {})

    def test_slow_peer_blocks_nobody(self) -> None:
        """
        A peer whose queue is full gets the rest once it drains, in order; the other peer
        got everything at once.
        """
        results = [self.distribution.distribute(bytes([i])) for i in range(4)]
        self.assertEqual([p.payload for p in self.fast.sent], [b"\0", b"\1", b"\2", b"\3"])
        self.assertEqual(len(self.slow.sent), 1)
        self.successResultOf(results[0])
        self.assertNoResult(results[3])
        self.slow.drained(1)
        self.assertEqual(len(self.slow.sent), 2)
        self.slow.drained(10)
        self.assertEqual([p.payload for p in self.slow.sent], [b"\0", b"\1", b"\2", b"\3"])
        self.assertEqual(self.successResultOf(results[3]), {"fast": True, "slow": True})
        self.assertGreaterEqual(self.distribution.counters["send_waits"], 2)

    def test_channel_closes_while_waiting(self) -> None:
        """What waits for a channel that closes is reported unsent, not lost silently."""
        self.distribution.distribute(b"0")
        waiting = self.distribution.distribute(b"1")
        self.slow.close()
        self.assertEqual(self.successResultOf(waiting), {"fast": True, "slow": False})
        self.assertEqual(self.distribution.counters["send_dropped"], 1)
        self.assertEqual(self.distribution.status()["waiting"], {})

    def test_send_to_closed_channel(self) -> None:
        """A closed channel's send says False."""
        self.fast.closed = True
        self.assertFalse(self.successResultOf(
            self.distribution.send(self.fast, packet(DataPayloadFormat.MISC_DATA))))  # type: ignore
