# -*- test-case-name: tests.test_tap -*-
"""
C{twistd p2pnet}: the command-line options of a node and the service they build.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.python import usage

from p2pnet_tx.wire import get_codec

DEFAULT_LISTEN = "tcp:8051"
"""Where a node listens for peers unless told otherwise."""


class Options(usage.Options):
    """The options of C{twistd p2pnet}."""

    synopsis = "[options]"
    longdesc = "Run a P2PNet peer that accepts peer channels on --listen."
    optParameters = [
        ["listen", "l", DEFAULT_LISTEN, "Endpoint to accept peers on (a Twisted endpoint string)."],
        ["wire", "w", "p2pnet", "Wire format: p2pnet (default) or dotnet."],
    ]

    def postOptions(self) -> None:
        try:
            get_codec(self["wire"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """
    Build the node's service from parsed options.  This is where the global reactor enters.
    """
    from twisted.internet import reactor

    try:
        endpoint = serverFromString(reactor, options["listen"])
    except (ValueError, KeyError, TypeError) as e:
        raise usage.UsageError(f"bad --listen endpoint {options['listen']!r}: {e}") from None
    node = MultiService()
    listener = StreamServerEndpointService(endpoint, Factory.forProtocol(Protocol))
    listener.setName("listener")
    listener.setServiceParent(node)
    return node
