"""
Your first node, in Python: two nodes in one process, on the loopback interface.  The first
listens, the second connects over TLS 1.3, each proving the Ed25519 key its identifier derives
from; key trust (the default) trusts the proven keys, and the second greets the first.  Used in
docs/tutorials/first-node.md.

Run it with:  python docs/examples/first_node.py
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer


async def main(reactor: Any) -> str:
    """Start two nodes, send one message from the second to the first, stop both."""
    first = PeerNetwork(reactor)
    second = PeerNetwork(reactor)

    greeting: Deferred[str] = Deferred()

    def on_message(channel: PeerChannel, packet: PureMessagePacket) -> None:
        if not greeting.called:
            greeting.callback(f"{channel.peer.identifier} says {packet.message!r}")

    first.handlers.set_handler(PacketType.MESSAGE, on_message)

    # Port 0: the system picks a free port; port.getHost() tells which.
    port = await first.listen("tcp:0:interface=127.0.0.1")
    try:
        channel = await second.connect(GenericPeer("127.0.0.1", port.getHost().port))
        await channel.when_trusted()
        channel.send_message("hello")
        heard = await greeting
        print(f"{first.identifier} heard: {heard}")
        return heard
    finally:
        await second.close()
        await first.close()


if __name__ == "__main__":
    react(main)
