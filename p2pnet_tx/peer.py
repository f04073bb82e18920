# -*- test-case-name: tests.test_peer -*-
"""
L{GenericPeer}: where a peer listens and who it says it is.
"""

from __future__ import annotations

import ipaddress
import socket

import attrs
from zope.interface import implementer

from p2pnet_tx.errors import InvalidPeer
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.logtext import peer_text

MAX_IDENTIFIER_BYTES = 256
"""The longest identifier accepted, in UTF-8 bytes."""

# How much of a peer's identifier and address its text form shows: a 32-digit identifier and
# any IPv6 address with a short scope are shown whole.
_SHOWN_IDENTIFIER_CHARS = 64
_SHOWN_ADDRESS_CHARS = 64


def normalize_address(address: object) -> str:
    """
    Validate an IPv4 or IPv6 address and return its normalised text form.

    @raise InvalidPeer: if C{address} is not an IP address string.
    """
    if not isinstance(address, str):
        raise InvalidPeer(f"peer address must be a string, not {type(address).__name__}")
    try:
        # Every connection makes peers: the socket module reads IPv4 several times faster
        # than ipaddress, and writes the same text.
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, address))
    except (OSError, ValueError):
        pass
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise InvalidPeer(f"'{peer_text(address)}' is not an IPv4 or IPv6 address") from None
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d: that peer is a.b.c.d.
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped if mapped is not None else parsed)


def validate_port(port: object) -> int:
    """
    Validate a TCP port number, 1 to 65535.

    @raise InvalidPeer: if C{port} is not an int in range.
    """
    if not isinstance(port, int) or isinstance(port, bool):
        raise InvalidPeer(f"peer port must be an int, not {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise InvalidPeer(f"peer port {port} is outside 1-65535")
    return port


def validate_identifier(identifier: object) -> str | None:
    """
    Validate a peer identifier: None, or a string of at most 256 UTF-8 bytes.

    @raise InvalidPeer: if C{identifier} is of the wrong type or too long.
    """
    if identifier is None:
        return None
    if not isinstance(identifier, str):
        raise InvalidPeer(f"peer identifier must be a string, not {type(identifier).__name__}")
    try:
        size = len(identifier.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidPeer("peer identifier is not valid Unicode text") from None
    if size > MAX_IDENTIFIER_BYTES:
        raise InvalidPeer(
            f"peer identifier of {size} bytes exceeds {MAX_IDENTIFIER_BYTES} bytes"
        )
    return identifier


@implementer(IPeer)
@attrs.frozen
class GenericPeer:
    """
    A peer: its IP address, its TCP listening port and, once known, its identifier.

    Values are validated at construction: C{GenericPeer("10.0.0.7", 8001, "peer_one")}.

    @raise InvalidPeer: (a L{ValueError}) for a bad address, port or identifier.
    """

    address: str = attrs.field(converter=normalize_address)
    port: int = attrs.field(converter=validate_port)
    identifier: str | None = attrs.field(default=None, converter=validate_identifier)

    def __str__(self) -> str:
        # Logs show peers this way: the identifier is the peer's claim, and an IPv6 address may
        # carry a scope of its choosing, so both are escaped and cut (p2pnet_tx.logtext).
        address = peer_text(self.address, _SHOWN_ADDRESS_CHARS)
        host = f"[{address}]" if ":" in address else address
        name = f"{peer_text(self.identifier, _SHOWN_IDENTIFIER_CHARS)}@" if self.identifier else ""
        return f"{name}{host}:{self.port}"
