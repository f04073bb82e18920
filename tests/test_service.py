"""
Tests for L{p2pnet_tx.service}: the node service, its peer keepers and its saved state.
"""

from __future__ import annotations

import json

from twisted.internet.testing import MemoryReactorClock
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.datadir import NodeDataDir
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.service import PeerKeeper, PeerNetworkService
from p2pnet_tx.testing import complete_tcp_connection


class PeerKeeperTests(SynchronousTestCase):
    """A kept peer is reconnected with exponential backoff, and let go on stop."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, identifier="me")
        self.keeper = PeerKeeper(self.network, GenericPeer("10.0.0.9", 8051), max_delay=4.0)

    def attempts(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def test_backoff(self) -> None:
        """Failures are retried after 1, 2, 4, 4 ... seconds."""
        self.keeper.startService()
        completer = ConnectionCompleter(self.reactor)
        delays = []
        for _ in range(4):
            self.assertEqual(self.attempts(), [("10.0.0.9", 8051)])
            completer.failOnce()
            [call] = self.reactor.getDelayedCalls()
            delays.append(call.getTime() - self.reactor.seconds())
            self.reactor.advance(delays[-1])
        self.assertEqual(delays, [1.0, 2.0, 4.0, 4.0])

    def test_reconnects_after_loss(self) -> None:
        """A kept peer whose channel closes is dialled again."""
        server = PeerNetwork(self.reactor, identifier="server")
        server.listen("tcp:8051")
        self.keeper.startService()
        pump = complete_tcp_connection(self.reactor)
        pump.flush()
        self.assertIsNotNone(self.keeper.channel)
        self.keeper.channel.close("test")
        pump.flush()
        self.assertIsNone(self.keeper.channel)
        self.assertEqual(self.attempts(), [])
        self.reactor.advance(1.0)
        self.assertEqual(self.attempts(), [("10.0.0.9", 8051)])

    def test_untrusted_connection_does_not_reset_backoff(self) -> None:
        """A peer that accepts the connection but never trusts us is redialled ever slower."""
        server = PeerNetwork(self.reactor, identifier="server", trust_protocol="none")
        server.listen("tcp:8051")
        network = PeerNetwork(self.reactor, identifier="me", trust_protocol="none")
        keeper = PeerKeeper(network, GenericPeer("10.0.0.9", 8051), max_delay=64.0)
        keeper.startService()
        delays = []
        for _ in range(3):
            pump = complete_tcp_connection(self.reactor)
            pump.flush()
            keeper.channel.close("refused")
            pump.flush()
            [call] = [c for c in self.reactor.getDelayedCalls() if c.func == keeper._connect]
            delays.append(call.getTime() - self.reactor.seconds())
            self.reactor.advance(delays[-1])
        self.assertEqual(delays, [1.0, 2.0, 4.0])
        keeper.stopService()

    def test_stop_cancels_everything(self) -> None:
        """Stopping the keeper cancels the pending retry and the attempt in flight."""
        self.keeper.startService()
        ConnectionCompleter(self.reactor).failOnce()
        self.keeper.stopService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.reactor.advance(10)
        self.assertEqual(self.attempts(), [])

    def test_gives_up_on_self(self) -> None:
        """A kept peer that is this node is not retried."""
        keeper = PeerKeeper(self.network, GenericPeer("10.0.0.1", 1, "me"))
        keeper.startService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.attempts(), [])
        self.assertIsNone(keeper.channel)


class PeerNetworkServiceTests(SynchronousTestCase):
    """Starting the node listens and restores state; stopping closes and saves it."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.data_dir = NodeDataDir(self.mktemp()).ensure()
        self.network = PeerNetwork(self.reactor, identifier="node")

    def service(self, **kwargs: object) -> PeerNetworkService:
        return PeerNetworkService(self.network, listen="tcp:8051", data_dir=self.data_dir,
                                  **kwargs)  # type: ignore[arg-type]

    def test_listens_and_serves_control(self) -> None:
        """Starting listens for peers and for the control API, and writes the control URL."""
        service = self.service(control="tcp:8765:interface=127.0.0.1", control_token="t")
        service.startService()
        ports = sorted(port for port, *_ in self.reactor.tcpServers)
        self.assertEqual(ports, [8051, 8765])
        self.assertEqual(self.network.listening_port, 8051)
        self.assertEqual(self.data_dir.control_url(), "http://127.0.0.1:8765")
        self.successResultOf(service.stopService())
        self.assertIsNone(self.data_dir.control_url())

    def test_control_needs_token(self) -> None:
        """A control API without a token is refused at construction."""
        self.assertRaises(ValueError, self.service, control="tcp:8765")

    def test_restores_and_saves_state(self) -> None:
        """Blocks and known peers from the data dir are restored; changes are saved."""
        self.data_dir.save_blocked(["10.0.0.7"], ["bad"])
        self.data_dir.save_known_peers([GenericPeer("10.0.0.8", 8051, "old")])
        service = self.service()
        service.startService()
        self.assertTrue(self.network.policy.is_blocked_ip("10.0.0.7"))
        self.assertTrue(self.network.policy.is_blocked_identifier("bad"))
        self.assertIn(("10.0.0.8", 8051), self.network.known_peers)
        # A restarted node dials the peers it knew.
        self.assertEqual([(h, p) for h, p, *_ in self.reactor.tcpClients], [("10.0.0.8", 8051)])
        self.network.block(ip="10.0.0.9")
        self.assertEqual(self.data_dir.blocked()[0], ["10.0.0.7", "10.0.0.9"])
        self.network.remember(GenericPeer("10.0.0.10", 1))
        self.successResultOf(service.stopService())
        saved = json.loads((self.data_dir.path / "known_peers.json").read_text())
        self.assertEqual([entry["address"] for entry in saved], ["10.0.0.8", "10.0.0.10"])


class SaveDebounceTests(SynchronousTestCase):
    """Known peers are written once per burst of newly trusted peers, not once per peer."""

    def test_one_write_per_burst(self) -> None:
        """Many trusted peers within a second make one pending save; stop saves at once."""
        from p2pnet_tx.service import SAVE_DELAY

        reactor = MemoryReactorClock()
        data_dir = NodeDataDir(self.mktemp()).ensure()
        network = PeerNetwork(reactor, identifier="node")
        service = PeerNetworkService(network, listen="tcp:8051", data_dir=data_dir)
        service.startService()
        for n in range(1, 4):
            network.remember(GenericPeer("10.0.0.1", n))
            network.peer_trusted.notify(None)
        self.assertEqual(len(reactor.getDelayedCalls()), 1)
        self.assertEqual(data_dir.known_peers(), [])
        reactor.advance(SAVE_DELAY)
        self.assertEqual(len(data_dir.known_peers()), 3)
        network.remember(GenericPeer("10.0.0.1", 4))
        network.peer_trusted.notify(None)
        self.successResultOf(service.stopService())
        self.assertEqual(len(data_dir.known_peers()), 4)
        self.assertEqual(reactor.getDelayedCalls(), [])
