# -*- test-case-name: tests.test_network_security -*-
"""
How a network secures its connections: the transport it runs (TLS 1.3 bound to the node key,
or plaintext TCP), the trust protocol that fits it, the warnings an insecure setup logs, and
L{KeyBinding}, which holds every peer to the key its TLS connection proved.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from twisted.logger import Logger

from p2pnet_tx.errors import IdentityMismatch, InvalidPeerCertificate, PeerRefused
from p2pnet_tx.identity import sanitize_display_name
from p2pnet_tx.logtext import peer_text
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.trust import KeyTrust, key_trust, ping_trust
from p2pnet_tx.wire_mode import WireMode

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel, TrustProtocol

TRANSPORTS = ("tls", "tcp")
"""The transports a network runs: C{"tls"} (TLS 1.3, mutual, bound to the node key) or
C{"tcp"} (plaintext: the dotnet wire, tests, or by explicit choice)."""

TRUST_NAMES = ("key", "ping", "none")
"""The trust protocols a network knows by name."""


def resolve_transport(transport: str | None, wire_mode: WireMode) -> str:
    """
    The transport a network runs: C{transport}, or by default C{"tls"} for the p2pnet wire
    and C{"tcp"} for the dotnet wire.

    @raise ValueError: for an unknown transport, or TLS with the dotnet wire (.NET P2PNet
        speaks no TLS).
    """
    if transport is None:
        return "tls" if wire_mode.exchanges_identity else "tcp"
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; choose tls or tcp")
    if transport == "tls" and not wire_mode.exchanges_identity:
        raise ValueError(
            f"the {wire_mode.name} wire cannot run over TLS (.NET P2PNet speaks no TLS); "
            "use transport 'tcp'"
        )
    return transport


def check_names(identifier: str | None, display_name: str | None, transport: str) -> None:
    """
    Check the names a network is given: an identifier may be chosen only over plaintext TCP
    (over TLS it is derived from the key), and a display name must be fit to show.

    @raise ValueError: saying which, and what to use instead.
    """
    if identifier is not None and transport == "tls":
        raise ValueError(
            "over TLS a node's identifier is derived from its key and cannot be chosen: "
            "use display_name= for a name (identifier= works only with transport 'tcp')"
        )
    if display_name is not None and sanitize_display_name(display_name) is None:
        raise ValueError(f"display name {display_name!r} is not 1 to 64 printable characters")


def resolve_trust_protocol(
    value: TrustProtocol | str | None,
    policy: IncomingPeerTrustPolicy,
    transport: str,
    wire_mode: WireMode,
) -> TrustProtocol | None:
    """
    The trust protocol a network runs: the policy's if it names one, else C{value}.

    @param value: C{"key"}, C{"ping"}, C{"none"}, a trust protocol callable, or C{None}: key
        trust over TLS, ping trust on the dotnet wire.
    @param transport: the network's transport (L{resolve_transport}).
    @return: the protocol, or C{None} for C{"none"}.
    @raise ValueError: for an unknown name; for key trust over plaintext TCP, where no key
        can be bound to the connection; for no choice at all with the p2pnet wire over TCP.
    """
    protocol: TrustProtocol | None
    if policy.default_trust_protocol is not None:
        protocol = policy.default_trust_protocol
    elif callable(value):
        protocol = value
    elif value is None and transport == "tcp" and wire_mode.exchanges_identity:
        raise ValueError(
            "the tcp transport needs a trust protocol chosen explicitly: key trust cannot be "
            "bound to a plaintext connection; choose 'ping', 'none' or your own"
        )
    elif value is None:
        protocol = key_trust() if transport == "tls" else ping_trust
    elif value == "key":
        protocol = key_trust()
    elif value == "ping":
        protocol = ping_trust
    elif value == "none":
        protocol = None
    else:
        raise ValueError(f"unknown trust protocol {value!r}; choose key, ping or none")
    if isinstance(protocol, KeyTrust) and transport != "tls":
        raise ValueError(
            "key trust needs the tls transport (over plaintext tcp no key can be bound to the "
            "connection); choose trust 'ping' or 'none', or transport 'tls'"
        )
    return protocol


def security_warnings(
    wire_mode: WireMode,
    transport: str,
    trust_protocol: TrustProtocol | None,
    policy: IncomingPeerTrustPolicy,
) -> list[str]:
    """
    One line for each insecure choice of a network: the dotnet wire, plaintext TCP, ping
    trust, no trust protocol.  A node logs them as warnings when it is made.
    """
    warnings = []
    if not wire_mode.exchanges_identity:
        warnings.append(
            f"the {wire_mode.name} wire is a compatibility mode: plaintext TCP, no peer is "
            "authenticated and nothing is encrypted"
        )
    elif transport == "tcp":
        warnings.append(
            "transport tcp: plaintext, identifiers are not bound to keys and nothing is "
            "encrypted; any peer can claim any identifier (use transport tls)"
        )
    if trust_protocol is None or not policy.run_default_trust_protocol:
        warnings.append(
            "trust none: no trust protocol runs; peers stay untrusted unless the application "
            "trusts them, and nothing authenticates them"
        )
    elif trust_protocol is ping_trust:
        warnings.append(
            "trust ping authenticates nothing: any peer that sends three pings is trusted"
        )
    return warnings


class KeyBinding:
    """
    Holds a network's TLS peers to their keys: the key a connection's TLS handshake proved is
    the peer's identity, so a peer dialled as an identifier must hold the key that derives it,
    and the identifier a peer claims in its Identity packet must be the one its key derives.

    @param counters: the network's counters: C{tls_keys_refused} (no usable key, or not the
        key of the identifier dialled) and C{identities_unbound} (a claimed identifier not
        derived from the key).
    """

    log = Logger()

    def __init__(self, counters: Counter[str]) -> None:
        self._counters = counters

    def secured(self, channel: PeerChannel) -> PeerRefused | None:
        """
        A channel's TLS handshake is over: keep the proven key in
        C{channel.properties["public_key"]}, and check it against the identifier dialled.
        (The channel keeps the key and its identifier for the later checks:
        L{PeerChannel.proven_key<p2pnet_tx.channel.PeerChannel.proven_key>}.)

        @return: why the peer must be dropped, or C{None}.
        """
        try:
            proven = channel.proven_key()
        except InvalidPeerCertificate as e:
            return self._refused(channel, InvalidPeerCertificate(str(e), channel.peer))
        channel.properties["public_key"] = proven.public_key
        expected = getattr(channel.peer, "identifier", None)
        derived = proven.identifier
        if expected is not None and expected != derived:
            return self._refused(channel, IdentityMismatch(
                f"dialled {expected} but the peer's key is that of {derived}", channel.peer,
                claimed=expected, derived=derived))
        return None

    def claim_refusal(self, channel: PeerChannel, claimed: str | None) -> PeerRefused | None:
        """
        A peer claims an identifier in its Identity packet: it must be the one derived from
        the key its TLS handshake proved (the channel's, not what C{channel.properties} says).

        @return: why the claim is refused (the peer must be dropped), or C{None}.
        """
        try:
            derived = channel.proven_key().identifier
        except InvalidPeerCertificate:
            return self._refused(channel, InvalidPeerCertificate(
                "an Identity before any TLS key was proven", channel.peer))
        if claimed != derived:
            self._counters["identities_unbound"] += 1
            error = IdentityMismatch(
                f"claims identifier {peer_text(claimed)!r}, but its key is that of {derived}",
                channel.peer, claimed=claimed, derived=derived)
            self.log.warn("refused peer at {address}: {why}", address=_address(channel),
                          why=str(error))
            return error
        return None

    def _refused(self, channel: PeerChannel, error: PeerRefused) -> PeerRefused:
        self._counters["tls_keys_refused"] += 1
        self.log.warn("refused peer at {address}: {why}", address=_address(channel),
                      why=str(error))
        return error


def _address(channel: PeerChannel) -> str:
    peer = channel.transport.getPeer() if channel.transport is not None else None
    return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
