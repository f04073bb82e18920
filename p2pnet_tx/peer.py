# -*- test-case-name: tests.test_peer -*-
"""
L{GenericPeer}: where a peer listens and who it says it is; L{HostnamePeer}: a peer to dial by
host name.

A connected peer is always known by its address (a L{GenericPeer}).  A host name is only ever a
place to dial: L{HostnamePeer} is what C{twistd p2pnet --peer}, C{p2pnet-ctl connect} and
C{PeerNetwork.connect} take for one, and the network resolves it through the reactor's resolver
when it dials, then knows the peer by the address it reached.  Peer lists and Identity packets
carry addresses only, so a peer can never make a node look a name up.
"""

from __future__ import annotations

import ipaddress
import re
import socket

import attrs
from zope.interface import implementer

from p2pnet_tx.errors import InvalidPeer
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.logtext import peer_text

MAX_IDENTIFIER_BYTES = 256
"""The longest identifier accepted, in UTF-8 bytes."""

MAX_HOSTNAME_LENGTH = 253
"""The longest host name accepted (RFC 1035), in characters."""

# RFC 1123 labels: letters, digits and hyphens, 1 to 63 characters, no hyphen at either end;
# a trailing dot (a fully qualified name) is allowed.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")

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
        if is_hostname(address):
            raise InvalidPeer(
                f"'{address}' is a host name, not an IPv4 or IPv6 address: a connected peer is "
                f"known by its address; to dial a name use HostnamePeer('{address}', PORT) or "
                f"peer_for_host()"
            ) from None
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


def is_hostname(name: object) -> bool:
    """
    Whether C{name} is a syntactically valid DNS host name: at most 253 ASCII characters,
    dot-separated labels of letters, digits and inner hyphens (1 to 63 each), not all digits
    in its last label (so that C{"10.0.0"} is not a name), with an optional trailing dot.
    """
    if not isinstance(name, str) or not 0 < len(name) <= MAX_HOSTNAME_LENGTH:
        return False
    if not name.isascii():
        return False
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def validate_hostname(name: object) -> str:
    """
    Validate a host name to dial (see L{is_hostname}) and return it in lower case.

    @raise InvalidPeer: if C{name} is not a host name.
    """
    if not isinstance(name, str):
        raise InvalidPeer(f"peer host must be a string, not {type(name).__name__}")
    if not is_hostname(name):
        if len(name) > MAX_HOSTNAME_LENGTH:
            raise InvalidPeer(f"host name of {len(name)} characters exceeds "
                              f"{MAX_HOSTNAME_LENGTH}")
        raise InvalidPeer(
            f"'{peer_text(name)}' is neither an IP address nor a host name (letters, digits, "
            f"hyphens and dots)"
        )
    return name.lower()


@implementer(IPeer)
@attrs.frozen
class HostnamePeer:
    """
    A peer to dial by host name: C{HostnamePeer("localhost", 8051)}.

    Give it to C{PeerNetwork.connect} or a L{PeerConnectionService
    <p2pnet_tx.service.PeerConnectionService>}: the network resolves C{host} through the
    reactor's resolver (a L{HostnameEndpoint <twisted.internet.endpoints.HostnameEndpoint>})
    each time it dials, and the channel it makes knows its peer as a L{GenericPeer}, by the
    address reached.  A name that does not resolve fails the dial with
    L{DNSLookupError <twisted.internet.error.DNSLookupError>}; a name that resolves to a
    blocked address fails it with L{PeerBlocked <p2pnet_tx.errors.PeerBlocked>}.

    @ivar address: the host name (C{IPeer} calls it so), lower case.
    @ivar port: the TCP port the peer listens on.
    @ivar identifier: the identifier the peer must prove, if known, else C{None}.
    @raise InvalidPeer: (a L{ValueError}) for a bad name, port or identifier.
    """

    address: str = attrs.field(converter=validate_hostname)
    port: int = attrs.field(converter=validate_port)
    identifier: str | None = attrs.field(default=None, converter=validate_identifier)

    def __str__(self) -> str:
        name = f"{peer_text(self.identifier, _SHOWN_IDENTIFIER_CHARS)}@" if self.identifier else ""
        return f"{name}{self.address}:{self.port}"


def peer_for_host(host: object, port: object, identifier: object = None) -> IPeer:
    """
    The peer to dial at C{host}: a L{GenericPeer} for an IP address, a L{HostnamePeer} for a
    host name.

    @param host: an IPv4 or IPv6 address (IPv6 with or without brackets), or a host name.
    @param port: the TCP port, 1 to 65535.
    @param identifier: the peer's identifier, if known.
    @raise InvalidPeer: for a bad host, port or identifier.
    """
    if isinstance(host, str) and host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if is_hostname(host):
        return HostnamePeer(host, port, identifier)  # type: ignore[arg-type]
    if isinstance(host, str):
        try:
            normalize_address(host)
        except InvalidPeer:
            validate_hostname(host)  # raises, saying what a host may be
    return GenericPeer(host, port, identifier)  # type: ignore[arg-type]


def peer_from_string(value: str) -> IPeer:
    """
    Parse C{HOST:PORT} (C{[V6]:PORT} for IPv6) into the peer to dial (L{peer_for_host}).

    @raise InvalidPeer: with the offending value, for a bad one.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise InvalidPeer(f"'{peer_text(value)}' is not HOST:PORT (e.g. 127.0.0.1:8051, "
                          f"localhost:8051 or [::1]:8051)")
    if not port.isdigit():
        raise InvalidPeer(f"'{peer_text(value)}': the port must be a number from 1 to 65535")
    if ":" in host and not host.startswith("["):
        raise InvalidPeer(f"'{peer_text(value)}': write an IPv6 address in brackets, "
                          f"e.g. [::1]:8051")
    try:
        return peer_for_host(host, int(port))
    except InvalidPeer as e:
        raise InvalidPeer(f"'{peer_text(value)}' is not HOST:PORT: {e}") from None
