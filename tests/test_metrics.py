# -*- test-case-name: tests.test_metrics -*-
"""
Tests for L{p2pnet_tx.metrics}: C{GET /metrics} on the control API, read back with the
official Prometheus parser (C{prometheus_client.parser}), with the token required, every
family present, figures that follow the network, hostile label values escaped, and the
transfer families waiting for a source.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import KEEPALIVE_MESSAGE
from p2pnet_tx.control import ControlAPI, ControlSite, MessageLog
from p2pnet_tx.metrics import CONTENT_TYPE, NodeMetrics, TransferProgress
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import IdentifierPacket, PureMessagePacket
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire import get_codec

TOKEN = "s3cret-token"
AUTH = {b"Authorization": [b"Bearer " + TOKEN.encode()]}

FAMILIES = {
    "p2pnet_info": "gauge",
    "p2pnet_listening_port": "gauge",
    "p2pnet_channels": "gauge",
    "p2pnet_peers": "gauge",
    "p2pnet_known_peers": "gauge",
    "p2pnet_inbound_queue_peers": "gauge",
    "p2pnet_send_queue_bytes": "gauge",
    "p2pnet_packets_received": "counter",
    "p2pnet_packets_sent": "counter",
    "p2pnet_bytes_received": "counter",
    "p2pnet_bytes_sent": "counter",
    "p2pnet_handshakes": "counter",
    "p2pnet_connections_refused": "counter",
    "p2pnet_peers_refused": "counter",
    "p2pnet_packet_problems": "counter",
    "p2pnet_misbehaving_peers": "counter",
    "p2pnet_evictions": "counter",
    "p2pnet_events": "counter",
    "p2pnet_peer_rtt_seconds": "gauge",
    "p2pnet_peer_last_seen_timestamp_seconds": "gauge",
    "p2pnet_transfer_done_bytes": "gauge",
    "p2pnet_transfer_size_bytes": "gauge",
}
"""Every family of a node's scrape (the parser names counters without C{_total})."""


