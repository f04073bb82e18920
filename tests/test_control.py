"""
Tests for L{p2pnet_tx.control}: the control API, served in memory with treq's StubTreq, and
behind a real L{Site} with L{ControlRequest} over an in-memory transport.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from p2pnet_tx.control import MAX_BODY, ControlAPI, ControlRequest, MessageLog
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import IdentifierPacket, PureMessagePacket
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire import get_codec

TOKEN = "s3cret-token"
AUTH = {b"Authorization": [b"Bearer " + TOKEN.encode()]}


class ControlAPITests(SynchronousTestCase):
    """Every endpoint, the bearer token, the Host guard and bad input."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.messages = MessageLog(self.reactor)
        self.messages.install(self.network)
        self.api = ControlAPI(self.network, TOKEN, self.messages, "tcp:8051")
        self.http = StubTreq(self.api)

    def add_peer(self, host: str, identifier: str, port: int = 9000,
                 name: str = "connect") -> Any:
        channel = self.network.make_channel(outbound=False)
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        channel.makeConnection(transport)
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            name, port, "", source_origin_identifier=identifier)))
        return channel

    def call(self, method: str, path: str, body: Any = None, headers: Any = AUTH,
             url: str = "http://127.0.0.1") -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["data" if isinstance(body, bytes) else "json"] = body
        response = self.successResultOf(self.http.request(method, url + path, **kwargs))
        content = self.successResultOf(response.content())
        self.http.flush()
        return response.code, json.loads(content)

    def test_token_required(self) -> None:
        """Without the bearer token every endpoint answers 401."""
        for headers in ({}, {b"Authorization": [b"Bearer wrong"]}, {b"Authorization": [TOKEN]}):
            code, body = self.call("GET", "/api/status", headers=headers)
            self.assertEqual(code, 401)
            self.assertIn("token", body["error"])

    def test_non_loopback_host_refused(self) -> None:
        """A Host header that is not a loopback name is refused (DNS rebinding)."""
        code, body = self.call("GET", "/api/status", url="http://evil.example.com:8765")
        self.assertEqual(code, 403)
        code, _ = self.call("GET", "/api/status", url="http://localhost:8765")
        self.assertEqual(code, 200)
        code, _ = self.call("GET", "/api/status", headers={**AUTH, b"Host": [b"[::1]:8765"]})
        self.assertEqual(code, 200)
        code, _ = self.call("GET", "/api/status", headers={**AUTH, b"Host": [b"10.0.0.1"]})
        self.assertEqual(code, 403)

    def test_status(self) -> None:
        """Status shows the identifier, the listen address, counts and counters."""
        self.add_peer("10.0.0.7", "peer-a")
        code, body = self.call("GET", "/api/status")
        self.assertEqual(code, 200)
        self.assertEqual(body["identifier"], "node")
        self.assertEqual(body["listen"], "tcp:8051")
        self.assertEqual(body["counts"]["active"], 1)
        self.assertEqual(body["counts"]["trusted"], 1)
        self.assertEqual(body["counters"]["packets_in.Identity"], 1)
        self.assertEqual(body["counters"]["handshakes_failed"], 0)
        self.assertEqual(body["counters"]["malformed"], 0)

    def test_peers(self) -> None:
        """Peers lists the connected peers and the known ones."""
        self.add_peer("10.0.0.7", "peer-a", 9001, name="alice")
        code, body = self.call("GET", "/api/peers")
        self.assertEqual(code, 200)
        self.assertEqual(body["connected"], [{
            "identifier": "peer-a", "display_name": "alice", "address": "10.0.0.7",
            "port": 9001, "trusted": True, "direction": "inbound"}])
        self.assertEqual(body["known"], [
            {"identifier": "peer-a", "address": "10.0.0.7", "port": 9001}])

    def test_connect_bad_input(self) -> None:
        """POST /api/peers with a bad body or address is a 400 with a JSON error."""
        for body in (b"{not json", b"[1]", {"host": "nowhere", "port": 1},
                     {"host": "10.0.0.1", "port": 0}, {"host": "10.0.0.1"}):
            code, answer = self.call("POST", "/api/peers", body)
            self.assertEqual(code, 400, body)
            self.assertIsInstance(answer["error"], str)

    def test_connect_starts_dial(self) -> None:
        """POST /api/peers dials the peer; a refused connection is a 502."""
        d = self.http.request("POST", "http://127.0.0.1/api/peers",
                              json={"host": "10.0.0.9", "port": 8051}, headers=AUTH)
        self.assertEqual(self.reactor.tcpClients[0][:2], ("10.0.0.9", 8051))
        from twisted.test.iosim import ConnectionCompleter

        ConnectionCompleter(self.reactor).failOnce()
        self.http.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 502)

    def test_send_and_receive_messages(self) -> None:
        """Messages are sent to trusted peers; received ones are listed after since=N."""
        channel = self.add_peer("10.0.0.7", "peer-a")
        channel.transport.clear()
        code, body = self.call("POST", "/api/messages", {"message": "hello"})
        self.assertEqual((code, body), (200, {"sent": 1}))
        [packet] = get_codec("p2pnet").decoder().feed(channel.transport.value())
        self.assertEqual(packet.message, "hello")
        code, body = self.call("POST", "/api/messages", {"to": "peer-a", "message": "direct"})
        self.assertEqual(body, {"sent": 1})
        code, body = self.call("POST", "/api/messages", {"to": "nobody", "message": "x"})
        self.assertEqual(code, 404)
        for text in ("one", "Pinging", "two"):
            channel.dataReceived(get_codec("p2pnet").encode(PureMessagePacket(text)))
        code, body = self.call("GET", "/api/messages")
        self.assertEqual([m["message"] for m in body["messages"]], ["one", "two"])
        self.assertEqual(body["messages"][0]["from"], "peer-a")
        self.assertIs(body["messages"][0]["trusted"], True)
        code, body = self.call("GET", "/api/messages?since=1")
        self.assertEqual([m["message"] for m in body["messages"]], ["two"])
        code, body = self.call("GET", "/api/messages?since=x")
        self.assertEqual(code, 400)

    def test_message_body_validated(self) -> None:
        """A message that is not a string, or not encodable text, is a 400."""
        code, _ = self.call("POST", "/api/messages", {"message": 5})
        self.assertEqual(code, 400)
        code, body = self.call("POST", "/api/messages", b'{"message": "\\ud800"}')
        self.assertEqual(code, 400)
        self.assertIn("Unicode", body["error"])

    def test_deeply_nested_body(self) -> None:
        """A body nested past the JSON parser's recursion limit is a 400, not a crash."""
        code, body = self.call("POST", "/api/block", b"[" * 100_000 + b"]" * 100_000)
        self.assertIn(code, (400, 413))
        code, body = self.call("POST", "/api/block", b"[" * 20_000 + b"]" * 20_000)
        self.assertEqual(code, 400)

    def test_block(self) -> None:
        """POST /api/block blocks an IP or identifier and drops matching channels."""
        channel = self.add_peer("10.0.0.7", "peer-a")
        code, body = self.call("POST", "/api/block", {"ip": "10.0.0.7"})
        self.assertEqual((code, body), (200, {"blocked": "10.0.0.7", "dropped": 1}))
        self.assertTrue(channel.transport.disconnecting)
        self.assertTrue(self.network.policy.is_blocked_ip("10.0.0.7"))
        code, body = self.call("POST", "/api/block", {"identifier": "peer-b"})
        self.assertEqual(code, 200)
        self.assertTrue(self.network.policy.is_blocked_identifier("peer-b"))
        for bad in ({}, {"ip": "1.2.3.4", "identifier": "x"}, {"ip": "999.1.1.1"}, {"ip": 5}):
            code, _ = self.call("POST", "/api/block", bad)
            self.assertEqual(code, 400, bad)

    def test_delete_peer(self) -> None:
        """DELETE /api/peers/<identifier> disconnects that peer; unknown ones are 404."""
        channel = self.add_peer("10.0.0.7", "peer-a")
        d = self.http.request("DELETE", "http://127.0.0.1/api/peers/peer-a", headers=AUTH)
        self.http.flush()
        self.assertNoResult(d)
        self.assertTrue(channel.transport.disconnecting)
        channel.connectionLost()
        self.http.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        code, _ = self.call("DELETE", "/api/peers/peer-a")
        self.assertEqual(code, 404)

    def test_unknown_paths_and_methods(self) -> None:
        """Unknown paths are 404, wrong methods 405 with an Allow header."""
        self.assertEqual(self.call("GET", "/api/nothing")[0], 404)
        self.assertEqual(self.call("GET", "/other")[0], 404)
        self.assertEqual(self.call("GET", "/api/peers/a/b")[0], 404)
        response = self.successResultOf(
            self.http.request("PUT", "http://127.0.0.1/api/status", headers=AUTH))
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders(b"allow"), [b"GET"])

    def test_oversized_body_refused(self) -> None:
        """Bodies over 64 KiB are refused with 413."""
        code, _ = self.call("POST", "/api/messages", b"x" * (64 * 1024 + 1))
        self.assertEqual(code, 413)


