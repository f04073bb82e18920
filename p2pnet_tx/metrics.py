# -*- test-case-name: tests.test_metrics -*-
"""
A node's metrics in the Prometheus text format (version 0.0.4), for C{GET /metrics} on the
control API.

Nothing is counted twice: every figure is read, when a scrape asks, from where the node keeps
it already (the network's counters and tables, its channels, the owner's L{Traffic
<p2pnet_tx.channel.Traffic>}, the control site's counters).  The format is written here, by
hand, rather than with C{prometheus_client}: the node needs a dozen families and no registry
(whose default is process-wide state), and C{tests/test_metrics.py} reads every scrape back
with C{prometheus_client}'s own parser.

Transfers do not exist yet: L{NodeMetrics} takes a C{transfers} source, and the
C{p2pnet_transfer_*} families carry no samples until a part of the node gives one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from p2pnet_tx._version import __version__
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType

__all__ = ["CONTENT_TYPE", "MetricsText", "NodeMetrics", "TransferProgress"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
"""The content type of the Prometheus text format."""

# Counters with a family of their own; any other counter of the network is still exposed, as
# p2pnet_events_total{event="<name>"}, so that none is ever hidden.
_REFUSED_PEERS = {
    "identities_refused": "identity",
    "duplicates_refused": "duplicate",
    "tls_keys_refused": "tls_key",
    "identities_unbound": "unbound_identifier",
    "refused_identities": "refused_by_owner",
}
_PACKET_PROBLEMS = {
    "refused": "refused_untrusted",
    "malformed": "malformed",
    "unknown": "unknown_type",
    "framing_errors": "framing_error",
    "handler_errors": "handler_error",
    "partial_frame_timeouts": "partial_frame_timeout",
}
_CONNECTION_REFUSAL_CAUSES = (
    "network closed", "blocked", "too many connections from this address", "discouraged",
    "connecting too often", "too many inbound peers", "too many pending handshakes",
)
"""The causes admission control gives (L{Admission.refusal
<p2pnet_tx.network.admission.Admission.refusal>}), shown at 0 until they happen."""

_REFUSED_CONNECTIONS = "refused_connections"
_OWN = {
    *_REFUSED_PEERS, *_PACKET_PROBLEMS, _REFUSED_CONNECTIONS, "handshakes_ok",
    "handshakes_failed", "evicted", "pending_evicted", "misbehaving_peers",
}


@attrs.frozen
class TransferProgress:
    """
    How far one transfer has come, as a part of the node that transfers data reports it.

    @ivar transfer: what names the transfer (a file name, a task id).
    @ivar peer: the identifier (or address) of the peer at the other end.
    @ivar direction: C{"in"} or C{"out"}.
    @ivar done_bytes: bytes moved so far.
    @ivar total_bytes: the size, once known.
    """

    transfer: str
    peer: str
    direction: str
    done_bytes: int
    total_bytes: int | None = None


class MetricsText:
    """
    Writes metric families in the Prometheus text format: a family's C{# HELP} and C{# TYPE}
    lines, then its samples, label values escaped as the format asks.
    """

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        """
        Start a family.

        @param name: its name (counters end in C{_total}).
        @param kind: C{"counter"} or C{"gauge"}.
        @param help_text: one line saying what it measures.
        """
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """
        Add a sample to the family started last.

        @param name: the sample's name (the family's).
        @param value: its value.
        @param labels: its labels, if any.
        """
        if labels:
            inner = ",".join(f'{key}="{_escape_label(value_)}"' for key, value_ in
                             labels.items())
            name = f"{name}{{{inner}}}"
        self._lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        """The exposition, each line ended by a newline."""
        return "".join(line + "\n" for line in self._lines)


class NodeMetrics:
    """
    The metrics of one node, collected when asked.

    @param network: the node's network.
    @param transfers: gives the transfers in progress; C{None} while the node has no part
        that transfers data (the C{p2pnet_transfer_*} families then have no samples).
    """

    def __init__(
        self,
        network: PeerNetwork,
        transfers: Callable[[], Iterable[TransferProgress]] | None = None,
    ) -> None:
        self.network = network
        self.transfers = transfers

    def exposition(self, control: Mapping[str, int] | None = None) -> str:
        """
        Collect every metric now.

        @param control: the control site's counters (L{ControlSite.counters
            <p2pnet_tx.control_site.ControlSite.counters>}), if served by one.
        @return: the text exposition.
        """
        out = MetricsText()
        network = self.network
        counters = network.total_counters()
        self._node(out, network)
        self._peers(out, network)
        self._packets(out, network, counters)
        self._refusals(out, counters)
        self._peer_timing(out, network)
        self._transfers(out)
        if control is not None:
            self._control(out, control)
        return out.text()

    def _node(self, out: MetricsText, network: PeerNetwork) -> None:
        out.family("p2pnet_info", "gauge", "The node: its identifier, version, wire and transport.")
        out.sample("p2pnet_info", 1, {"identifier": network.identifier, "version": __version__,
                                      "wire": network.wire, "transport": network.transport})
        out.family("p2pnet_listening_port", "gauge", "The port announced to peers (0: none).")
        out.sample("p2pnet_listening_port", network.listening_port)

    def _peers(self, out: MetricsText, network: PeerNetwork) -> None:
        active = network.active_peer_channels
        pending = network.pending_channels
        out.family("p2pnet_channels", "gauge",
                   "Channels: accepted peers (active) and inbound handshakes (pending).")
        out.sample("p2pnet_channels", len(active), {"state": "active"})
        out.sample("p2pnet_channels", len(pending), {"state": "pending"})
        peers = {(trust, direction): 0 for trust in ("trusted", "untrusted")
                 for direction in ("inbound", "outbound")}
        for channel in active:
            trust = "trusted" if channel.is_trusted else "untrusted"
            peers[trust, "outbound" if network.is_outbound(channel) else "inbound"] += 1
        out.family("p2pnet_peers", "gauge", "Accepted peers, by trust and direction.")
        for (trust, direction), count in peers.items():
            out.sample("p2pnet_peers", count, {"trust": trust, "direction": direction})
        out.family("p2pnet_known_peers", "gauge", "Peers heard of (connected or gossiped).")
        out.sample("p2pnet_known_peers", len(network.known_peers))
        out.family("p2pnet_inbound_queue_peers", "gauge",
                   "New inbound peers waiting on the inbound queue.")
        out.sample("p2pnet_inbound_queue_peers", len(network.inbound))
        out.family("p2pnet_send_queue_bytes", "gauge",
                   "Bytes queued in the channels, waiting for their peers to read.")
        out.sample("p2pnet_send_queue_bytes",
                   sum(channel.queued_bytes for channel in (*active, *pending)))

    def _packets(self, out: MetricsText, network: PeerNetwork, counters: Mapping[str, int]) -> None:
        for direction, prefix, verb in (("received", "packets_in.", "received from"),
                                        ("sent", "packets_out.", "sent to")):
            name = f"p2pnet_packets_{direction}_total"
            out.family(name, "counter", f"Packets {verb} peers, by type.")
            for kind in PacketType:
                out.sample(name, counters.get(prefix + kind.value, 0), {"type": kind.value})
        traffic = network.traffic
        out.family("p2pnet_bytes_received_total", "counter",
                   "Bytes read from peers (over TLS: decrypted).")
        out.sample("p2pnet_bytes_received_total", traffic.bytes_in)
        out.family("p2pnet_bytes_sent_total", "counter",
                   "Bytes of the frames written or queued to peers.")
        out.sample("p2pnet_bytes_sent_total", traffic.bytes_out)

    def _refusals(self, out: MetricsText, counters: Mapping[str, int]) -> None:
        out.family("p2pnet_handshakes_total", "counter", "Trust handshakes, by result.")
        out.sample("p2pnet_handshakes_total", counters.get("handshakes_ok", 0), {"result": "ok"})
        out.sample("p2pnet_handshakes_total", counters.get("handshakes_failed", 0),
                   {"result": "failed"})
        prefix = _REFUSED_CONNECTIONS + "."
        causes = dict.fromkeys(_CONNECTION_REFUSAL_CAUSES, 0)
        for key, value in counters.items():
            if key.startswith(prefix):
                causes[key[len(prefix):]] = value
        out.family("p2pnet_connections_refused_total", "counter",
                   "Inbound connections refused before a byte was read, by cause.")
        for cause, value in causes.items():
            out.sample("p2pnet_connections_refused_total", value,
                       {"cause": cause.replace(" ", "_")})
        out.family("p2pnet_peers_refused_total", "counter",
                   "Peers refused once they said who they are, by cause.")
        for key, cause in _REFUSED_PEERS.items():
            out.sample("p2pnet_peers_refused_total", counters.get(key, 0), {"cause": cause})
        out.family("p2pnet_packet_problems_total", "counter",
                   "Packets refused by the trust gate, or bad, by cause.")
        for key, cause in _PACKET_PROBLEMS.items():
            out.sample("p2pnet_packet_problems_total", counters.get(key, 0), {"cause": cause})
        out.family("p2pnet_misbehaving_peers_total", "counter",
                   "Peers dropped for breaking the protocol (their address discouraged).")
        out.sample("p2pnet_misbehaving_peers_total", counters.get("misbehaving_peers", 0))
        out.family("p2pnet_evictions_total", "counter",
                   "Peers closed to make room for a newcomer, by table.")
        out.sample("p2pnet_evictions_total", counters.get("evicted", 0), {"table": "inbound"})
        out.sample("p2pnet_evictions_total", counters.get("pending_evicted", 0),
                   {"table": "pending"})
        others = sorted(
            (key, value) for key, value in counters.items()
            if key not in _OWN and not key.startswith(("packets_in.", "packets_out.", prefix))
        )
        out.family("p2pnet_events_total", "counter",
                   "Every other counter of the node (dials, gossip, ...), by name.")
        for key, value in others:
            out.sample("p2pnet_events_total", value, {"event": key})

    def _peer_timing(self, out: MetricsText, network: PeerNetwork) -> None:
        rtts: list[tuple[dict[str, str], float]] = []
        seen: list[tuple[dict[str, str], float]] = []
        names: set[str] = set()
        for channel in network.active_peer_channels:
            name = _peer_label(channel)
            if name in names:
                continue  # two series with one label set would spoil the whole scrape
            names.add(name)
            echo = channel.echo_rtt
            rtt = echo if echo is not None else channel.rtt
            if rtt is not None:
                source = "keepalive" if echo is not None else "kernel"
                rtts.append(({"peer": name, "source": source}, rtt))
            last = channel.last_incoming_data_received
            if last is not None:
                seen.append(({"peer": name}, last))
        out.family("p2pnet_peer_rtt_seconds", "gauge",
                   "Round-trip time to each accepted peer: its last keep-alive echo, or the "
                   "kernel's.")
        for labels, value in rtts:
            out.sample("p2pnet_peer_rtt_seconds", value, labels)
        out.family("p2pnet_peer_last_seen_timestamp_seconds", "gauge",
                   "When bytes last arrived from each accepted peer (Unix time).")
        for labels, value in seen:
            out.sample("p2pnet_peer_last_seen_timestamp_seconds", value, labels)

    def _transfers(self, out: MetricsText) -> None:
        progress = list(self.transfers()) if self.transfers is not None else []
        out.family("p2pnet_transfer_done_bytes", "gauge",
                   "Bytes moved so far by each transfer in progress.")
        for item in progress:
            out.sample("p2pnet_transfer_done_bytes", item.done_bytes, _transfer_labels(item))
        out.family("p2pnet_transfer_size_bytes", "gauge",
                   "The size of each transfer in progress, once known.")
        for item in progress:
            if item.total_bytes is not None:
                out.sample("p2pnet_transfer_size_bytes", item.total_bytes,
                           _transfer_labels(item))

    def _control(self, out: MetricsText, control: Mapping[str, int]) -> None:
        out.family("p2pnet_control_connections", "gauge",
                   "Connections to the control API open now, and the most it keeps.")
        out.sample("p2pnet_control_connections", control.get("open", 0), {"state": "open"})
        out.sample("p2pnet_control_connections", control.get("max", 0), {"state": "max"})
        out.family("p2pnet_control_connections_closed_total", "counter",
                   "Control connections closed by the node, by cause.")
        for cause in ("evicted", "refused", "timed_out"):
            out.sample("p2pnet_control_connections_closed_total", control.get(cause, 0),
                       {"cause": cause})
        out.family("p2pnet_control_requests_refused_total", "counter",
                   "Control requests refused from their headers (token, Host, size).")
        out.sample("p2pnet_control_requests_refused_total", control.get("refused_requests", 0))

    def render(self, request: Any, control: Mapping[str, int] | None = None) -> bytes:
        """
        Answer a scrape: the exposition, with the format's content type.

        @param request: the HTTP request (already authenticated).
        @param control: as for L{exposition}.
        @return: the body.
        """
        request.setHeader(b"content-type", CONTENT_TYPE)
        return self.exposition(control).encode("utf-8")


def _peer_label(channel: Any) -> str:
    peer = channel.peer
    identifier = getattr(peer, "identifier", None)
    if identifier:
        return identifier
    address, port = getattr(peer, "address", "?"), getattr(peer, "port", 0)
    return f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"


def _transfer_labels(item: TransferProgress) -> dict[str, str]:
    return {"transfer": item.transfer, "peer": item.peer, "direction": item.direction}


def _escape_label(value: str) -> str:
    # The format is UTF-8: a lone surrogate (which no peer text should hold) is written as its
    # escape, whose backslash is then escaped like any other.
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
