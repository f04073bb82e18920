# -*- test-case-name: tests.test_testing -*-
"""
Helpers for testing code built on p2pnet_tx, without sockets: channels joined in memory,
handlers that record what they get.

Two channels on one L{Clock <twisted.internet.task.Clock>}, joined in memory::

    from twisted.internet.task import Clock
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.handlers import PacketHandleProtocol
    from p2pnet_tx.packets import PacketType
    from p2pnet_tx.testing import RecordingHandler, connected_channels
    from p2pnet_tx.trust import always_trust

    clock = Clock()
    handlers = PacketHandleProtocol()
    received = RecordingHandler()
    handlers.set_handler(PacketType.MESSAGE, received)

    def make() -> PeerChannel:
        return PeerChannel("p2pnet", handlers, always_trust, clock=clock)

    server, client, pump = connected_channels(make, make, clock)
    client.send_message("hello")
    pump.flush()
    assert [packet.message for packet in received.packets] == ["hello"]

Whole networks: give two L{PeerNetwork <p2pnet_tx.network.PeerNetwork>}s the same
L{MemoryReactorClock <twisted.internet.testing.MemoryReactorClock>}, listen with one, connect
with the other, and join the two with L{complete_tcp_connection}; the networks run their real
TLS 1.3 over it, in memory.  The tutorial "Testing your handlers", in the documentation, shows
both.

This module is supported public API, with tests of its own, and it rests on public Twisted
API only.  What it offers:
  - L{connected_channels}: two channels joined in memory, and a L{MemoryPump};
  - L{complete_tcp_connection}: a pending C{connectTCP} of a memory reactor joined to its
    listener (whole networks, TLS and all);
  - L{connect_protocols}: any two Twisted protocols joined the same way;
  - L{MemoryTransport} and L{MemoryPump}: the in-memory TCP connection beneath all three;
  - L{RecordingHandler}: a packet handler that records what it gets.

A L{MemoryTransport} behaves as Twisted's TCP transport wherever a protocol can tell: bytes
arrive in order, in reads of at most L{READ_SIZE} bytes, only when the pump runs;
C{loseConnection} sends what is buffered and then closes (both sides get
L{ConnectionDone <twisted.internet.error.ConnectionDone>}); C{abortConnection} drops what is
buffered (L{ConnectionAborted <twisted.internet.error.ConnectionAborted>} here,
L{ConnectionLost <twisted.internet.error.ConnectionLost>} at the peer); C{loseWriteConnection}
half-closes; a streaming producer is paused while more than C{bufferSize} bytes wait and
resumed once they are delivered; a protocol that pauses the transport reads nothing until it
resumes it, so the peer's buffer fills.  What it does not model: kernel buffers (bytes wait
in the sender's buffer until the receiver reads them), time (a pump takes none), and the
network losing or delaying anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IHalfCloseableProtocol,
    ILoggingContext,
    IProtocol,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.packets import Packet

__all__ = [
    "CLIENT_ADDRESS",
    "MAX_TURNS",
    "READ_SIZE",
    "SERVER_ADDRESS",
    "MemoryPump",
    "MemoryTransport",
    "RecordingHandler",
    "complete_tcp_connection",
    "connect_protocols",
    "connected_channels",
]

SERVER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 8051)
"""Where L{connected_channels} puts the server."""

CLIENT_ADDRESS = IPv4Address("TCP", "127.0.0.2", 40001)
"""Where L{connected_channels} puts the client, and where L{complete_tcp_connection} does by
default."""

READ_SIZE = 64 * 1024
"""The most bytes one C{dataReceived} call gets, as from one read of Twisted's TCP transport."""

MAX_TURNS = 1000
"""How many turns L{MemoryPump.flush} takes, at most, before it gives up."""


class RecordingHandler:
    """
    A packet handler that records C{(channel, packet)} for every call; give it to
    C{handlers.set_handler(kind, RecordingHandler())}.
    """

    def __init__(self, result: Any = None) -> None:
        self.calls: list[tuple[PeerChannel, Packet]] = []
        self._result = result

    def __call__(self, channel: PeerChannel, packet: Packet) -> Any:
        self.calls.append((channel, packet))
        return self._result

    @property
    def packets(self) -> list[Packet]:
        """The packets received, in order."""
        return [packet for _, packet in self.calls]


