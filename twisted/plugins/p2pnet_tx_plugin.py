"""
The twistd dropins of p2pnet_tx: C{twistd p2pnet} and C{twistd p2pnet-bootstrap}.

This module holds L{ServiceMaker}s only; everything else lives in L{p2pnet_tx.tap} and
L{p2pnet_tx.bootstrap.tap}.
"""

from twisted.application.service import ServiceMaker
from twisted.python.reflect import namedAny


class _P2PNetServiceMaker(ServiceMaker):
    """Gives twistd L{p2pnet_tx.tap.TwistdOptions}: a bad option is one line and a hint."""

    @property
    def options(self):  # type: ignore[no-untyped-def]
        return namedAny(self.module).TwistdOptions


p2pnet = _P2PNetServiceMaker(
    "p2pnet_tx node", "p2pnet_tx.tap", "Run a P2PNet peer.", "p2pnet"
)

p2pnet_bootstrap = _P2PNetServiceMaker(
    "p2pnet_tx bootstrap server", "p2pnet_tx.bootstrap.tap",
    "Run a P2PNet bootstrap server: nodes register and learn peers; a dashboard at /.",
    "p2pnet-bootstrap",
)
