# -*- test-case-name: tests.test_testing -*-
"""
Tests for L{p2pnet_tx.testing}: the fakes p2pnet_tx ships for its users' tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPullProducer,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

import p2pnet_tx.testing
from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.testing import (
    CLIENT_ADDRESS,
    READ_SIZE,
    SERVER_ADDRESS,
    MemoryPump,
    MemoryTransport,
    RecordingHandler,
    complete_tcp_connection,
    connect_protocols,
    connected_channels,
)
from p2pnet_tx.tls import NodeTLS, peer_public_key
from p2pnet_tx.trust import always_trust


class ConnectedChannelsTests(SynchronousTestCase):
    """connected_channels joins two channels in memory, as a user's test would."""

    def test_exchange_a_message(self) -> None:
        """A message sent on the client reaches the server's handler once the pump flushes."""
        clock = Clock()
        handlers = PacketHandleProtocol()
        received = RecordingHandler()
        handlers.set_handler(PacketType.MESSAGE, received)

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", handlers, always_trust, clock=clock)

        server, client, pump = connected_channels(make, make, clock)
        self.assertTrue(server.is_trusted and client.is_trusted)
        client.send_message("hello, server")
        self.assertEqual(received.calls, [])
        pump.flush()
        [(channel, packet)] = received.calls
        self.assertIs(channel, server)
        self.assertEqual(packet.message, "hello, server")

    def test_addresses(self) -> None:
        """The server sits at 127.0.0.1:8051 and the client at 127.0.0.2:40001."""
        clock = Clock()

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", clock=clock)

        server, client, _ = connected_channels(make, make, clock)
        self.assertEqual(server.transport.getHost(), SERVER_ADDRESS)
        self.assertEqual(client.transport.getHost(), CLIENT_ADDRESS)
        self.assertEqual(server.peer, GenericPeer("127.0.0.2", 40001))
        self.assertEqual(client.peer, GenericPeer("127.0.0.1", 8051))

    def test_pump_advances_clock(self) -> None:
        """Each pump lets the shared clock run pending zero-delay calls."""
        clock = Clock()
        ran: list[bool] = []

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", clock=clock)

        _, _, pump = connected_channels(make, make, clock)
        clock.callLater(0, ran.append, True)
        pump.pump()
        self.assertEqual(ran, [True])


class RecordingHandlerTests(SynchronousTestCase):
    """RecordingHandler records what it is given and returns what it was told."""

    def test_records(self) -> None:
        """Calls are recorded as (channel, packet); packets lists the packets in order."""
        handler = RecordingHandler(result="answer")
        first, second = PureMessagePacket("one"), PureMessagePacket("two")
        self.assertEqual(handler(None, first), "answer")  # type: ignore[arg-type]
        handler(None, second)  # type: ignore[arg-type]
        self.assertEqual(handler.calls, [(None, first), (None, second)])
        self.assertEqual(handler.packets, [first, second])


# -- The in-memory connection itself -------------------------------------------------------------


class Recorder(Protocol):
    """A protocol that records what it reads, and why its connection ended."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.reasons: list[Failure] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        assert reason is not None
        self.reasons.append(reason)

    @property
    def data(self) -> bytes:
        """Everything read, joined."""
        return b"".join(self.chunks)

    def lost_with(self) -> type[BaseException] | None:
        """The type of the one reason the connection ended with, or None if it is open."""
        if not self.reasons:
            return None
        [reason] = self.reasons
        return type(reason.value)


@implementer(IHalfCloseableProtocol)
class HalfCloser(Recorder):
    """A recorder that takes half-closes (and records them) instead of closing."""

    def __init__(self) -> None:
        super().__init__()
        self.halves: list[str] = []

    def readConnectionLost(self) -> None:
        self.halves.append("read")

    def writeConnectionLost(self) -> None:
        self.halves.append("write")


@implementer(IPushProducer)
class PushProducer:
    """A streaming producer that records what its consumer asks of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


@implementer(IPullProducer)
class PullProducer:
    """A pull producer that writes one chunk to its consumer each time it is asked."""

    def __init__(self, consumer: MemoryTransport, chunks: list[bytes]) -> None:
        self.consumer = consumer
        self.chunks = chunks
        self.asked = 0

    def resumeProducing(self) -> None:
        self.asked += 1
        if self.chunks:
            self.consumer.write(self.chunks.pop(0))

    def stopProducing(self) -> None:
        self.chunks = []


