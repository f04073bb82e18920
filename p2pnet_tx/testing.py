# -*- test-case-name: tests.test_testing -*-
"""
Helpers for testing code built on p2pnet_tx, without sockets: channels joined in memory,
handlers that record what they get.
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

    :param clock: advanced a little by every C{pump.pump()}; give it to both channels too.
    :return: C{(server, client, pump)}; C{pump.flush()} moves bytes until both sides are quiet.
    """

    def server_transport(protocol: PeerChannel) -> FakeTransport:
        return FakeTransport(protocol, True, SERVER_ADDRESS, CLIENT_ADDRESS)

    def client_transport(protocol: PeerChannel) -> FakeTransport:
        return FakeTransport(protocol, False, CLIENT_ADDRESS, SERVER_ADDRESS)

    client, server, pump = connectedServerAndClient(
        make_server, make_client, client_transport, server_transport, clock=clock
    )
    return server, client, pump
