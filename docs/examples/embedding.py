"""
Embedding a p2pnet_tx node in a Twisted application.

C{make_node} builds a node that greets every peer it comes to trust and logs the messages it
receives; C{node.tac} beside this file runs it with C{twistd -ny docs/examples/node.tac}.
The tests import this module and run two such nodes against each other in memory, their
TLS handshake included.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.service import PeerNetworkService

log = Logger(namespace="example")


def make_node(
    reactor: Any, name: str | None = None, listen: str = "tcp:8051",
    peers: Iterable[GenericPeer] = (),
) -> PeerNetworkService:
    """
    Return a node service: attach it to an Application, or start it yourself.  Its peers
    connect over TLS and know it by its key; C{name} is only what it shows them.
    """
    network = PeerNetwork(reactor, display_name=name)
    received: list[str] = []

    def on_message(channel: PeerChannel, packet: PureMessagePacket) -> None:
        received.append(packet.message)
        log.info("{peer} says {text}", peer=channel.peer, text=packet.message)

    def greet(channel: PeerChannel) -> None:
        channel.send_message(f"hello from {network.display_name or network.identifier}")

    network.handlers.set_handler(PacketType.MESSAGE, on_message)
    network.peer_trusted.add(greet)
    service = PeerNetworkService(network, listen=listen, peers=peers)
    service.received = received  # type: ignore[attr-defined]
    return service