class RecordingRequest(ControlRequest):
    """A control request that records the body chunks the channel hands it."""

    chunks: list[bytes] = []

    def handleContentChunk(self, data: bytes) -> None:
        self.chunks.append(data)
        super().handleContentChunk(data)


class ControlSiteTests(SynchronousTestCase):
    """The control API behind a real L{Site} and L{ControlRequest}, as a node serves it."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        api = ControlAPI(self.network, TOKEN, MessageLog(self.reactor), "tcp:8051")
        RecordingRequest.chunks = []
        self.site = Site(api, requestFactory=RecordingRequest, reactor=self.reactor)
        self.channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.channel.makeConnection(self.transport)

    def head(self, method: bytes, path: bytes, length: int | None = None,
             chunked: bool = False) -> bytes:
        lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1",
                 b"Authorization: Bearer " + TOKEN.encode(), b"Content-Type: application/json"]
        if length is not None:
            lines.append(b"Content-Length: %d" % length)
        if chunked:
            lines.append(b"Transfer-Encoding: chunked")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def response(self) -> tuple[int, dict[bytes, bytes], Any]:
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        status, *header_lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in header_lines)
        return int(status.split()[1]), headers, json.loads(body)

    def assert_refused_oversized(self) -> None:
        code, headers, body = self.response()
        self.assertEqual(code, 413)
        self.assertEqual(headers[b"content-type"], b"application/json")
        self.assertEqual(headers[b"connection"], b"close")
        self.assertEqual(body, {"error": f"request body over {MAX_BODY} bytes"})
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(RecordingRequest.chunks, [])

    def test_oversized_body_refused_after_headers(self) -> None:
        """A declared body over MAX_BODY is answered 413 as soon as the headers end, and the
        connection closed: the reactor reads no byte of the body."""
        request = self.head(b"POST", b"/api/messages", MAX_BODY + 1)
        request += b'{"message": "' + b"x" * MAX_BODY + b'"}'
        for offset in range(len(request)):
            if self.transport.disconnecting:
                break  # as a reactor stops reading a connection it is closing
            self.channel.dataReceived(request[offset:offset + 1])
        self.assertEqual(offset, len(self.head(b"POST", b"/api/messages", MAX_BODY + 1)))
        self.assert_refused_oversized()

    def test_oversized_body_in_one_read_not_parsed(self) -> None:
        """Body bytes that arrived with the headers are neither buffered nor handled."""
        body = b'{"message": "' + b"x" * MAX_BODY + b'"}'
        self.channel.dataReceived(self.head(b"POST", b"/api/messages", len(body)) + body)
        self.assert_refused_oversized()
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 "), 1)  # never rendered
        self.channel.connectionLost(Failure(ConnectionDone()))

    def test_oversized_body_http10(self) -> None:
        """An HTTP/1.0 request (no persistent connection) is refused the same way."""
        request = self.head(b"POST", b"/api/messages", MAX_BODY + 1).replace(
            b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1)
        self.channel.dataReceived(request + b"x" * 100)
        self.assert_refused_oversized()

    def test_oversized_chunked_body(self) -> None:
        """A chunked body (no declared length) is kept up to MAX_BODY and then refused."""
        data = b"x" * (MAX_BODY + 10)
        self.channel.dataReceived(self.head(b"POST", b"/api/messages", chunked=True)
                                  + b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n")
        code, headers, body = self.response()
        self.assertEqual(code, 413)
        self.assertIn("over", body["error"])

    def test_small_body_served(self) -> None:
        """A body within the limit is read and the request served."""
        body = json.dumps({"message": "hi"}).encode()
        self.channel.dataReceived(self.head(b"POST", b"/api/messages", len(body)) + body)
        code, headers, answer = self.response()
        self.assertEqual((code, answer), (200, {"sent": 0}))
        self.assertEqual(b"".join(RecordingRequest.chunks), body)
        self.assertFalse(self.transport.disconnecting)

    def test_client_gone_cancels_work(self) -> None:
        """A client that disconnects while its request waits cancels the work; nothing is
        written after, and no error is logged."""
        body = json.dumps({"host": "10.0.0.9", "port": 8051}).encode()
        self.channel.dataReceived(self.head(b"POST", b"/api/peers", len(body)) + body)
        [connector] = self.reactor.connectors
        self.assertFalse(connector.stoppedConnecting)
        self.assertEqual(self.transport.value(), b"")
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(connector.stoppedConnecting)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])