def joined(server: Protocol | None = None, client: Protocol | None = None,
           clock: Clock | None = None) -> tuple[Recorder, Recorder, MemoryPump]:
    """Two protocols (recorders by default) joined in memory; the pump is already flushed."""
    server = Recorder() if server is None else server
    client = Recorder() if client is None else client
    pump = connect_protocols(server, client, clock)
    return server, client, pump  # type: ignore[return-value]


class MemoryTransportTests(SynchronousTestCase):
    """The transport is one a protocol (and Twisted's TLS) can take for Twisted's TCP one."""

    def test_interfaces(self) -> None:
        """It provides ITCPTransport, IConsumer and IPushProducer, all of them."""
        server, _, _ = joined()
        for interface in (ITCPTransport, IConsumer, IPushProducer):
            self.assertTrue(verifyObject(interface, server.transport))

    def test_addresses(self) -> None:
        """getHost and getPeer are the IPv4 addresses it was given, crossed at the peer."""
        server, client, _ = joined()
        self.assertEqual((server.transport.getHost(), server.transport.getPeer()),
                         (SERVER_ADDRESS, CLIENT_ADDRESS))
        self.assertEqual((client.transport.getHost(), client.transport.getPeer()),
                         (CLIENT_ADDRESS, SERVER_ADDRESS))

    def test_write_takes_bytes_only(self) -> None:
        """A str is refused with TypeError, as by Twisted's transports; nothing is sent."""
        server, client, pump = joined()
        self.assertRaises(TypeError, client.transport.write, "text")
        self.assertRaises(TypeError, client.transport.writeSequence, [b"ok", "text"])
        pump.flush()
        self.assertEqual(server.data, b"")

    def test_second_producer_refused(self) -> None:
        """Registering a producer while one is registered raises RuntimeError."""
        _, client, _ = joined()
        client.transport.registerProducer(PushProducer(), True)
        self.assertRaises(RuntimeError, client.transport.registerProducer, PushProducer(), True)


