"""
Tests for L{p2pnet_tx.network.rtt}: reading the kernel's round-trip time through a
transport's handle, unwrapping a TLS-like wrapper, and C{None} wherever it is unknown.
(A real loopback socket is read in C{tests/integration/test_eviction.py}.)
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.network.rtt import kernel_rtt


class FakeSocket:
    """A socket whose TCP_INFO holds C{rtt_micros}, or whose getsockopt raises C{error}."""

    def __init__(self, rtt_micros: int = 0, error: Exception | None = None,
                 length: int = 104) -> None:
        self.rtt_micros = rtt_micros
        self.error = error
        self.length = length
        self.asked: list[tuple[int, int, int]] = []

    def fileno(self) -> int:
        return 3

    def getsockopt(self, level: int, option: int, length: int) -> bytes:
        self.asked.append((level, option, length))
        if self.error is not None:
            raise self.error
        info = bytearray(104)
        struct.pack_into("=I", info, 68, self.rtt_micros)
        return bytes(info[: self.length])


class Handled:
    """A transport whose handle is C{handle}, wrapping C{transport} (as TLS wraps TCP)."""

    def __init__(self, handle: Any, transport: Any = None) -> None:
        self._handle = handle
        self.transport = transport

    def getHandle(self) -> Any:
        return self._handle


class SocketTransport(StringTransport):
    """A L{StringTransport} whose handle is a L{FakeSocket}, as a TCP transport's is a socket."""

    def __init__(self, sock: FakeSocket) -> None:
        super().__init__()
        self._sock = sock

    def getHandle(self) -> FakeSocket:
        return self._sock


class KernelRttTests(SynchronousTestCase):
    """The smoothed RTT in seconds where the kernel has one, else None."""

    if not hasattr(socket, "TCP_INFO"):
        skip = "TCP_INFO is Linux's"

    def test_reads_tcp_info(self) -> None:
        """tcpi_rtt, in microseconds, read with one getsockopt(IPPROTO_TCP, TCP_INFO)."""
        sock = FakeSocket(rtt_micros=1500)
        self.assertEqual(kernel_rtt(Handled(sock)), 0.0015)
        self.assertEqual(sock.asked, [(socket.IPPROTO_TCP, socket.TCP_INFO, 104)])

    def test_unwraps_tls(self) -> None:
        """A wrapper whose handle is no socket (a TLS connection) is unwrapped to TCP's."""
        tls_connection = object()
        self.assertEqual(kernel_rtt(Handled(tls_connection, Handled(FakeSocket(250)))), 0.00025)

    def test_unknown(self) -> None:
        """No transport, no handle, no socket under it, or a wrapping loop: None."""
        self.assertIsNone(kernel_rtt(None))
        self.assertIsNone(kernel_rtt(StringTransport()))
        self.assertIsNone(kernel_rtt(Handled(object())))
        loop = Handled(object())
        loop.transport = loop
        self.assertIsNone(kernel_rtt(loop))

    def test_not_tcp_or_not_measured(self) -> None:
        """A socket that is not TCP (getsockopt fails), a short answer, or no RTT yet: None."""
        self.assertIsNone(kernel_rtt(Handled(FakeSocket(error=OSError(95, "not supported")))))
        self.assertIsNone(kernel_rtt(Handled(FakeSocket(1500, length=60))))
        self.assertIsNone(kernel_rtt(Handled(FakeSocket(0))))

    def test_twisted_tls(self) -> None:
        """Under Twisted's TLS the handle is the OpenSSL connection: the TCP one is read."""
        tls = TLSMemoryBIOFactory(
            optionsForClientTLS("peer.invalid"), True, Factory.forProtocol(Protocol)
        ).buildProtocol(None)
        tls.makeConnection(SocketTransport(FakeSocket(rtt_micros=900)))
        self.assertIsNotNone(tls.getHandle())
        self.assertEqual(kernel_rtt(tls), 0.0009)
        self.assertEqual(kernel_rtt(tls.wrappedProtocol.transport), 0.0009)