def _must_be_bytes(data: object) -> None:
    if not isinstance(data, bytes):
        raise TypeError(f"a transport takes bytes, not {type(data).__name__}: {data!r:.60}")


@implementer(ITCPTransport, IConsumer, IPushProducer)
class MemoryTransport:
    """
    One end of an in-memory TCP connection: the C{transport} of a protocol joined by
    L{connect_protocols} (or L{connected_channels}, L{complete_tcp_connection}).  It only
    keeps state; the L{MemoryPump} joining two of them moves the bytes and closes them.

    As a consumer, it pauses a registered streaming producer once more than C{bufferSize}
    bytes wait to be delivered, and resumes it when they all are; a pull producer is asked
    for more each time the buffer has drained.  As a producer (of what it reads), it reads
    nothing between C{pauseProducing} and C{resumeProducing}.

    @ivar protocol: the protocol it delivers the peer's bytes to.
    @ivar bufferSize: the pause threshold (64 KiB, as Twisted's TCP transport).
    @ivar connected: whether the connection is open.
    @ivar disconnecting: whether C{loseConnection} or C{abortConnection} was called.
    @ivar disconnected: whether the connection is closed (the protocol's C{connectionLost} ran).
    @ivar producer: the registered producer, or C{None}.
    @ivar streamingProducer: whether C{producer} is a streaming (push) producer.
    @ivar producerPaused: whether this transport paused C{producer} and has not resumed it.
    """

    bufferSize = 64 * 1024

    def __init__(self, protocol: IProtocol, host: IAddress, peer: IAddress) -> None:
        """
        @param protocol: the protocol at this end.
        @param host: what C{getHost} returns (this end's address).
        @param peer: what C{getPeer} returns (the other end's address).
        """
        self.protocol = protocol
        self._host = host
        self._peer = peer
        self.connected = True
        self.disconnecting = False
        self.disconnected = False
        self.producer: Any = None
        self.streamingProducer = False
        self.producerPaused = False
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._reading = True
        self._aborting = False
        self._write_closing = False
        self._write_closed = False
        self._end_of_input = False
        self._no_delay = False
        self._keep_alive = False

    def __repr__(self) -> str:
        return f"<MemoryTransport {self._host} -> {self._peer} of {self.protocol!r}>"

    # -- ITransport -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """
        Buffer C{data} for the peer; it arrives when the pump runs.  Dropped once the
        connection or its write side is closed, or aborted.

        @raise TypeError: if C{data} is not C{bytes}.
        """
        _must_be_bytes(data)
        if data and self._takes_writes():
            self._buffer.append(data)
            self._buffered += len(data)
            self._pause_producer_if_full()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        Buffer each of C{data}, as L{write} does.

        @raise TypeError: if one of C{data} is not C{bytes}; then none is written.
        """
        chunks = list(data)
        for chunk in chunks:
            _must_be_bytes(chunk)
        if self._takes_writes():
            for chunk in chunks:
                if chunk:
                    self._buffer.append(chunk)
                    self._buffered += len(chunk)
            self._pause_producer_if_full()

    def loseConnection(self) -> None:
        """Stop reading; close once everything buffered is delivered (and no pull producer is
        registered)."""
        if not self.disconnected and not self.disconnecting:
            self.disconnecting = True
            self._reading = False

    def abortConnection(self) -> None:
        """Drop what is buffered and close on the pump's next turn; the peer sees a reset."""
        if not self.disconnected:
            self._aborting = True
            self.disconnecting = True
            self._reading = False
            self._drop_buffer()

    def loseWriteConnection(self) -> None:
        """Half-close: once everything buffered is delivered, the peer reads the end of its
        input.  This end goes on reading."""
        if not self.disconnected:
            self._write_closing = True

    def getPeer(self) -> IAddress:
        """The other end's address."""
        return self._peer

    def getHost(self) -> IAddress:
        """This end's address."""
        return self._host

    def getTcpNoDelay(self) -> bool:
        """The C{TCP_NODELAY} flag last set (it changes nothing here)."""
        return self._no_delay

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Record the C{TCP_NODELAY} flag."""
        self._no_delay = bool(enabled)

    def getTcpKeepAlive(self) -> bool:
        """The C{SO_KEEPALIVE} flag last set (it changes nothing here)."""
        return self._keep_alive

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Record the C{SO_KEEPALIVE} flag."""
        self._keep_alive = bool(enabled)

    def logPrefix(self) -> str:
        """The protocol's log prefix, as Twisted's TCP transport has it."""
        if ILoggingContext.providedBy(self.protocol):
            return f"{self.protocol.logPrefix()},memory"
        return f"{type(self.protocol).__name__},memory"

    # -- IConsumer ------------------------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        Register C{producer}; a pull producer is asked for data at once.  On a closed
        connection, the producer is stopped instead.

        @raise RuntimeError: if a producer is already registered.
        """
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer {self.producer!r} "
                "was never unregistered."
            )
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self.streamingProducer = bool(streaming)
        self.producerPaused = False
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        """Forget the producer (a pending close can then finish)."""
        self.producer = None
        self.producerPaused = False

    def stopConsuming(self) -> None:
        """Forget the producer and close, as Twisted's transports do."""
        self.unregisterProducer()
        self.loseConnection()

    # -- IPushProducer: what this end reads ------------------------------------------------------

    def pauseProducing(self) -> None:
        """Read nothing more until L{resumeProducing}; the peer's bytes wait in its buffer."""
        self._reading = False

    def resumeProducing(self) -> None:
        """Read again (unless closing)."""
        if not self.disconnecting and not self.disconnected:
            self._reading = True

    def stopProducing(self) -> None:
        """Close, as C{loseConnection}."""
        self.loseConnection()

    # -- For the pump ----------------------------------------------------------------------------

    def _takes_writes(self) -> bool:
        return not (self.disconnected or self._aborting or self._write_closed)

    def _pause_producer_if_full(self) -> None:
        if (
            self.producer is not None
            and self.streamingProducer
            and not self.producerPaused
            and self._buffered > self.bufferSize
        ):
            self.producerPaused = True
            self.producer.pauseProducing()

    def _take_buffer(self) -> bytes:
        data = b"".join(self._buffer)
        self._drop_buffer()
        return data

    def _drop_buffer(self) -> None:
        self._buffer = []
        self._buffered = 0

    def _reads(self) -> bool:
        return self._reading and not self.disconnected


