"""
Tests of the echo handlers in echo.py, written as a user of p2pnet_tx writes them
(docs/tutorials/testing.md): channels joined in memory (plaintext, so C{always_trust}) and
networks joined in memory (over TLS, with key trust), time on a Clock, no sockets and no
sleeps.  tests/test_docs_examples.py runs them.
"""

from __future__ import annotations

from typing import Any

from echo import ECHO, delayed_echo, echo, strict_echo
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.testing import (
    MemoryPump,
    RecordingHandler,
    complete_tcp_connection,
    connected_channels,
)
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire import get_codec


def echo_pair(
    handler: Any, clock: Clock
) -> tuple[PeerChannel, PeerChannel, MemoryPump, RecordingHandler]:
    """
    Join two trusted channels in memory (plaintext: bare channels run no TLS, so they trust
    with C{always_trust}): the server answers messages with C{handler}, the client records
    the answers.

    @return: C{(server, client, pump, answers)}.
    """
    server_handlers = PacketHandleProtocol()
    server_handlers.set_handler(PacketType.MESSAGE, handler)
    answers = RecordingHandler()
    client_handlers = PacketHandleProtocol()
    client_handlers.set_handler(PacketType.MESSAGE, answers)
    server, client, pump = connected_channels(
        lambda: PeerChannel("p2pnet", server_handlers, always_trust, clock=clock),
        lambda: PeerChannel("p2pnet", client_handlers, always_trust, clock=clock),
        clock,
    )
    return server, client, pump, answers


def texts(recorder: RecordingHandler) -> list[str]:
    """The text of each message C{recorder} got."""
    return [packet.message for packet in recorder.packets]


class EchoTests(SynchronousTestCase):
    """echo answers every message but an echo."""

    def test_answers(self) -> None:
        """A message comes back after "echo: "."""
        _, client, pump, answers = echo_pair(echo, Clock())
        client.send_message("hello")
        pump.flush()
        self.assertEqual(texts(answers), ["echo: hello"])

    def test_never_answers_an_echo(self) -> None:
        """An echo is not answered: two echo services do not loop."""
        server, client, pump, answers = echo_pair(echo, Clock())
        client.send_message(ECHO + "hello")
        pump.flush()
        self.assertEqual(answers.calls, [])
        self.assertEqual(server.counters["packets_in.Message"], 1)


class StrictEchoTests(SynchronousTestCase):
    """A handler that raises: the error is logged and counted, the channel stays open."""

    def test_error_is_logged_and_counted(self) -> None:
        """An empty message makes strict_echo raise; the next message is still answered."""
        server, client, pump, answers = echo_pair(strict_echo, Clock())
        client.send_message("")
        pump.flush()
        self.assertEqual(server.counters["handler_errors"], 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        client.send_message("still there?")
        pump.flush()
        self.assertEqual(texts(answers), ["echo: still there?"])


class DelayedEchoTests(SynchronousTestCase):
    """A handler that takes time: its Deferred runs on the channel's clock."""

    def test_answers_later(self) -> None:
        """Nothing comes back before the delay has passed on the clock; then the echo does."""
        clock = Clock()
        _, client, pump, answers = echo_pair(delayed_echo(2.0), clock)
        client.send_message("hello")
        pump.flush()
        clock.advance(1.9)
        pump.flush()
        self.assertEqual(answers.calls, [])
        clock.advance(0.1)
        pump.flush()
        self.assertEqual(texts(answers), ["echo: hello"])

    def test_closing_cancels_the_handler(self) -> None:
        """A channel that closes cancels its pending handlers: no answer, no error, no timer."""
        clock = Clock()
        server, client, pump, answers = echo_pair(delayed_echo(2.0), clock)
        client.send_message("hello")
        pump.flush()
        closed = server.close("bye")
        pump.flush()
        self.assertEqual(self.successResultOf(closed), "bye")
        clock.advance(2.0)
        self.assertEqual(answers.calls, [])
        self.assertEqual(server.counters["handler_errors"], 0)
        self.assertEqual(clock.getDelayedCalls(), [])


class HostileInputTests(SynchronousTestCase):
    """Bytes a peer could send, fed straight to a channel on a StringTransport."""

    def setUp(self) -> None:
        handlers = PacketHandleProtocol()
        handlers.set_handler(PacketType.MESSAGE, echo)
        self.channel = PeerChannel("p2pnet", handlers, always_trust, clock=Clock())
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        self.codec = get_codec("p2pnet")

    def test_byte_at_a_time(self) -> None:
        """A frame that arrives one byte at a time is answered once, when it is complete."""
        for byte in self.codec.encode(PureMessagePacket("slowly")):
            self.channel.dataReceived(bytes([byte]))
        [answer] = self.codec.decoder().feed(self.transport.value())
        self.assertEqual(answer.message, "echo: slowly")

    def test_garbage_drops_the_peer(self) -> None:
        """
        A frame that is no packet is counted as malformed and never handled; it is
        misbehaviour, so the channel says goodbye and drops the connection.
        """
        body = b'{"not": "a packet"'
        self.channel.dataReceived(len(body).to_bytes(4, "big") + body)
        self.assertEqual(self.channel.counters["malformed"], 1)
        [goodbye] = self.codec.decoder().feed(self.transport.value())
        self.assertEqual(goodbye.kind, PacketType.DISCONNECT)
        self.assertTrue(self.transport.disconnecting)


class EchoNetworkTests(SynchronousTestCase):
    """Two whole networks on one memory reactor: TLS, key trust and all, without a socket."""

    def test_networks_exchange_an_echo(self) -> None:
        """
        The client trusts the server under the identifier its TLS handshake proved; the
        client's message reaches the server's handler and the echo comes back.
        """
        reactor = MemoryReactorClock()
        server, client = PeerNetwork(reactor), PeerNetwork(reactor)
        server.handlers.set_handler(PacketType.MESSAGE, echo)
        answers = RecordingHandler()
        client.handlers.set_handler(PacketType.MESSAGE, answers)
        server.listen("tcp:8051")
        connecting = client.connect(GenericPeer("127.0.0.1", 8051))
        pump = complete_tcp_connection(reactor)
        pump.flush()
        channel = self.successResultOf(connecting)
        self.assertTrue(channel.is_trusted)
        self.assertEqual(channel.peer.identifier, server.identifier)
        self.assertEqual(channel.properties["public_key"], server.tls.public_key)
        channel.send_message("hello")
        pump.flush()
        self.assertEqual(texts(answers), ["echo: hello"])
