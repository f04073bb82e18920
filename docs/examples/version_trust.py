"""
Trust protocols written step by step in docs/tutorials/custom-trust.md:

  - C{loopback_only}: decides at once, from the peer's address;
  - C{version_trust(version)}: a small handshake, both sides announce their application's
    protocol version;
  - C{all_of(*protocols)}: trusts a peer only if every protocol given does, e.g. key trust
    and the version check: C{all_of(key_trust(), version_trust(3))}.

On a network over TLS (the default) these run once the peer's TLS handshake has proved its key,
and their messages travel inside that TLS session.  Over plaintext TCP (C{transport="tcp"})
nothing binds them to the connection: anyone on the path can read or change them.

The tests in tests/test_docs_examples.py run the first two between two channels joined in
memory, and C{all_of} with key trust between two networks that run TLS in memory.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from p2pnet_tx.channel import PeerChannel, TrustProtocol
from p2pnet_tx.packets import Packet, PureMessagePacket


def loopback_only(channel: PeerChannel) -> Deferred[bool]:
    """Trust the peers that connect from this host, nobody else."""
    address = channel.peer.address if channel.peer is not None else "0.0.0.0"
    return succeed(ipaddress.ip_address(address).is_loopback)


VERSION_PREFIX = "myapp-version "


def version_trust(version: int) -> TrustProtocol:
    """Return a trust protocol that trusts the peers announcing protocol C{version}."""

    def trust(channel: PeerChannel) -> Deferred[bool]:
        def observe(channel: PeerChannel, packet: Packet) -> bool:
            if not (isinstance(packet, PureMessagePacket)
                    and packet.message.startswith(VERSION_PREFIX)):
                return False  # not ours: on to the trust gate and the handlers
            if not decided.called:
                decided.callback(packet.message[len(VERSION_PREFIX):] == str(version))
            return True  # ours: the application never sees it

        def stop_observing(result: Any) -> Any:
            if observe in channel.on_data_received:
                channel.on_data_received.remove(observe)
            return result

        decided: Deferred[bool] = Deferred()
        decided.addBoth(stop_observing)  # decided, cancelled at the deadline, or closed
        channel.on_data_received.add(observe)
        channel.send_message(f"{VERSION_PREFIX}{version}")
        return decided

    return trust


def all_of(*protocols: Callable[[PeerChannel], Any]) -> TrustProtocol:
    """Return a trust protocol that runs C{protocols} side by side and trusts a peer only if
    every one of them does."""

    async def trust(channel: PeerChannel) -> bool:
        running = [maybeDeferred(protocol, channel) for protocol in protocols]
        try:
            for decision in running:
                if await decision is not True:
                    return False
            return True
        finally:
            for decision in running:
                decision.cancel()  # stops the ones still running; no-op for the others
                decision.addErrback(lambda failure: None)  # their outcome no longer matters

    return trust
