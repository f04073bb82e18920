# -*- test-case-name: tests.test_trust -*-
"""
Trust protocols: how a channel decides to trust its peer.

A trust protocol is a callable C{protocol(channel) -> Deferred[bool]} (a coroutine function will
do).  The channel runs it on connection, bounds it with its handshake deadline and cancels it
when the connection goes away.  It sees the peer's packets through C{channel.on_data_received}
(returning C{True} from the observer keeps a handshake packet away from the handlers), whatever
the trust gate says.

Shipped here:
  - L{key_trust}: the Ed25519 challenge-response handshake; the default.
  - L{ping_trust}: the reference implementation's "three pings" protocol, for interoperating
    with .NET peers.  It authenticates nothing.
  - L{always_trust} and L{never_trust}, for tests and closed networks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from automat import TypeMachineBuilder
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.packets import (
    DataPayloadFormat,
    DataTransmissionPacket,
    Packet,
    PureMessagePacket,
)

__all__ = [
    "KeyTrust",
    "always_trust",
    "identifier_for_public_key",
    "key_trust",
    "never_trust",
    "ping_trust",
    "public_key_bytes",
]

log = Logger(namespace="p2pnet_tx.trust")


def always_trust(channel: PeerChannel) -> Deferred[bool]:
    """Trust every peer at once."""
    return succeed(True)


def never_trust(channel: PeerChannel) -> Deferred[bool]:
    """Trust no peer: every channel is refused as soon as it opens."""
    return succeed(False)


# -- Ping trust (the reference's default trust protocol) -------------------------------------

PING_PREFIX = "Ping from"
PING_INTERVAL = 3.0
PINGS_TO_TRUST = 3


class PingTrust(Protocol):
    """The inputs of the ping-trust machine."""

    def start(self) -> None:
        "Begin pinging."

    def ping_received(self) -> None:
        "The peer pinged us."

    def enough_pings(self) -> None:
        "The peer pinged us often enough to be trusted."

    def stop(self) -> None:
        "The channel is gone or the handshake was cancelled."


@dataclass
class PingCore:
    """What the ping-trust machine acts on; it does no I/O of its own."""

    clock: IReactorTime
    send_ping: Callable[[], None]
    trusted: Callable[[], None]
    interval: float = PING_INTERVAL
    required: int = PINGS_TO_TRUST
    seen: int = 0
    answers_left: int = PINGS_TO_TRUST


def _ping_periodically(machine: PingTrust, core: PingCore) -> LoopingCall:
    loop = LoopingCall(core.send_ping)
    loop.clock = core.clock
    loop.start(core.interval)
    return loop


_ping_builder = TypeMachineBuilder(PingTrust, PingCore)
_idle = _ping_builder.state("idle")
_pinging = _ping_builder.state("pinging", _ping_periodically)
_trusted = _ping_builder.state("trusted")
_stopped = _ping_builder.state("stopped")

_idle.upon(PingTrust.start).to(_pinging).returns(None)
_idle.upon(PingTrust.stop).to(_stopped).returns(None)
_stopped.upon(PingTrust.ping_received).loop().returns(None)
_stopped.upon(PingTrust.stop).loop().returns(None)
_trusted.upon(PingTrust.stop).to(_stopped).returns(None)


@_pinging.upon(PingTrust.ping_received).loop()
def _count_ping(machine: PingTrust, core: PingCore, loop: LoopingCall) -> None:
    core.seen += 1
    if core.seen >= core.required:
        machine.enough_pings()


@_pinging.upon(PingTrust.enough_pings).to(_trusted)
def _become_trusted(machine: PingTrust, core: PingCore, loop: LoopingCall) -> None:
    loop.stop()
    core.trusted()


@_pinging.upon(PingTrust.stop).to(_stopped)
def _stop_pinging(machine: PingTrust, core: PingCore, loop: LoopingCall) -> None:
    loop.stop()


@_trusted.upon(PingTrust.ping_received).loop()
def _answer_ping(machine: PingTrust, core: PingCore) -> None:
    # Answer the pings of a peer still counting, but only a bounded number: two trusted peers
    # answering each other's answers would ping each other forever.
    if core.answers_left > 0:
        core.answers_left -= 1
        core.send_ping()


new_ping_trust = _ping_builder.build()
"""C{new_ping_trust(PingCore(...)) -> PingTrust}: a fresh ping-trust machine."""


def ping_trust(channel: PeerChannel) -> Deferred[bool]:
    """
    The reference implementation's trust protocol: send C{"Ping from <our address>"} every
    3 seconds until the peer has sent 3 messages containing C{"Ping from"}, then trust it and
    answer its remaining pings.  It authenticates nothing: use it only to talk to .NET peers.

    @return: a Deferred that fires True once the peer pinged enough; cancelling it stops the
        pinging.
    """
    host = getattr(channel.transport.getHost(), "host", "")
    machine: PingTrust | None = None

    def stop(result: Deferred[bool]) -> None:
        assert machine is not None
        machine.stop()

    decided: Deferred[bool] = Deferred(stop)

    def observe(channel: PeerChannel, packet: Packet) -> bool:
        if isinstance(packet, PureMessagePacket) and PING_PREFIX in packet.message:
            assert machine is not None
            machine.ping_received()
            return True
        return False

    core = PingCore(
        clock=channel.clock,
        send_ping=lambda: channel.send_message(f"{PING_PREFIX} {host}"),
        trusted=lambda: decided.callback(True),
    )
    machine = new_ping_trust(core)
    channel.on_data_received.add(observe)
    machine.start()
    return decided


# -- Key trust ---------------------------------------------------------------------------------

KEY_TRUST_CONTEXT = b"p2pnet_tx key trust v1"
_NONCE_PREFIX = "p2pnet-key-trust/1 nonce "
_PROOF_PREFIX = b"p2pnet-key-trust/1 proof "
_NONCE_BYTES = 32


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Return the 32 raw bytes of an Ed25519 public key (of a private key's public half)."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def identifier_for_public_key(key: bytes | Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Return the identifier derived from a public key: 32 hex digits of its SHA-256."""
    raw = key if isinstance(key, bytes) else public_key_bytes(key)
    return hashlib.sha256(raw).hexdigest()[:32]


