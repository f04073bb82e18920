"""
The examples of the documentation run as documented.
"""

from __future__ import annotations

import importlib.util
import os

from twisted.application.service import IService
from twisted.internet.testing import MemoryReactorClock
from twisted.persisted.sob import loadValueFromFile
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.service import PeerNetworkService
from p2pnet_tx.testing import complete_tcp_connection

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "docs", "examples")


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class EmbeddingExampleTests(SynchronousTestCase):
    """docs/embedding.md: two example nodes greet each other."""

    def test_two_nodes_greet(self) -> None:
        """Each node sends a greeting once it trusts the other, and receives the other's."""
        embedding = load_example("embedding")
        reactor = MemoryReactorClock()
        first = embedding.make_node(reactor, "first", listen="tcp:8061")
        second = embedding.make_node(reactor, "second", listen="tcp:8062",
                                     peers=[GenericPeer("10.0.0.1", 8061)])
        first.startService()
        second.startService()
        pump = complete_tcp_connection(reactor)
        pump.flush()
        self.assertEqual(first.received, ["hello from second"])
        self.assertEqual(second.received, ["hello from first"])
        stopped = second.stopService()
        pump.flush()
        self.successResultOf(stopped)
        self.successResultOf(first.stopService())
        self.assertEqual(first.network.active_peer_channels, [])

    def test_tac_builds_application(self) -> None:
        """node.tac defines an application holding a node service."""
        application = loadValueFromFile(os.path.join(EXAMPLES, "node.tac"), "application")
        [node] = list(IService(application))
        self.assertIsInstance(node, PeerNetworkService)
