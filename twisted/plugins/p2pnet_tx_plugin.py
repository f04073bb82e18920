"""
The twistd dropins of p2pnet_tx: C{twistd p2pnet}.

This module holds L{ServiceMaker}s only; everything else lives in L{p2pnet_tx.tap}.
"""

from twisted.application.service import ServiceMaker

p2pnet = ServiceMaker(
    "p2pnet_tx node", "p2pnet_tx.tap", "Run a P2PNet peer.", "p2pnet"
)
