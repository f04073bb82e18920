"""
In-memory UDP for the discovery unit tests: a reactor whose C{listenMulticast} records fake
ports, and ports that record what is written, joined and set.  No sockets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock


class FakeMulticastPort:
    """A listening UDP port: C{written} holds C{(data, addr)} per write."""

    def __init__(self, number: int, protocol: DatagramProtocol, join_error: Exception | None,
                 write_error: OSError | None = None, **options: Any) -> None:
        self.number = number
        self.protocol = protocol
        self.options = options
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.groups: list[str] = []
        self.broadcast = False
        self.ttl: int | None = None
        self.listening = True
        self.join_error = join_error
        self.write_error = write_error
        protocol.makeConnection(self)  # type: ignore[arg-type]

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.write_error is not None:
            raise self.write_error
        self.written.append((data, addr))

    def joinGroup(self, group: str, interface: str = "") -> Deferred[None]:
        if self.join_error is not None:
            return fail(self.join_error)
        self.groups.append(group)
        return succeed(None)

    def setBroadcastAllowed(self, allowed: bool) -> None:
        self.broadcast = allowed

    def setTTL(self, ttl: int) -> None:
        self.ttl = ttl

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "0.0.0.0", self.number)

    def stopListening(self) -> Deferred[None]:
        self.listening = False
        self.protocol.doStop()
        return succeed(None)


class UDPMemoryReactor(MemoryReactorClock):
    """A L{MemoryReactorClock} with C{listenMulticast}; C{udp_ports} are the ports opened.

    @ivar taken: port numbers whose listen fails with L{CannotListenError}.
    @ivar join_error: what C{joinGroup} fails with, if anything.
    @ivar write_error: what C{write} raises, if anything.
    """

    def __init__(self) -> None:
        super().__init__()
        self.udp_ports: list[FakeMulticastPort] = []
        self.taken: set[int] = set()
        self.join_error: Exception | None = None
        self.write_error: OSError | None = None

    def listenMulticast(self, port: int, protocol: DatagramProtocol, interface: str = "",
                        maxPacketSize: int = 8192, listenMultiple: bool = False) -> Any:
        if port in self.taken:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        fake = FakeMulticastPort(port, protocol, self.join_error, self.write_error,
                                 interface=interface, maxPacketSize=maxPacketSize,
                                 listenMultiple=listenMultiple)
        self.udp_ports.append(fake)
        return fake
