"""
LanDiscoveryService on in-memory UDP (tests/discovery_fakes.py): where it listens and sends in
each mode, what it sends, how a datagram it receives becomes a dial, its status, and that it
stops clean.  No sockets.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.discovery import LanDiscoveryConfig, LanDiscoveryService
from p2pnet_tx.discovery.announcement import AnnouncementReader
from p2pnet_tx.discovery.dotnet_datagram import parse_dotnet_datagram
from p2pnet_tx.identity import public_key_bytes
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.service import PeerNetworkService

from .discovery_fakes import UDPMemoryReactor


class LanDiscoveryServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = UDPMemoryReactor()
        self.reactor.advance(1_800_000_000)

    def node(self, address: str = "10.0.0.1", listening: bool = True, wire: str = "p2pnet",
             **config: Any) -> LanDiscoveryService:
        network = PeerNetwork(self.reactor, wire=wire)
        if listening:
            network.port_opened(self.reactor.listenTCP(8051, network.factory))
        return LanDiscoveryService(network, self.reactor, LanDiscoveryConfig(**config),
                                   local_address=lambda: address)

    def run_for(self, seconds: float) -> None:
        self.reactor.pump([0.1] * int(seconds * 10))

    def test_p2pnet_ports(self) -> None:
        """A p2pnet node listens on 8004 with SO_REUSEADDR/SO_REUSEPORT (listenMultiple),
        joins 239.255.80.80, keeps multicast on the LAN (TTL 1), may broadcast, and reads at
        most one byte more than the datagram cap."""
        service = self.node()
        service.startService()
        (port,) = self.reactor.udp_ports
        self.assertEqual(port.number, 8004)
        self.assertEqual(port.options["listenMultiple"], True)
        self.assertEqual(port.options["maxPacketSize"], 1281)
        self.assertEqual(port.groups, ["239.255.80.80"])
        self.assertEqual((port.ttl, port.broadcast), (1, True))

    def test_dotnet_ports(self) -> None:
        """A dotnet node listens on .NET's 8001-8003 and on 3000 joined to 224.0.0.1."""
        service = self.node(wire="dotnet")
        service.startService()
        self.assertEqual([p.number for p in self.reactor.udp_ports], [8001, 8002, 8003, 3000])
        self.assertEqual([p.groups for p in self.reactor.udp_ports], [[], [], [], ["224.0.0.1"]])
        self.assertTrue(all(p.options["listenMultiple"] for p in self.reactor.udp_ports))

    def test_sends_signed_announcements(self) -> None:
        """Within half a second of start, one announcement to 255.255.255.255:8004 and one to
        the group, each signed by the node key, naming its address and TCP port, each with its
        own nonce; more follow."""
        service = self.node()
        service.startService()
        self.run_for(0.6)
        port = self.reactor.udp_ports[0]
        self.assertEqual([addr for _, addr in port.written],
                         [("255.255.255.255", 8004), ("239.255.80.80", 8004)])
        reader = AnnouncementReader(self.reactor.seconds, b"\x00" * 32)
        announced = [reader.read(data, "10.0.0.1") for data, _ in port.written]
        self.assertEqual({(a.identifier, a.port) for a in announced},
                         {(service.network.identifier, 8051)})
        self.assertEqual(announced[0].public_key, public_key_bytes(service.network.private_key))
        self.run_for(10)
        self.assertGreater(len(port.written), 4)
        self.assertEqual(service.status()["sent"], len(port.written))

    def test_sends_dotnet_datagrams(self) -> None:
        """A dotnet node sends .NET's datagram to 255.255.255.255:8001 and 224.0.0.1:3000."""
        service = self.node(wire="dotnet")
        service.startService()
        self.run_for(0.6)
        port = self.reactor.udp_ports[0]
        self.assertEqual([addr for _, addr in port.written],
                         [("255.255.255.255", 8001), ("224.0.0.1", 3000)])
        packet = parse_dotnet_datagram(port.written[0][0])
        self.assertEqual((packet.message, packet.data, packet.ip, packet.source_origin_identifier),
                         ("discovery", 8051, "10.0.0.1", service.network.identifier))

    def test_nothing_sent_before_listening_or_without_a_route(self) -> None:
        """No TCP port yet, or no route (no address to announce): nothing sent, the latter
        counted and warned about once."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        quiet = self.node(listening=False)
        quiet.startService()
        self.run_for(5)
        self.assertEqual(self.reactor.udp_ports[0].written, [])
        no_route = self.node(address=None)  # type: ignore[arg-type]
        no_route.startService()
        self.run_for(5)
        self.assertEqual(self.reactor.udp_ports[1].written, [])
        self.assertGreater(no_route.counters["no_address"], 1)
        self.assertEqual(len([e for e in events if "no route" in e.get("log_format", "")]), 1)

    def test_announcement_heard_becomes_a_dial(self) -> None:
        """B hears A's announcement (from A's address) and dials A's TCP port; hearing A again
        while the dial is under way dials nothing more."""
        a, b = self.node("10.0.0.1"), self.node("10.0.0.2")
        a.startService()
        b.startService()
        self.run_for(0.6)
        b_protocol = self.reactor.udp_ports[1].protocol
        clients = len(self.reactor.tcpClients)
        for data, _ in self.reactor.udp_ports[0].written:
            b_protocol.datagramReceived(data, ("10.0.0.1", 8004))
        dials = self.reactor.tcpClients[clients:]
        self.assertEqual([(host, port) for host, port, *_ in dials], [("10.0.0.1", 8051)])
        status = b.status()
        self.assertEqual((status["accepted"], status["dials_started"], status["pending_dials"]),
                         (2, 1, 1))
        self.assertEqual(status["dials_skipped"], {"pending": 1})

    def test_spoofed_source_is_not_dialled(self) -> None:
        """A's announcement arriving from another address is refused and dials nothing."""
        a, b = self.node("10.0.0.1"), self.node("10.0.0.2")
        a.startService()
        b.startService()
        self.run_for(0.6)
        clients = len(self.reactor.tcpClients)
        data = self.reactor.udp_ports[0].written[0][0]
        self.reactor.udp_ports[1].protocol.datagramReceived(data, ("10.0.0.66", 8004))
        self.assertEqual(len(self.reactor.tcpClients), clients)
        self.assertEqual(b.status()["rejected"], {"source_mismatch": 1})

    def test_own_announcement_looped_back(self) -> None:
        """A node hearing itself (multicast loops back) refuses it as self."""
        a = self.node("10.0.0.1")
        a.startService()
        self.run_for(0.6)
        port = self.reactor.udp_ports[0]
        port.protocol.datagramReceived(port.written[0][0], ("10.0.0.1", 8004))
        self.assertEqual(a.status()["rejected"], {"self": 1})

    def test_status_is_json(self) -> None:
        """The status section is JSON and says where it listens and sends."""
        service = self.node()
        service.startService()
        status = json.loads(json.dumps(service.status()))
        self.assertEqual(status["listening"], [{"port": 8004, "group": "239.255.80.80"}])
        self.assertEqual(status["sends_to"], ["255.255.255.255:8004", "239.255.80.80:8004"])
        self.assertEqual((status["mode"], status["format"], status["running"]),
                         ("lan", "p2pnet", True))

    def test_stop_leaves_nothing(self) -> None:
        """Stopping closes the ports, cancels the dials under way and leaves no timer."""
        a, b = self.node("10.0.0.1"), self.node("10.0.0.2")
        a.startService()
        b.startService()
        self.run_for(0.6)
        data = self.reactor.udp_ports[0].written[0][0]
        self.reactor.udp_ports[1].protocol.datagramReceived(data, ("10.0.0.1", 8004))
        self.successResultOf(b.stopService())
        self.successResultOf(a.stopService())
        self.assertFalse(any(p.listening for p in self.reactor.udp_ports))
        self.assertEqual(b.status()["pending_dials"], 0)
        self.assertEqual(b.counters["dials_cancelled"], 1)
        self.assertFalse([c for c in self.reactor.getDelayedCalls()
                          if "Announcer" in repr(c.func)])
        self.assertEqual(b.status()["listening"], [])

    def test_port_that_cannot_be_opened(self) -> None:
        """A port that cannot be opened is an error in the log and a count; the others still
        open.  With none open, nothing is announced."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.reactor.taken = {8002}
        dotnet = self.node(wire="dotnet")
        dotnet.startService()
        self.assertEqual([p.number for p in self.reactor.udp_ports], [8001, 8003, 3000])
        self.assertEqual(dotnet.counters["listen_failed"], 1)
        self.reactor.taken = {8004}
        blocked = self.node()
        blocked.startService()
        self.run_for(2)
        self.assertEqual(blocked.status()["listening"], [])
        self.assertFalse(blocked.announcer.running)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 3)  # 8002, 8004, and "could not open any port"

    def test_group_that_cannot_be_joined(self) -> None:
        """A failed join (no multicast route) is a warning and a count; broadcast goes on."""
        self.reactor.join_error = OSError(19, "No such device")
        service = self.node()
        service.startService()
        self.run_for(0.6)
        self.assertEqual(service.counters["join_failed"], 1)
        self.assertTrue(self.reactor.udp_ports[0].written)

    def test_config_checked(self) -> None:
        """A group that is not IPv4 multicast, an address that is not IPv4, an interval of 0:
        refused when configured, not when first used."""
        for bad in ({"group": "10.0.0.1"}, {"group": "ff02::1"}, {"address": "::1"},
                    {"address": "host"}, {"interval": 0}, {"port": 0},
                    {"max_pending_dials": 0}):
            with self.subTest(**{k: repr(v) for k, v in bad.items()}):
                self.assertRaises(ValueError, LanDiscoveryConfig, **bad)  # type: ignore[arg-type]

    def test_a_failing_round_does_not_end_the_schedule(self) -> None:
        """A round whose datagrams cannot be made (here: finding the address fails with a
        bug) is logged and counted; the next round goes out."""
        calls = []

        def address() -> str:
            calls.append(None)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return "10.0.0.1"

        network = PeerNetwork(self.reactor)
        network.port_opened(self.reactor.listenTCP(8051, network.factory))
        service = LanDiscoveryService(network, self.reactor, local_address=address)
        service.startService()
        self.run_for(2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(service.counters["send_failed"], 1)
        self.assertTrue(self.reactor.udp_ports[0].written)

    def test_a_part_of_the_node(self) -> None:
        """Added with add_part, discovery starts and stops with the node and shows in
        /api/status under "discovery"."""
        from twisted.web.test.requesthelper import DummyRequest

        service = self.node()
        node = PeerNetworkService(service.network, listen="tcp:8051",
                                  control="tcp:8765:interface=127.0.0.1", control_token="t",
                                  reactor=self.reactor)
        node.add_part("discovery", service, status=service.status)
        node.startService()
        self.assertTrue(service.running)
        assert node.api is not None
        status = node.api.get_status(DummyRequest([b"api", b"status"]), None)
        self.assertEqual(status["discovery"]["format"], "p2pnet")
        self.successResultOf(node.stopService())
        self.assertFalse(service.running)