def parse(text: str) -> dict[str, Any]:
    """Parse a scrape with prometheus_client: families by name."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    """The one sample of family C{name} with exactly C{labels}."""
    [sample] = [s for s in families[name].samples if s.labels == labels]
    return sample.value


class MetricsTests(SynchronousTestCase):
    """What a scrape says, parsed by the official parser."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_800_000_000.0)
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.metrics = NodeMetrics(self.network)

    def add_peer(self, host: str, identifier: str, port: int = 9000) -> Any:
        channel = self.network.make_channel(outbound=False)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, 40000)))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", port, "", source_origin_identifier=identifier)))
        return channel

    def scrape(self, **kwargs: Any) -> dict[str, Any]:
        return parse(self.metrics.exposition(**kwargs))

    def test_every_family_parses(self) -> None:
        """An idle node's scrape parses, with every family and its type."""
        families = self.scrape()
        self.assertEqual({name: f.type for name, f in families.items()}, FAMILIES)
        [info] = families["p2pnet_info"].samples
        self.assertEqual(info.labels["identifier"], "node")
        self.assertEqual((info.labels["wire"], info.labels["transport"]), ("p2pnet", "tcp"))
        for kind in ("Identity", "Disconnect", "PeerGroup", "DataTransmit", "Message"):
            self.assertEqual(value(families, "p2pnet_packets_received", type=kind), 0)

    def test_figures_follow_the_network(self) -> None:
        """Peers by trust and direction, packets by type and bytes match the network."""
        self.add_peer("10.0.0.7", "peer-a")
        untrusted = PeerNetwork(self.reactor, transport="tcp", identifier="n2",
                                trust_protocol="none")
        channel = untrusted.make_channel(outbound=True)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.8", 1)))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 9001, "", source_origin_identifier="peer-b")))
        families = self.scrape()
        self.assertEqual(value(families, "p2pnet_peers", trust="trusted", direction="inbound"), 1)
        self.assertEqual(value(families, "p2pnet_peers", trust="untrusted",
                               direction="outbound"), 0)
        self.assertEqual(value(families, "p2pnet_channels", state="active"), 1)
        self.assertEqual(value(families, "p2pnet_packets_received", type="Identity"), 1)
        self.assertEqual(value(families, "p2pnet_packets_sent", type="Identity"), 1)
        self.assertEqual(value(families, "p2pnet_handshakes", result="ok"), 1)
        self.assertEqual(value(families, "p2pnet_bytes_received"),
                         self.network.traffic.bytes_in)
        self.assertGreater(self.network.traffic.bytes_in, 0)
        self.assertEqual(value(families, "p2pnet_known_peers"), 1)
        other = parse(NodeMetrics(untrusted).exposition())
        self.assertEqual(value(other, "p2pnet_peers", trust="untrusted", direction="outbound"), 1)

    def test_refusals_by_cause(self) -> None:
        """Connections refused at accept are counted by cause; so are evictions and events."""
        self.network.block(ip="10.0.0.66")
        self.assertIsNone(self.network.factory.buildProtocol(
            IPv4Address("TCP", "10.0.0.66", 40000)))
        self.network.counters["evicted"] += 2
        self.network.counters["dials_failed"] += 3
        families = self.scrape()
        self.assertEqual(value(families, "p2pnet_connections_refused", cause="blocked"), 1)
        self.assertEqual(value(families, "p2pnet_connections_refused",
                               cause="too_many_inbound_peers"), 0)
        self.assertEqual(value(families, "p2pnet_evictions", table="inbound"), 2)
        self.assertEqual(value(families, "p2pnet_events", event="dials_failed"), 3)
        events = {s.labels["event"] for s in families["p2pnet_events"].samples}
        self.assertNotIn("refused_connections", events, "each counter in one family only")
        self.assertNotIn("refused_connections.blocked", events)

    def test_rtt_and_last_seen_per_peer(self) -> None:
        """Each accepted peer's RTT (with its source) and when it was last seen."""
        channel = self.add_peer("10.0.0.7", "peer-a")
        families = self.scrape()
        self.assertEqual(families["p2pnet_peer_rtt_seconds"].samples, [])
        self.assertEqual(value(families, "p2pnet_peer_last_seen_timestamp_seconds",
                               peer="peer-a"), 1_800_000_000.0)
        self.reactor.advance(channel.limits.keepalive_interval)
        channel.transport.clear()
        self.reactor.advance(0.25)
        echo = PureMessagePacket(
            KEEPALIVE_MESSAGE, source_origin_identifier="node",
            source_origin_time=datetime.fromtimestamp(channel._timers.last_sent, timezone.utc))
        channel.dataReceived(get_codec("p2pnet").encode(echo))
        families = self.scrape()
        self.assertEqual(value(families, "p2pnet_peer_rtt_seconds", peer="peer-a",
                               source="keepalive"), 0.25)
        self.assertEqual(value(families, "p2pnet_peer_last_seen_timestamp_seconds",
                               peer="peer-a"), self.reactor.seconds())

    def test_hostile_label_values_escaped(self) -> None:
        """A peer's identifier with quotes, backslashes, newlines reads back exactly."""
        hostile = 'a"b\\c\nd} x{y="z"'
        self.add_peer("10.0.0.7", hostile)
        families = self.scrape()
        [sample] = families["p2pnet_peer_last_seen_timestamp_seconds"].samples
        self.assertEqual(sample.labels, {"peer": hostile})

    def test_transfers_wait_for_a_source(self) -> None:
        """Without a source the transfer families have no samples; a source fills them."""
        families = self.scrape()
        self.assertEqual(families["p2pnet_transfer_done_bytes"].samples, [])
        metrics = NodeMetrics(self.network, transfers=lambda: [
            TransferProgress("file.bin", "peer-a", "out", 1024, 4096),
            TransferProgress("task-7", "peer-b", "in", 10),
        ])
        families = parse(metrics.exposition())
        self.assertEqual(value(families, "p2pnet_transfer_done_bytes", transfer="file.bin",
                               peer="peer-a", direction="out"), 1024)
        self.assertEqual(value(families, "p2pnet_transfer_size_bytes", transfer="file.bin",
                               peer="peer-a", direction="out"), 4096)
        self.assertEqual(len(families["p2pnet_transfer_size_bytes"].samples), 1)


class MetricsEndpointTests(SynchronousTestCase):
    """C{GET /metrics} on the control API: the token is required."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.api = ControlAPI(self.network, TOKEN, MessageLog(self.reactor), "tcp:8051")

    def get(self, headers: Any) -> tuple[Any, bytes]:
        http = StubTreq(self.api)
        response = self.successResultOf(http.get("http://127.0.0.1/metrics", headers=headers))
        content = self.successResultOf(response.content())
        http.flush()
        return response, content

    def test_token_required(self) -> None:
        """Without the bearer token (or with a wrong one) /metrics is a 401."""
        for headers in ({}, {b"Authorization": [b"Bearer wrong"]}):
            response, _ = self.get(headers)
            self.assertEqual(response.code, 401)
            self.assertIsNotNone(response.headers.getRawHeaders(b"www-authenticate"))

    def test_scrape(self) -> None:
        """With the token: the text format's content type, and a body the parser reads."""
        response, content = self.get(AUTH)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [CONTENT_TYPE])
        self.assertEqual(set(parse(content.decode())), set(FAMILIES))

    def test_control_site_counters(self) -> None:
        """Served by a ControlSite, the scrape shows its connections too."""
        site = ControlSite(self.api, self.reactor)
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        channel = site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
                             b"Bearer " + TOKEN.encode() + b"\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        families = parse(body.decode())
        self.assertEqual(value(families, "p2pnet_control_connections", state="open"), 1)
        self.assertEqual(value(families, "p2pnet_control_connections", state="max"), 64)
        self.assertEqual(value(families, "p2pnet_control_requests_refused"), 0)