class MemoryPump:
    """
    Joins two L{MemoryTransport}s: each turn (L{pump}) delivers what each end wrote to the
    other, resumes drained producers, and carries out closes.  Nothing moves between turns.

    A protocol callback that raises is handled as Twisted's reactor handles it: the error
    is logged (a trial test then fails unless it flushes it) and that end's connection is
    dropped with it as the reason.

    @ivar server_transport: the accepting end.
    @ivar client_transport: the connecting end.
    @ivar clock: a clock whose due calls each turn runs first (C{clock.advance(0)}), or None.
    """

    log = Logger()

    def __init__(
        self,
        server_transport: MemoryTransport,
        client_transport: MemoryTransport,
        clock: Clock | None = None,
        client_lost: Callable[[Failure], object] | None = None,
    ) -> None:
        """
        @param server_transport: the accepting end.
        @param client_transport: the connecting end.
        @param clock: see C{clock} above.
        @param client_lost: called with the reason after the client protocol's
            C{connectionLost} (L{complete_tcp_connection} tells the client factory).
        """
        self.server_transport = server_transport
        self.client_transport = client_transport
        self.clock = clock
        self._client_lost = client_lost
        self._moved = False

    def flush(self, max_turns: int = MAX_TURNS) -> bool:
        """
        Pump until a turn moves nothing.

        @param max_turns: how many turns to take at most.
        @return: whether anything moved.
        @raise RuntimeError: if the ends were still busy after C{max_turns} turns (two
            protocols that answer each other forever).
        """
        moved = False
        for _ in range(max_turns):
            if not self.pump():
                return moved
            moved = True
        raise RuntimeError(f"the connection was still busy after {max_turns} turns")

    def pump(self) -> bool:
        """
        Take one turn: run the clock's due calls, then, at each end, carry out an abort,
        deliver what the other end wrote (or the end of the input), resume a drained
        producer, and close or half-close once everything buffered is delivered.

        @return: whether anything moved (bytes, an end of input, a resumed producer, a close).
        """
        if self.clock is not None:
            self.clock.advance(0)
        self._moved = False
        server, client = self.server_transport, self.client_transport
        ends = ((server, client), (client, server))
        for end, other in ends:
            if end._aborting:
                self._lose(end, other, Failure(ConnectionAborted()), reset=True)
        # Both directions from one snapshot, as bytes in flight cross on a real connection.
        to_server = self._take(client, server)
        to_client = self._take(server, client)
        self._deliver(client, server, to_server)
        self._deliver(server, client, to_client)
        for end, other in ends:
            if end._end_of_input and end._reads() and not other._buffer:
                end._end_of_input = False
                self._moved = True
                self._input_ended(end, other)
        resumed = (self._resume_producer(server, client, bool(to_client)),
                   self._resume_producer(client, server, bool(to_server)))
        for (end, other), just_resumed in zip(ends, resumed, strict=True):
            if not just_resumed:
                self._finish_closing(end, other)
        return self._moved

    def _take(self, sender: MemoryTransport, receiver: MemoryTransport) -> bytes:
        if not sender._buffer or sender.disconnected:
            return b""
        if receiver.disconnected:
            # Bytes to a closed socket: the peer's kernel answers with a reset.
            self._lose(sender, receiver, Failure(ConnectionLost("connection reset by peer")))
            return b""
        if not receiver._reads():
            return b""
        return sender._take_buffer()

    def _deliver(self, sender: MemoryTransport, receiver: MemoryTransport, data: bytes) -> None:
        for offset in range(0, len(data), READ_SIZE):
            if not receiver._reads():
                if not receiver.disconnected and not sender.disconnected:
                    # The receiver paused or closed mid-way: the rest waits, first in line.
                    rest = data[offset:]
                    sender._buffer.insert(0, rest)
                    sender._buffered += len(rest)
                return
            self._moved = True
            self._call(receiver, sender, receiver.protocol.dataReceived,
                       data[offset:offset + READ_SIZE])

    def _input_ended(self, end: MemoryTransport, other: MemoryTransport) -> None:
        if IHalfCloseableProtocol.providedBy(end.protocol):
            self._call(end, other, end.protocol.readConnectionLost)
        else:
            self._lose(end, other, Failure(ConnectionDone()))

    def _resume_producer(self, end: MemoryTransport, other: MemoryTransport,
                         drained: bool) -> bool:
        producer = end.producer
        if end.disconnected or end._buffer or producer is None:
            return False
        if end.streamingProducer and not end.producerPaused:
            return False
        if not end.streamingProducer and not drained:
            return False
        end.producerPaused = False
        self._moved = True
        self._call(end, other, producer.resumeProducing)
        return True

    def _finish_closing(self, end: MemoryTransport, other: MemoryTransport) -> None:
        if end.disconnected:
            return
        if end._aborting:
            self._lose(end, other, Failure(ConnectionAborted()), reset=True)
        elif end._buffer:
            return
        elif end.disconnecting:
            # Twisted's TCP transport waits for a pull producer to unregister.
            if end.producer is None or end.streamingProducer:
                self._lose(end, other, Failure(ConnectionDone()))
        elif end._write_closing and not end._write_closed:
            end._write_closed = True
            self._moved = True
            other._end_of_input = True
            if IHalfCloseableProtocol.providedBy(end.protocol):
                self._call(end, other, end.protocol.writeConnectionLost)

    def _lose(self, end: MemoryTransport, other: MemoryTransport, reason: Failure,
              reset: bool = False) -> None:
        """Close C{end} with C{reason}; the other end reads the end of its input, or is reset
        (an abort)."""
        if end.disconnected:
            return
        self._moved = True
        end.disconnected = True
        end.connected = False
        end._reading = False
        end._drop_buffer()
        producer, end.producer = end.producer, None
        if producer is not None:
            self._call(end, other, producer.stopProducing)
        self._call(end, other, end.protocol.connectionLost, reason)
        if end is self.client_transport and self._client_lost is not None:
            self._call(end, other, self._client_lost, reason)
        if other.disconnected:
            return
        if reset:
            self._lose(other, end, Failure(ConnectionLost("connection reset by peer")))
        else:
            # The other end reads the end of its input; bytes it still sends get a reset.
            other._end_of_input = True

    def _call(self, end: MemoryTransport, other: MemoryTransport,
              function: Callable[..., object], *args: object) -> None:
        try:
            function(*args)
        except Exception:  # noqa: BLE001 -- as the reactor does: log it, drop the connection
            failure = Failure()
            self.log.failure("{function} raised; dropping the connection", failure,
                             function=getattr(function, "__qualname__", function))
            if not end.disconnected:
                self._lose(end, other, failure)


