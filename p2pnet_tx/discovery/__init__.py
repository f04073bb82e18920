# -*- test-case-name: tests.test_discovery_service -*-
"""
LAN discovery: nodes on one network find each other with no C{--peer} (docs/discovery.md).

  - L{announcement}: the signed announcement of a C{p2pnet} node, and its checks.
  - L{dotnet_datagram}: the .NET IdentifierPacket datagram, for C{dotnet} nodes.
  - L{protocol}: the C{DatagramProtocol} that judges what arrives, within bounds.
  - L{sender}: the announce schedule.
  - L{dials}: the dials to the peers found, within bounds.
  - L{service}: L{LanDiscoveryService}, the part a node runs (C{--discovery lan}).
"""

from p2pnet_tx.discovery.service import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    LanDiscoveryConfig,
    LanDiscoveryService,
)

__all__ = ["DEFAULT_GROUP", "DEFAULT_PORT", "LanDiscoveryConfig", "LanDiscoveryService"]