class MemoryPumpDeliveryTests(SynchronousTestCase):
    """Bytes move only when the pump runs, in order, both ways."""

    def test_nothing_moves_without_the_pump(self) -> None:
        """A write is buffered until pump() or flush()."""
        server, client, pump = joined()
        client.transport.write(b"hello")
        self.assertEqual(server.chunks, [])
        self.assertTrue(pump.flush())
        self.assertEqual(server.data, b"hello")
        self.assertFalse(pump.flush())

    def test_both_directions_in_order(self) -> None:
        """Each side reads what the other wrote, in the order written (write and
        writeSequence alike)."""
        server, client, pump = joined()
        client.transport.write(b"one ")
        server.transport.write(b"uno ")
        client.transport.writeSequence([b"two ", b"three"])
        server.transport.writeSequence([b"dos ", b"tres"])
        pump.flush()
        self.assertEqual(server.data, b"one two three")
        self.assertEqual(client.data, b"uno dos tres")

    def test_reads_are_bounded(self) -> None:
        """A large buffer arrives in reads of at most READ_SIZE bytes, whole and in order."""
        server, client, pump = joined()
        data = bytes(range(256)) * (3 * READ_SIZE // 256) + b"tail"
        client.transport.write(data)
        pump.pump()
        self.assertEqual([len(chunk) for chunk in server.chunks],
                         [READ_SIZE, READ_SIZE, READ_SIZE, 4])
        self.assertEqual(server.data, data)

    def test_an_answer_waits_for_the_next_turn(self) -> None:
        """What a side writes while reading crosses on the next turn, not the same one."""

        class Answering(Recorder):
            def dataReceived(self, data: bytes) -> None:
                super().dataReceived(data)
                self.transport.write(b"re: " + data)

        server, client, pump = joined(server=Answering())
        client.transport.write(b"ping")
        self.assertTrue(pump.pump())
        self.assertEqual((server.data, client.data), (b"ping", b""))
        self.assertTrue(pump.pump())
        self.assertEqual(client.data, b"re: ping")
        self.assertFalse(pump.pump())

    def test_pump_runs_the_clocks_due_calls(self) -> None:
        """Each turn runs the clock's zero-delay calls first; time does not pass."""
        clock = Clock()
        _, _, pump = joined(clock=clock)
        ran: list[float] = []
        clock.callLater(0, lambda: ran.append(clock.seconds()))
        clock.callLater(1, lambda: ran.append(clock.seconds()))
        pump.pump()
        self.assertEqual(ran, [0.0])

    def test_flush_gives_up_on_endless_talk(self) -> None:
        """Two protocols that answer each other forever make flush raise, not hang."""

        class Echo(Recorder):
            def dataReceived(self, data: bytes) -> None:
                self.transport.write(data)

        _, client, pump = joined(Echo(), Echo())
        client.transport.write(b"again")
        self.assertRaises(RuntimeError, pump.flush, 50)

    def test_paused_reader_reads_nothing(self) -> None:
        """Between pauseProducing and resumeProducing a side reads nothing; then all of it."""
        server, client, pump = joined()
        server.transport.pauseProducing()
        client.transport.write(b"held")
        self.assertFalse(pump.flush())
        self.assertEqual(server.chunks, [])
        server.transport.resumeProducing()
        pump.flush()
        self.assertEqual(server.data, b"held")

    def test_pause_mid_read_keeps_the_rest_first(self) -> None:
        """A reader that pauses in dataReceived gets the rest, before anything newer, later."""

        class Pausing(Recorder):
            def dataReceived(self, data: bytes) -> None:
                super().dataReceived(data)
                self.transport.pauseProducing()

        server, client, pump = joined(server=Pausing())
        data = b"a" * READ_SIZE + b"b" * 10
        client.transport.write(data)
        pump.flush()
        self.assertEqual(server.data, b"a" * READ_SIZE)
        client.transport.write(b"c")
        server.transport.resumeProducing()
        pump.pump()
        server.transport.resumeProducing()
        pump.pump()
        self.assertEqual(server.data, data + b"c")

    def test_an_error_in_a_protocol_drops_its_connection(self) -> None:
        """
        An exception from dataReceived is logged and drops that side's connection with it
        as the reason, as Twisted's reactor does; the peer sees a clean close.
        """

        class Broken(Recorder):
            def dataReceived(self, data: bytes) -> None:
                raise ValueError("bad input")

        server, client, pump = joined(server=Broken())
        client.transport.write(b"x")
        pump.flush()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertIs(server.lost_with(), ValueError)
        self.assertIs(client.lost_with(), ConnectionDone)


class MemoryPumpCloseTests(SynchronousTestCase):
    """Closes reach both sides, with the reasons Twisted's TCP transport gives."""

    def test_lose_connection_sends_then_closes(self) -> None:
        """What was written before loseConnection arrives; then both sides see a clean close."""
        for closer in ("server", "client"):
            server, client, pump = joined()
            sides = {"server": server, "client": client}
            other = sides["client" if closer == "server" else "server"]
            sides[closer].transport.write(b"last words")
            sides[closer].transport.loseConnection()
            self.assertIsNone(server.lost_with())
            pump.flush()
            self.assertEqual(other.data, b"last words", closer)
            self.assertIs(server.lost_with(), ConnectionDone, closer)
            self.assertIs(client.lost_with(), ConnectionDone, closer)
            self.assertTrue(server.transport.disconnected and client.transport.disconnected)
            self.assertFalse(server.transport.connected)

    def test_abort_drops_the_buffer(self) -> None:
        """
        abortConnection drops what was buffered: the aborting side sees ConnectionAborted,
        its peer ConnectionLost (a reset), and neither reads another byte.
        """
        for closer in ("server", "client"):
            server, client, pump = joined()
            sides = {"server": server, "client": client}
            other = sides["client" if closer == "server" else "server"]
            sides[closer].transport.write(b"never sent")
            other.transport.write(b"never read")
            sides[closer].transport.abortConnection()
            pump.flush()
            self.assertEqual(server.chunks + client.chunks, [], closer)
            self.assertIs(sides[closer].lost_with(), ConnectionAborted, closer)
            self.assertIs(other.lost_with(), ConnectionLost, closer)

    def test_writes_after_close_are_dropped(self) -> None:
        """Once closed, a transport takes writes and drops them."""
        server, client, pump = joined()
        client.transport.loseConnection()
        pump.flush()
        client.transport.write(b"late")
        server.transport.write(b"late")
        self.assertFalse(pump.flush())
        self.assertEqual(server.chunks + client.chunks, [])

    def test_closing_with_unread_bytes_resets_the_peer(self) -> None:
        """
        A side that closes stops reading; if the peer's bytes are still unread when it
        closes, the peer sees a reset (ConnectionLost), not a clean close.
        """
        server, client, pump = joined()
        server.transport.loseConnection()
        client.transport.write(b"unread")
        pump.flush()
        self.assertEqual(server.chunks, [])
        self.assertIs(server.lost_with(), ConnectionDone)
        self.assertIs(client.lost_with(), ConnectionLost)

    def test_paused_reader_sees_the_close_when_it_reads(self) -> None:
        """The end of the input, like bytes, reaches a paused reader once it reads again."""
        server, client, pump = joined()
        server.transport.pauseProducing()
        client.transport.loseConnection()
        pump.flush()
        self.assertIs(client.lost_with(), ConnectionDone)
        self.assertIsNone(server.lost_with())
        server.transport.resumeProducing()
        pump.flush()
        self.assertIs(server.lost_with(), ConnectionDone)

    def test_half_close_closes_a_plain_peer(self) -> None:
        """
        loseWriteConnection: the peer reads what was written, then the end of its input; a
        protocol that takes no half-close is closed cleanly, and so is the half-closer.
        """
        server, client, pump = joined()
        client.transport.write(b"goodbye")
        client.transport.loseWriteConnection()
        pump.flush()
        self.assertEqual(server.data, b"goodbye")
        self.assertIs(server.lost_with(), ConnectionDone)
        self.assertIs(client.lost_with(), ConnectionDone)

    def test_half_close_keeps_reading(self) -> None:
        """
        A half-closeable peer gets readConnectionLost and can still answer; the half-closer
        gets writeConnectionLost, reads the answer, and both close when the peer does.
        """
        server, client, pump = joined(HalfCloser(), HalfCloser())
        client.transport.write(b"question")
        client.transport.loseWriteConnection()
        pump.flush()
        self.assertEqual((server.halves, client.halves), (["read"], ["write"]))
        self.assertEqual(server.reasons + client.reasons, [])
        client.transport.write(b"dropped: the write side is closed")
        server.transport.write(b"answer")
        server.transport.loseConnection()
        pump.flush()
        self.assertEqual((server.data, client.data), (b"question", b"answer"))
        self.assertIs(server.lost_with(), ConnectionDone)
        self.assertEqual(client.halves, ["write", "read"])
        client.transport.loseConnection()
        pump.flush()
        self.assertIs(client.lost_with(), ConnectionDone)


class MemoryPumpProducerTests(SynchronousTestCase):
    """Producers on a transport are paused and resumed as Twisted's TCP transport does."""

    def test_streaming_producer_paused_past_the_buffer_size(self) -> None:
        """
        A streaming producer is paused once more than bufferSize bytes wait, and resumed
        when the pump has delivered them all.
        """
        server, client, pump = joined()
        producer = PushProducer()
        client.transport.registerProducer(producer, True)
        client.transport.write(b"x" * client.transport.bufferSize)
        self.assertEqual(producer.calls, [])
        client.transport.write(b"x")
        client.transport.write(b"x")
        self.assertEqual(producer.calls, ["pause"])
        pump.flush()
        self.assertEqual(producer.calls, ["pause", "resume"])
        self.assertEqual(len(server.data), client.transport.bufferSize + 2)

    def test_reader_that_does_not_read_keeps_the_producer_paused(self) -> None:
        """A peer that pauses its reading holds the writer's producer paused until it reads."""
        server, client, pump = joined()
        producer = PushProducer()
        client.transport.registerProducer(producer, True)
        server.transport.pauseProducing()
        client.transport.write(b"x" * (client.transport.bufferSize + 1))
        pump.flush()
        self.assertEqual(producer.calls, ["pause"])
        server.transport.resumeProducing()
        pump.flush()
        self.assertEqual(producer.calls, ["pause", "resume"])

    def test_pull_producer_asked_after_each_drain(self) -> None:
        """
        A pull producer is asked at once, then each time its bytes have been delivered; a
        loseConnection waits until it is unregistered.
        """
        server, client, pump = joined()
        producer = PullProducer(client.transport, [b"1", b"2", b"3"])
        client.transport.registerProducer(producer, False)
        client.transport.loseConnection()
        pump.flush()
        self.assertEqual(server.data, b"123")
        self.assertEqual(producer.asked, 4)
        self.assertIsNone(client.lost_with())
        client.transport.unregisterProducer()
        pump.flush()
        self.assertIs(client.lost_with(), ConnectionDone)

    def test_producer_stopped_when_the_connection_ends(self) -> None:
        """A producer still registered when the connection ends is stopped."""
        _, client, pump = joined()
        producer = PushProducer()
        client.transport.registerProducer(producer, True)
        client.transport.abortConnection()
        pump.flush()
        self.assertEqual(producer.calls, ["stop"])
        late = PushProducer()
        client.transport.registerProducer(late, True)
        self.assertEqual(late.calls, ["stop"])

    def test_channel_writer_queues_and_drains(self) -> None:
        """
        A channel sending more than the transport buffers queues the rest (its writer is
        paused); the pump delivers every message in order, and drain() fires.
        """
        clock = Clock()
        received = RecordingHandler()
        handlers = PacketHandleProtocol()
        handlers.set_handler(PacketType.MESSAGE, received)

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", handlers, always_trust, clock=clock)

        _, client, pump = connected_channels(make, make, clock)
        texts = [f"{index:04d}" + "." * 1000 for index in range(300)]
        for text in texts:
            client.send_message(text)
        self.assertFalse(client.is_writable)
        self.assertGreater(client.queued_bytes, 0)
        drained = client.drain()
        self.assertNoResult(drained)
        pump.flush()
        self.assertIs(self.successResultOf(drained), client)
        self.assertEqual([packet.message for packet in received.packets], texts)


class MemoryPumpChannelCloseTests(SynchronousTestCase):
    """PeerChannels close over the in-memory connection as over TCP."""

    def setUp(self) -> None:
        self.clock = Clock()

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", PacketHandleProtocol(), always_trust, clock=self.clock)

        self.server, self.client, self.pump = connected_channels(make, make, self.clock)

    def test_graceful_close(self) -> None:
        """A close half-closes after the goodbye: the peer reads it, and both sides close."""
        closed = self.client.close("done here")
        self.pump.flush()
        self.assertEqual(self.successResultOf(closed), "done here")
        self.assertEqual(self.server.close_reason, "disconnected by peer")
        self.assertTrue(self.client.transport.disconnected)
        self.assertTrue(self.server.transport.disconnected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_abort(self) -> None:
        """An abort drops the goodbye with the rest of the buffer: the peer sees a lost
        connection, as over TCP."""
        self.client.abort("broke the rules")
        self.pump.flush()
        self.assertEqual(self.client.close_reason, "broke the rules")
        self.assertTrue(self.server.is_closed)
        self.assertTrue((self.server.close_reason or "").startswith("connection lost"),
                        self.server.close_reason)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MemoryPumpTLSTests(SynchronousTestCase):
    """Twisted's TLS runs over the in-memory connection: the handshake, data, the close."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.server_tls = NodeTLS(Ed25519PrivateKey.generate(), self.clock)
        self.client_tls = NodeTLS(Ed25519PrivateKey.generate(), self.clock)
        self.server = Recorder()
        self.client = Recorder()
        server_side = TLSMemoryBIOFactory(
            self.server_tls, False, Factory.forProtocol(lambda: self.server), self.clock
        ).buildProtocol(CLIENT_ADDRESS)
        client_side = TLSMemoryBIOFactory(
            self.client_tls, True, Factory.forProtocol(lambda: self.client), self.clock
        ).buildProtocol(SERVER_ADDRESS)
        self.pump = connect_protocols(server_side, client_side, self.clock)

    def test_handshake_proves_both_keys(self) -> None:
        """The handshake completes while connecting; each side sees the other's key."""
        self.assertEqual(peer_public_key(self.server.transport), self.client_tls.public_key)
        self.assertEqual(peer_public_key(self.client.transport), self.server_tls.public_key)
        self.assertEqual(self.server.transport.getPeer(), CLIENT_ADDRESS)

    def test_data_both_ways(self) -> None:
        """Application bytes cross encrypted, both ways, large ones whole and in order."""
        big = bytes(range(256)) * 4096
        self.client.transport.write(b"hello")
        self.client.transport.write(big)
        self.server.transport.write(b"hi")
        self.pump.flush()
        self.assertEqual(self.server.data, b"hello" + big)
        self.assertEqual(self.client.data, b"hi")

    def test_close(self) -> None:
        """A TLS close (close_notify both ways, then TCP) ends both sides cleanly."""
        self.client.transport.write(b"bye")
        self.client.transport.loseConnection()
        self.pump.flush()
        self.assertEqual(self.server.data, b"bye")
        self.assertIs(self.server.lost_with(), ConnectionDone)
        self.assertIs(self.client.lost_with(), ConnectionDone)

    def test_abort(self) -> None:
        """
        A TLS abort aborts the connection beneath: the peer sees it reset.  (Twisted's TLS
        reports the end of an aborted TLS stream to its own side as ConnectionLost too.)
        """
        self.client.transport.abortConnection()
        self.pump.flush()
        self.assertTrue(self.pump.client_transport.disconnected)
        self.assertIs(self.client.lost_with(), ConnectionLost)
        self.assertIs(self.server.lost_with(), ConnectionLost)


class CompleteTCPConnectionTests(SynchronousTestCase):
    """complete_tcp_connection joins a memory reactor's pending connectTCP to its listener."""

    def test_networks_over_tls(self) -> None:
        """Two networks connect over TLS, trust each other, and exchange a message."""
        reactor = MemoryReactorClock()
        server, client = PeerNetwork(reactor), PeerNetwork(reactor)
        received = RecordingHandler()
        server.handlers.set_handler(PacketType.MESSAGE, received)
        server.listen("tcp:8051")
        connecting = client.connect(GenericPeer("127.0.0.1", 8051))
        pump = complete_tcp_connection(reactor, CLIENT_ADDRESS)
        assert pump is not None
        channel = self.successResultOf(connecting)
        self.assertTrue(channel.is_trusted)
        self.assertEqual(channel.peer.identifier, server.identifier)
        self.assertEqual(reactor.tcpClients, [])
        self.assertEqual(reactor.connectors, [])
        channel.send_message("over TLS")
        pump.flush()
        self.assertEqual([packet.message for packet in received.packets], ["over TLS"])
        [inbound] = server.active_peer_channels
        self.assertEqual(inbound.transport.getPeer(), CLIENT_ADDRESS)

    def test_refused_by_the_listener(self) -> None:
        """A listener whose factory returns None refuses: the client factory is told."""
        reactor = MemoryReactorClock()
        failed: list[Failure] = []
        client_factory = ClientFactory()
        client_factory.clientConnectionFailed = (  # type: ignore[method-assign]
            lambda connector, reason: failed.append(reason))
        refusing = Factory()
        refusing.buildProtocol = lambda addr: None  # type: ignore[method-assign]
        reactor.listenTCP(8051, refusing)
        reactor.connectTCP("127.0.0.1", 8051, client_factory)
        self.assertIsNone(complete_tcp_connection(reactor))
        [reason] = failed
        self.assertIsInstance(reason.value, ConnectionRefusedError)

    def test_client_factory_told_of_the_close(self) -> None:
        """When the connection ends, the client factory's clientConnectionLost is called."""
        reactor = MemoryReactorClock()
        lost: list[Failure] = []
        client_factory = ClientFactory.forProtocol(Recorder)
        client_factory.clientConnectionLost = (  # type: ignore[method-assign]
            lambda connector, reason: lost.append(reason))
        reactor.listenTCP(8051, Factory.forProtocol(Recorder))
        connector = reactor.connectTCP("127.0.0.1", 8051, client_factory)
        pump = complete_tcp_connection(reactor, client_address=CLIENT_ADDRESS)
        assert pump is not None
        self.assertIs(pump.client_transport.getPeer().port, 8051)  # type: ignore[attr-defined]
        self.assertEqual(pump.server_transport.getPeer(), CLIENT_ADDRESS)
        pump.server_transport.loseConnection()
        pump.flush()
        [reason] = lost
        self.assertIsInstance(reason.value, ConnectionDone)
        self.assertIsNotNone(connector)

    def test_no_listener(self) -> None:
        """A pending connection to a port nobody listens on is a LookupError."""
        reactor = MemoryReactorClock()
        reactor.connectTCP("127.0.0.1", 9999, ClientFactory.forProtocol(Recorder))
        self.assertRaises(LookupError, complete_tcp_connection, reactor)


class PublicAPIOnlyTests(SynchronousTestCase):
    """The supported module rests on public Twisted API only (issue 13)."""

    def test_imports_no_private_twisted(self) -> None:
        """No import of twisted.test, nor of a private module or name of Twisted."""
        source = Path(p2pnet_tx.testing.__file__).read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                module, names = "", [alias.name for alias in node.names]
            else:
                continue
            for name in [module, *names]:
                if not name.startswith("twisted") and module[:7] != "twisted":
                    continue
                self.assertNotIn("twisted.test", name)
                self.assertFalse(any(part.startswith("_") for part in name.split(".")), name)