def connect_protocols(
    server: IProtocol,
    client: IProtocol,
    clock: Clock | None = None,
    server_address: IAddress = SERVER_ADDRESS,
    client_address: IAddress = CLIENT_ADDRESS,
) -> MemoryPump:
    """
    Join two protocols by an in-memory TCP connection: C{server.makeConnection} runs first,
    then C{client.makeConnection}, and the pump is flushed once (greetings, a TLS handshake).

    @param server: the accepting side, at C{server_address}.
    @param client: the connecting side, at C{client_address}.
    @param clock: each turn of the pump runs its due calls first; give it to the protocols.
    @return: the pump; C{pump.flush()} moves bytes until both sides are quiet.
    """
    return _connect(server, client, clock, server_address, client_address)


def _connect(
    server: IProtocol,
    client: IProtocol,
    clock: Clock | None,
    server_address: IAddress,
    client_address: IAddress,
    client_lost: Callable[[Failure], object] | None = None,
) -> MemoryPump:
    server_transport = MemoryTransport(server, server_address, client_address)
    client_transport = MemoryTransport(client, client_address, server_address)
    pump = MemoryPump(server_transport, client_transport, clock, client_lost)
    server.makeConnection(server_transport)
    client.makeConnection(client_transport)
    pump.flush()
    return pump