def _transcript(
    prover_nonce: bytes, verifier_nonce: bytes, prover_id: str, verifier_id: str
) -> bytes:
    parts = [prover_nonce, verifier_nonce, prover_id.encode(), verifier_id.encode()]
    return KEY_TRUST_CONTEXT + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


class _KeyHandshake:
    """One run of the key handshake on one channel."""

    def __init__(self, trust: KeyTrust, channel: PeerChannel) -> None:
        self._trust = trust
        self._channel = channel
        self._nonce = os.urandom(_NONCE_BYTES)
        self._peer_nonce: bytes | None = None
        self.decided: Deferred[bool] = Deferred(lambda d: self._finish())

    def start(self) -> Deferred[bool]:
        self._channel.on_data_received.add(self._observe)
        self._channel.send_message(_NONCE_PREFIX + base64.b64encode(self._nonce).decode())
        return self.decided

    def _finish(self) -> None:
        if self._observe in self._channel.on_data_received:
            self._channel.on_data_received.remove(self._observe)

    def _decide(self, trusted: bool, why: str) -> None:
        self._finish()
        if not self.decided.called:
            if not trusted:
                log.warn("key handshake with {peer} failed: {why}", peer=self._channel.peer,
                         why=why)
            self.decided.callback(trusted)

    def _observe(self, channel: PeerChannel, packet: Packet) -> bool:
        if isinstance(packet, PureMessagePacket) and packet.message.startswith(_NONCE_PREFIX):
            self._nonce_received(packet.message[len(_NONCE_PREFIX) :])
            return True
        if isinstance(packet, DataTransmissionPacket) and packet.payload.startswith(
            _PROOF_PREFIX
        ):
            self._proof_received(packet.payload[len(_PROOF_PREFIX) :])
            return True
        return False

    def _nonce_received(self, text: str) -> None:
        if self._peer_nonce is not None:
            return self._decide(False, "second nonce")
        try:
            nonce = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            nonce = b""
        if len(nonce) != _NONCE_BYTES:
            return self._decide(False, "bad nonce")
        if nonce == self._nonce:
            return self._decide(False, "our own nonce reflected")
        self._peer_nonce = nonce
        peer_id = (self._channel.peer.identifier if self._channel.peer else None) or ""
        signature = self._trust.private_key.sign(
            _transcript(self._nonce, nonce, self._channel.local_identifier, peer_id)
        )
        proof = json.dumps(
            {
                "PublicKey": base64.b64encode(self._trust.public_key).decode(),
                "Signature": base64.b64encode(signature).decode(),
            }
        ).encode()
        self._channel.send(
            DataTransmissionPacket(
                _PROOF_PREFIX + proof,
                DataPayloadFormat.MISC_DATA,
                source_origin_identifier=self._channel.local_identifier,
            )
        )

    def _proof_received(self, raw: bytes) -> None:
        if self._peer_nonce is None:
            return self._decide(False, "proof before nonce")
        try:
            proof = json.loads(raw)
            public_key = base64.b64decode(proof["PublicKey"], validate=True)
            signature = base64.b64decode(proof["Signature"], validate=True)
            key = Ed25519PublicKey.from_public_bytes(public_key)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return self._decide(False, "malformed proof")
        peer_id = (self._channel.peer.identifier if self._channel.peer else None) or ""
        try:
            key.verify(
                signature,
                _transcript(self._peer_nonce, self._nonce, peer_id, self._channel.local_identifier),
            )
        except InvalidSignature:
            return self._decide(False, "bad signature")
        if self._trust.known_keys is not None and public_key not in self._trust.known_keys:
            return self._decide(False, "unknown public key")
        if self._trust.bind_identifier and peer_id != identifier_for_public_key(public_key):
            return self._decide(False, "identifier does not match the public key")
        self._channel.properties["public_key"] = public_key
        self._decide(True, "verified")


