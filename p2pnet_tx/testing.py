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
with the other, and join the two with L{complete_tcp_connection}.  The tutorial "Testing your
handlers", in the documentation, shows both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.test.iosim import FakeTransport, IOPump, connectedServerAndClient

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.packets import Packet

SERVER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 8051)
CLIENT_ADDRESS = IPv4Address("TCP", "127.0.0.2", 40001)


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


def connected_channels(
    make_server: Callable[[], PeerChannel],
    make_client: Callable[[], PeerChannel],
    clock: Clock | None = None,
) -> tuple[PeerChannel, PeerChannel, IOPump]:
    """
    Connect two channels in memory: C{make_server()} at 127.0.0.1:8051, C{make_client()} at
    127.0.0.2:40001.

    @param clock: advanced a little by every C{pump.pump()}; give it to both channels too.
    @return: C{(server, client, pump)}; C{pump.flush()} moves bytes until both sides are quiet.
    """

    def server_transport(protocol: PeerChannel) -> FakeTransport:
        return FakeTransport(protocol, True, SERVER_ADDRESS, CLIENT_ADDRESS)

    def client_transport(protocol: PeerChannel) -> FakeTransport:
        return FakeTransport(protocol, False, CLIENT_ADDRESS, SERVER_ADDRESS)

    client, server, pump = connectedServerAndClient(
        make_server, make_client, client_transport, server_transport, clock=clock
    )
    return server, client, pump


def complete_tcp_connection(
    reactor: Any,
    client_address: IPv4Address = CLIENT_ADDRESS,
    server_host: str = "127.0.0.1",
) -> IOPump | None:
    """
    Complete the oldest pending C{connectTCP} of a
    L{MemoryReactorClock <twisted.internet.testing.MemoryReactorClock>} against the listener
    on the same port, with real IPv4 addresses on both transports (iosim's own completer uses
    placeholder addresses, which peers cannot be made of).

    If the listening factory refuses the connection (C{buildProtocol} returns None), the client
    is told the connection was refused and C{None} is returned.

    @param reactor: a L{twisted.internet.testing.MemoryReactorClock} both sides use.
    @param client_address: the address the server sees the client at.
    @return: a pump joining the two protocols, or None.
    @raise LookupError: if no pending connection has a listener on its port.
    """
    from twisted.internet.error import ConnectionRefusedError
    from twisted.python.failure import Failure
    from twisted.test.iosim import connect

    for index, (host, port, client_factory, _timeout, _bind) in enumerate(reactor.tcpClients):
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
            return connect(
                server_protocol,
                FakeTransport(server_protocol, True, server_address, client_address),
                client_protocol,
                FakeTransport(client_protocol, False, client_address, server_address),
                clock=reactor,
            )
    raise LookupError("no pending connection has a listener on its port")
