"""
A custom trust protocol: trust peers that prove they know a shared secret.

Each side sends a fresh random challenge; each answers the other's challenge with
HMAC-SHA256(secret, challenge + own challenge).  Binding the answerer's own challenge into the
MAC, and refusing a challenge equal to our own, stops a peer from reflecting our challenge back
to us to make us compute its answer.  Used in docs/trust.md and exercised by tests/test_trust.py.

On a network over TLS (the default) it runs once the peer's TLS handshake has proved its key,
and its messages travel inside that session: the secret decides which proven keys to trust.
Over plaintext TCP (C{transport="tcp"}) it is not bound to the connection: it shows that the
peer knew the secret when it answered, but anyone on the path can read what follows, change
it, or speak in the peer's place after the handshake.

    channel = PeerChannel("p2pnet", handlers, shared_secret_trust(b"network key"), clock=reactor)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.packets import Packet, PureMessagePacket

CHALLENGE, ANSWER = "hmac-trust challenge ", "hmac-trust answer "


def _challenge(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def shared_secret_trust(
    secret: bytes,
) -> Callable[[PeerChannel], Coroutine[Any, Any, bool]]:
    """Return a trust protocol that trusts the peers that know C{secret}."""

    def mac(challenge: bytes, answerer: bytes) -> str:
        return hmac.new(secret, challenge + answerer, hashlib.sha256).hexdigest()

    async def trust(channel: PeerChannel) -> bool:
        ours = os.urandom(16)
        theirs: list[bytes] = []  # the peer's first challenge, once received
        answer: Deferred[str] = Deferred()

        def observe(channel: PeerChannel, packet: Packet) -> bool:
            text = packet.message if isinstance(packet, PureMessagePacket) else ""
            if text.startswith(CHALLENGE) and not theirs:
                theirs.append(_challenge(text[len(CHALLENGE) :]))
                if len(theirs[0]) == 16 and theirs[0] != ours:
                    channel.send_message(ANSWER + mac(theirs[0], ours))
            elif text.startswith(ANSWER) and not answer.called:
                answer.callback(text[len(ANSWER) :])
            else:
                return False
            return True  # A handshake packet: keep it from the handlers.

        channel.on_data_received.add(observe)
        try:
            channel.send_message(CHALLENGE + ours.hex())
            received = await answer  # The channel cancels this at its deadline or on close.
        finally:
            if observe in channel.on_data_received:
                channel.on_data_received.remove(observe)
        if not theirs or len(theirs[0]) != 16 or theirs[0] == ours:
            return False
        expected = mac(ours, theirs[0]).encode()
        return hmac.compare_digest(received.encode("utf-8", "replace"), expected)

    return trust