class KeyTrust:
    """
    The Ed25519 challenge-response handshake, as a trust protocol.

    Each side sends a PureMessage carrying a fresh 32-byte nonce; on the peer's nonce it answers
    with a DataTransmit carrying its public key and a signature over a context string, both
    nonces and both identifiers.  A peer is trusted once its signature verifies (and its key is
    in C{known_keys}, when given).  A wrong key or signature, a replayed proof (it signs an old
    nonce), a step out of order or silence: not trusted, and the channel drops the peer.

    The verified key is left in C{channel.properties["public_key"]}.

    @param private_key: this node's key.
    @param known_keys: if given, the raw public keys allowed; others are refused.
    @param bind_identifier: require each peer's identifier to be the one derived from its key
        (L{identifier_for_public_key}).
    """

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        known_keys: Collection[bytes] | None = None,
        bind_identifier: bool = False,
    ) -> None:
        self.private_key = private_key
        self.public_key = public_key_bytes(private_key)
        self.known_keys = None if known_keys is None else frozenset(known_keys)
        self.bind_identifier = bind_identifier

    def __call__(self, channel: PeerChannel) -> Deferred[bool]:
        return _KeyHandshake(self, channel).start()


def key_trust(
    private_key: Ed25519PrivateKey | None = None,
    known_keys: Collection[bytes] | None = None,
    bind_identifier: bool = False,
) -> KeyTrust:
    """
    Return the key handshake as a trust protocol (see L{KeyTrust}); a fresh key if none given.
    """
    return KeyTrust(
        Ed25519PrivateKey.generate() if private_key is None else private_key,
        known_keys,
        bind_identifier,
    )
