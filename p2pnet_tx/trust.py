# -*- test-case-name: tests.test_trust -*-
"""
Trust protocols: how a channel decides to trust its peer.

A trust protocol is a callable C{protocol(channel) -> Deferred[bool]} (a coroutine function will
do).  The channel runs it on connection, bounds it with its handshake deadline and cancels it
when the connection goes away.  It sees the peer's packets through C{channel.on_data_received}
(returning C{True} from the observer keeps a handshake packet away from the handlers), whatever
the trust gate says.

Shipped here:
  - L{key_trust}: the verdict on the Ed25519 key the peer's TLS handshake proved; the default.
  - L{ping_trust}: the reference implementation's "three pings" protocol, for interoperating
    with .NET peers.  It authenticates nothing.
  - L{always_trust} and L{never_trust}, for tests and closed networks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.errors import InvalidPeerCertificate, TrustRefused
from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.logtext import peer_text
from p2pnet_tx.packets import Packet, PureMessagePacket
from p2pnet_tx.pins import NamePins, PinMismatch

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
    Once it has sent its own 3rd ping, the peer (which counts the same way) trusts us: it
    tells the channel so (L{PeerChannel.peer_trusts_us}).

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

    pings_sent = 0

    def send_ping() -> None:
        nonlocal pings_sent
        if channel.send_message(f"{PING_PREFIX} {host}"):
            pings_sent += 1
            if pings_sent == PINGS_TO_TRUST:
                # The peer counts our pings as we count its (.NET: reads containing "Ping
                # from", which the dotnet mode's pacing keeps one frame each): it trusts us
                # from this one on, whatever the order of the two trusts.
                channel.peer_trusts_us()

    core = PingCore(
        clock=channel.clock,
        send_ping=send_ping,
        trusted=lambda: decided.callback(True),
    )
    machine = new_ping_trust(core)
    channel.on_data_received.add(observe)
    machine.start()
    return decided


# -- Key trust ---------------------------------------------------------------------------------


class KeyTrust:
    """
    Key trust: the policy's verdict on the Ed25519 key the peer's TLS handshake proved on this
    connection (see L{p2pnet_tx.tls}).

    The peer is trusted when its certificate's key is Ed25519, the identifier it goes by is the
    one that key derives (L{identifier_for_public_key}: always checked), and the key is in
    C{known_keys} when that is given.  The proof is the TLS handshake of this very connection,
    so it can be neither replayed nor relayed.  It needs the TLS transport and the peer's
    Identity (the p2pnet wire); over any other transport it refuses every peer.  The verified
    key is left in C{channel.properties["public_key"]}.

    @param known_keys: if given, the raw public keys allowed; others are refused.
    @param name_pins: if given, display names are pinned to the first identity seen with them
        (trust on first use): a peer announcing a pinned name with another key is refused
        (L{PinMismatch<p2pnet_tx.pins.PinMismatch>}).
    """

    def __init__(
        self, known_keys: Collection[bytes] | None = None, name_pins: NamePins | None = None
    ) -> None:
        self.known_keys = None if known_keys is None else frozenset(known_keys)
        self.name_pins = name_pins

    def __call__(self, channel: PeerChannel) -> Deferred[bool]:
        try:
            proven = channel.proven_key()
        except InvalidPeerCertificate as e:
            return self._refuse(channel, str(e))
        key, derived = proven.public_key, proven.identifier
        claimed = getattr(channel.peer, "identifier", None)
        if claimed != derived:
            return self._refuse(
                channel, f"identifier {peer_text(claimed)!r} is not the one its key derives ({derived})"
            )
        if self.known_keys is not None and key not in self.known_keys:
            return self._refuse(channel, "unknown public key")
        name = channel.properties.get("display_name")
        if self.name_pins is not None and name is not None:
            try:
                if self.name_pins.check(name, derived):
                    log.info("pinned the name {name} to {identifier}", name=name,
                             identifier=derived)
            except PinMismatch as mismatch:
                log.error("refused {peer}: {why}", peer=channel.peer, why=str(mismatch))
                return fail(mismatch)
        channel.properties["public_key"] = key
        return succeed(True)

    @staticmethod
    def _refuse(channel: PeerChannel, why: str) -> Deferred[bool]:
        log.warn("key trust refused {peer}: {why}", peer=channel.peer, why=why)
        return fail(TrustRefused(why))


def key_trust(
    known_keys: Collection[bytes] | None = None, name_pins: NamePins | None = None
) -> KeyTrust:
    """Return key trust as a trust protocol (see L{KeyTrust})."""
    return KeyTrust(known_keys, name_pins)

