# -*- test-case-name: tests.test_network_local -*-
"""
L{LocalNode}: what a network knows about itself: its identifier, the ports it listens on, the
Identity it introduces itself with, and whether an address is its own.
"""

from __future__ import annotations

import ipaddress

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory

from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.packets import IdentifierPacket
from p2pnet_tx.wire_mode import WireMode

DEFAULT_BACKLOG = 1024
"""The listen backlog used unless the endpoint string gives one."""

IDENTITY_MESSAGE = "connect"
"""The C{message} of the Identity packet a channel opens with, when the node has no display
name (else the message is the display name)."""


class LocalNode:
    """
    This node, as its peers see it.

    @param reactor: where it listens.
    @param identifier: this node's identifier.
    @param wire_mode: says whether the node introduces itself with an Identity packet.
    @param display_name: the name the node announces in its Identity packet, if any.

    @ivar listening_port: the port announced to peers: that of the first port still open, or 0.
    """

    def __init__(
        self, reactor: Any, identifier: str, wire_mode: WireMode, display_name: str | None = None
    ) -> None:
        self._reactor = reactor
        self.identifier = identifier
        self.wire_mode = wire_mode
        self.display_name = display_name
        # Each port with the (host, port number) it listened on: a closed Twisted port can no
        # longer say where it was.
        self._ports: dict[IListeningPort, tuple[str | None, int]] = {}
        self._own: list[IListeningPort] = []
        self.listening_port = 0
        self._identity: IdentifierPacket | None = None

    def listen(self, endpoint: str, factory: Factory) -> Deferred[IListeningPort]:
        """
        Listen with C{factory} on a server endpoint string, e.g. C{"tcp:8051"}; a TCP endpoint
        gets a backlog of L{DEFAULT_BACKLOG} unless it names one.  The caller reports the port
        to L{port_opened}.

        @return: a Deferred firing with the listening port; it fails with a L{ValueError} for a
            bad endpoint string, or with the endpoint's error.
        """
        if endpoint.split(":", 1)[0] in ("tcp", "tcp6") and "backlog=" not in endpoint:
            endpoint += f":backlog={DEFAULT_BACKLOG}"
        try:
            server = serverFromString(self._reactor, endpoint)
        except (ValueError, KeyError, TypeError) as e:
            return fail(ValueError(f"bad endpoint {endpoint!r}: {e}"))
        return server.listen(factory)

    def port_opened(self, port: IListeningPort, own: bool = False) -> None:
        """
        Remember a port; the first one is announced to peers.

        @param own: whether the network opened it (with L{listen}), so that closing the
            network stops it; a port opened elsewhere is stopped by whoever opened it.
        """
        address = port.getHost()
        self._ports[port] = (getattr(address, "host", None), getattr(address, "port", 0))
        if own:
            self._own.append(port)
        if not self.listening_port:
            self.listening_port = self._ports[port][1]

    def port_closed(self, port: IListeningPort) -> tuple[str | None, int] | None:
        """
        Forget a port; the next remaining one (or 0) is announced from now on.

        @return: the host and port number it listened on, or None for a port not known.
        """
        closed = self._ports.pop(port, None)
        if port in self._own:
            self._own.remove(port)
        numbers = [number for _, number in self._ports.values()]
        if closed is not None and self.listening_port == closed[1] and closed[1] not in numbers:
            self.listening_port = numbers[0] if numbers else 0
        return closed

    def forget_ports(self) -> list[IListeningPort]:
        """
        Forget every port.

        @return: the ports the network opened itself, for the caller to stop.
        """
        own, self._own, self._ports = self._own, [], {}
        self.listening_port = 0
        return own

    def identity(self) -> IdentifierPacket | None:
        """The Identity packet channels open with, or C{None} in a mode that sends none."""
        if not self.wire_mode.exchanges_identity:
            return None
        # Packets are immutable: every channel may share one until the port changes.
        if self._identity is None or self._identity.data != self.listening_port:
            self._identity = IdentifierPacket(
                self.display_name or IDENTITY_MESSAGE, self.listening_port, "",
                source_origin_identifier=self.identifier,
            )
        return self._identity

    def is_self(self, peer: IPeer) -> bool:
        """Whether C{peer} is this node: same identifier, or one of our listening addresses."""
        if peer.identifier is not None and peer.identifier == self.identifier:
            return True
        if not self.listening_port or peer.port != self.listening_port:
            return False
        for host, _ in self._ports.values():
            if host == peer.address or (host in ("0.0.0.0", "::") and _is_loopback(peer.address)):
                return True
        return False


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
