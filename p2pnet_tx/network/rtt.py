# -*- test-case-name: tests.test_network_rtt -*-
"""
L{kernel_rtt}: a connection's round-trip time as the kernel measures it, without a ping.

Linux keeps a smoothed round-trip time for every TCP socket (C{tcpi_rtt} of C{TCP_INFO}); it
costs one system call to read, so it is read only when a decision needs it (eviction), never
on a timer.  Elsewhere (other systems, in-memory transports, Unix sockets) it is unknown.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

_TCP_INFO = getattr(socket, "TCP_INFO", None)
# struct tcp_info (linux/tcp.h): eight one-byte fields, then 32-bit fields; tcpi_rtt is the
# sixteenth of those, in microseconds.
_RTT_OFFSET = 8 + 15 * 4
_RTT = struct.Struct("=I")
_TCP_INFO_LENGTH = 104

# How many transports to unwrap to reach the socket (TLS wraps TCP once).
_MAX_DEPTH = 4


def kernel_rtt(transport: Any) -> float | None:
    """
    The smoothed round-trip time of the TCP connection under C{transport}, in seconds.

    A transport that wraps another (TLS's protocol, whose own handle is the TLS connection)
    is unwrapped through its C{transport} attribute to the TCP transport, whose
    C{getHandle()} is the socket.

    @param transport: a channel's transport, or C{None}.
    @return: the time, or C{None} where it is unknown: no socket, not TCP, not Linux, or a
        connection the kernel has measured nothing on yet.
    """
    if _TCP_INFO is None:
        return None
    for _ in range(_MAX_DEPTH):
        if transport is None:
            return None
        get_handle = getattr(transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        getsockopt = getattr(handle, "getsockopt", None)
        if getsockopt is not None and getattr(handle, "fileno", None) is not None:
            return _read_rtt(getsockopt)
        transport = getattr(transport, "transport", None)
    return None


def _read_rtt(getsockopt: Any) -> float | None:
    try:
        info = getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH)
    except (OSError, TypeError, ValueError):
        return None
    if not isinstance(info, bytes) or len(info) < _RTT_OFFSET + _RTT.size:
        return None
    (micros,) = _RTT.unpack_from(info, _RTT_OFFSET)
    return micros / 1e6 if micros else None