def connected_channels(
    make_server: Callable[[], PeerChannel],
    make_client: Callable[[], PeerChannel],
    clock: Clock | None = None,
) -> tuple[PeerChannel, PeerChannel, MemoryPump]:
    """
    Connect two channels in memory: C{make_client()} is called first, then
    C{make_server()}; the server is at L{SERVER_ADDRESS} (127.0.0.1:8051), the client at
    L{CLIENT_ADDRESS} (127.0.0.2:40001).  The connection is plaintext.

    @param clock: each C{pump.pump()} runs its due calls (C{advance(0)}); give it to both
        channels too.
    @return: C{(server, client, pump)}; C{pump.flush()} moves bytes until both sides are quiet.
    """
    client = make_client()
    server = make_server()
    pump = connect_protocols(server, client, clock)
    return server, client, pump


def complete_tcp_connection(
    reactor: Any,
    client_address: IPv4Address = CLIENT_ADDRESS,
    server_host: str = "127.0.0.1",
) -> MemoryPump | None:
    """
    Complete the oldest pending C{connectTCP} of a
    L{MemoryReactorClock <twisted.internet.testing.MemoryReactorClock>} against the listener
    on the same port (its C{tcpClients}, C{connectors} and C{tcpServers}), with real IPv4
    addresses on both transports.  The factories' protocols are joined as they are: a
    network's TLS wrappers run their TLS handshake over the connection.

    If the listening factory refuses the connection (C{buildProtocol} returns None), the client
    is told the connection was refused and C{None} is returned.  When the client's side
    closes, its factory's C{clientConnectionLost} is called, as a real connector does.

    @param reactor: a L{twisted.internet.testing.MemoryReactorClock} both sides use; the pump
        runs its due calls each turn.
    @param client_address: the address the server sees the client at.
    @param server_host: the host the client sees the server at.
    @return: a pump joining the two protocols, already flushed once, or None.
    @raise LookupError: if no pending connection has a listener on its port.
    """
    for index, (_host, port, client_factory, _timeout, _bind) in enumerate(reactor.tcpClients):
        for listen_port, server_factory, _backlog, _interface in reactor.tcpServers:
            if listen_port != port:
                continue
            connector = reactor.connectors[index]
            del reactor.tcpClients[index]
            del reactor.connectors[index]
            server_address = IPv4Address("TCP", server_host, port)
            server_protocol = server_factory.buildProtocol(client_address)
            if server_protocol is None:
                client_factory.clientConnectionFailed(
                    connector, Failure(ConnectionRefusedError("refused by the listener"))
                )
                return None
            client_protocol = client_factory.buildProtocol(server_address)
            refused_by_client = client_protocol is None
            if refused_by_client:
                # As Twisted's TCP client does: a stand-in protocol, and the connection closed.
                client_protocol = Protocol()
            pump = _connect(
                server_protocol, client_protocol, reactor, server_address, client_address,
                partial(client_factory.clientConnectionLost, connector),
            )
            if refused_by_client:
                pump.client_transport.loseConnection()
                pump.flush()
            return pump
    raise LookupError("no pending connection has a listener on its port")
