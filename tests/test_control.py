"""
Tests for L{p2pnet_tx.control}: the control API, served in memory with treq's StubTreq, and
behind a real L{Site} with L{ControlRequest} over an in-memory transport.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, fail, succeed
from twisted.internet.error import ConnectionDone, DNSLookupError
from twisted.internet.testing import (
    EventLoggingObserver,
    MemoryReactorClock,
    StringTransport,
)
from twisted.logger import (
    LogLevel,
    eventAsJSON,
    eventFromJSON,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from p2pnet_tx import __version__
from p2pnet_tx.control import (
    IDLE_TIMEOUT,
    LIMIT_WARNING_INTERVAL,
    MAX_BODY,
    MAX_MESSAGE_WAIT,
    BadRequest,
    ControlAPI,
    ControlChannel,
    ControlRequest,
    ControlSite,
    MessageLog,
    _trust_mode,
    _url_of,
)
from p2pnet_tx.datadir import DataDirError
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import DisconnectPacket, IdentifierPacket, PureMessagePacket
from p2pnet_tx.peer import GenericPeer, HostnamePeer
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

    def test_added_routes(self) -> None:
        """A part's routes are served like the API's own: with and without an argument,
        with the token, a Deferred answer, a BadRequest as a JSON error, 405 and 404."""
        seen: list[Any] = []

        def get_things(request: Any, argument: None) -> Any:
            seen.append(argument)
            return {"things": []}

        def delete_thing(request: Any, argument: str) -> Any:
            if argument == "missing":
                raise BadRequest(404, f"no thing {argument}")
            return succeed({"deleted": argument})

        self.api.add_route(b"GET", "things", get_things)
        self.api.add_route(b"DELETE", "things", delete_thing, argument=True)
        self.assertEqual(self.call("GET", "/api/things"), (200, {"things": []}))
        self.assertEqual(self.call("DELETE", "/api/things/t1"), (200, {"deleted": "t1"}))
        self.assertEqual(self.call("DELETE", "/api/things/missing"),
                         (404, {"error": "no thing missing"}))
        self.assertEqual(self.call("GET", "/api/things/t1")[0], 404)
        self.assertEqual(self.call("DELETE", "/api/things")[0], 404)
        self.assertEqual(self.call("POST", "/api/things")[0], 405)
        self.assertEqual(self.call("GET", "/api/things", headers={})[0], 401)
        self.assertEqual(seen, [None])
        self.assertRaises(ValueError, self.api.add_route, b"GET", "things", get_things)

    def test_status_sections(self) -> None:
        """A part's status section shows in /api/status under its name, computed per
        request; it cannot take a key the API fills."""
        counters = {"sent": 0}
        self.api.add_status_section("discovery", lambda: dict(counters))
        counters["sent"] = 3
        code, body = self.call("GET", "/api/status")
        self.assertEqual(body["discovery"], {"sent": 3})
        self.assertRaises(ValueError, self.api.add_status_section, "discovery", dict)
        self.assertRaises(ValueError, self.api.add_status_section, "peers", dict)

    def test_peers(self) -> None:
        """Peers lists the connected peers and the known ones."""
        self.add_peer("10.0.0.7", "peer-a", 9001, name="alice")
        code, body = self.call("GET", "/api/peers")
        self.assertEqual(code, 200)
        self.assertEqual(body["connected"], [{
            "identifier": "peer-a", "display_name": "alice", "address": "10.0.0.7",
            "port": 9001, "trusted": True, "direction": "inbound",
            "rtt": None, "rtt_source": None, "last_seen": 0.0,
            "seen_seconds_ago": 0.0}])
        self.assertEqual(body["known"], [
            {"identifier": "peer-a", "address": "10.0.0.7", "port": 9001}])

    def test_connect_bad_input(self) -> None:
        """POST /api/peers with a bad body or address is a 400 with a JSON error."""
        for body in (b"{not json", b"[1]", {"host": "no_where", "port": 1},
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


class _Untrusted:
    """A channel as L{MessageLog.record} sees it: a peer that is not trusted."""

    is_trusted = False

    def __init__(self, identifier: str) -> None:
        self.peer = GenericPeer("10.0.0.7", 9000, identifier)


class MessageTrustTests(SynchronousTestCase):
    """Each message says whether its sender was trusted when it arrived."""

    def test_untrusted_sender_marked(self) -> None:
        """A message from an untrusted peer is listed with "trusted": false."""
        log = MessageLog(MemoryReactorClock())
        log.record(_Untrusted("mallory"), PureMessagePacket("hi"))  # type: ignore[arg-type]
        [message] = log.since(0)
        self.assertEqual(message.to_json()["trusted"], False)
        self.assertEqual(message.to_json()["from"], "mallory")


class SavingAPITests(SynchronousTestCase):
    """A request that changes saved state answers 500, never 200, when the save fails."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.saves: list[str] = []
        self.failure: str | None = None
        api = ControlAPI(self.network, TOKEN, MessageLog(self.reactor), "", self.save)
        self.http = StubTreq(api)
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def save(self) -> None:
        self.saves.append("saved")
        if self.failure is not None:
            raise DataDirError(self.failure)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        d = self.http.request(method, "http://127.0.0.1" + path, json=body, headers=AUTH)
        self.http.flush()
        response = self.successResultOf(d)
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_block_saved(self) -> None:
        """POST /api/block saves the state before it answers 200."""
        code, body = self.call("POST", "/api/block", {"ip": "10.0.0.7"})
        self.assertEqual((code, body), (200, {"blocked": "10.0.0.7", "dropped": 0}))
        self.assertEqual(self.saves, ["saved"])

    def test_block_not_saved_is_500(self) -> None:
        """A block that cannot be saved is a 500 whose JSON says what failed, and an error
        line in the log; the block is in effect until the node stops."""
        self.failure = "cannot write /d/blocked.json: No space left on device"
        code, body = self.call("POST", "/api/block", {"ip": "10.0.0.7"})
        self.assertEqual(code, 500)
        self.assertIn("blocked '10.0.0.7'", body["error"])
        self.assertIn("not saved", body["error"])
        self.assertIn("blocked.json: No space left on device", body["error"])
        self.assertTrue(self.network.policy.is_blocked_ip("10.0.0.7"))
        [event] = [e for e in self.logged if e["log_level"] == LogLevel.error]
        self.assertIn("No space left", event["why"])
        self.assertNotIn("log_failure", event)  # one line, no traceback

    def test_remove_not_saved_is_500(self) -> None:
        """DELETE /api/peers/<id> saves once the peer is gone; a failed save is a 500."""
        channel = self.network.make_channel(outbound=False)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 1)))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 9000, "", source_origin_identifier="peer-a")))
        self.failure = "cannot write /d/known_peers.json: No space left on device"
        d = self.http.request("DELETE", "http://127.0.0.1/api/peers/peer-a", headers=AUTH)
        self.http.flush()
        channel.connectionLost(Failure(ConnectionDone()))
        self.http.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 500)
        body = json.loads(self.successResultOf(response.content()))
        self.assertIn("removed peer 'peer-a'", body["error"])
        self.assertIn("known_peers.json", body["error"])
        self.assertEqual(self.saves, ["saved"])


def http_head(method: bytes, path: bytes, *extra: bytes, token: bool = True) -> bytes:
    """The head of a control API request, with one Host header and the token."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *extra]
    if token:
        lines.append(b"Authorization: Bearer " + TOKEN.encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


class ControlSiteLimitTests(SynchronousTestCase):
    """A L{ControlSite} holds each connection to a deadline and bounds how many are open."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.api = ControlAPI(self.network, TOKEN, MessageLog(self.reactor), "tcp:8051")
        self.site = ControlSite(self.api, self.reactor, max_connections=3)
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.port = 40000

    def connect(self) -> tuple[ControlChannel | None, StringTransport]:
        """Accept a connection as the reactor would; a refused one is closed unread."""
        self.port += 1
        address = IPv4Address("TCP", "127.0.0.1", self.port)
        channel = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        if channel is not None:
            channel.makeConnection(transport)
        return channel, transport

    def lose(self, channel: ControlChannel) -> None:
        """The reactor's connectionLost, one turn after an abort."""
        channel.connectionLost(Failure(ConnectionDone()))

    def pending_request(self, channel: ControlChannel) -> None:
        """Start a request that waits: a dial to a peer that does not answer yet."""
        body = json.dumps({"host": "10.0.0.9", "port": 8051}).encode()
        channel.dataReceived(http_head(b"POST", b"/api/peers", b"Content-Length: %d" % len(body))
                             + body)

    def test_idle_connection_closed_at_deadline(self) -> None:
        """A connection that sends nothing is dropped IDLE_TIMEOUT seconds after it opened,
        with one DelayedCall; it is counted, and gets no log line."""
        channel, transport = self.connect()
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.reactor.advance(IDLE_TIMEOUT - 0.01)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.01)
        self.assertTrue(transport.disconnected)  # aborted: nothing is owed to it
        self.lose(channel)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.site.counters, {"open": 0, "max": 3, "evicted": 0, "refused": 0,
                                              "timed_out": 1, "refused_requests": 0})
        self.assertEqual(list(self.logged), [])

    def test_slowloris_does_not_move_deadline(self) -> None:
        """Header bytes that trickle in do not move the deadline: a client that drips its
        headers is dropped when one that sends nothing would be."""
        channel, transport = self.connect()
        head = http_head(b"GET", b"/api/status")
        for second in range(int(IDLE_TIMEOUT)):
            self.assertFalse(transport.disconnecting, second)
            channel.dataReceived(head[second:second + 1])
            self.reactor.advance(1)
        self.assertTrue(transport.disconnected)
        self.assertEqual(transport.value(), b"")

    def test_request_in_progress_has_no_deadline(self) -> None:
        """From the end of its headers to its response a request has no deadline (its body
        may be slow, its answer may wait); the deadline runs again from the response."""
        channel, transport = self.connect()
        body = json.dumps({"host": "10.0.0.9", "port": 8051}).encode()
        channel.dataReceived(http_head(b"POST", b"/api/peers", b"Content-Length: %d" % len(body)))
        self.assertTrue(channel.busy)
        self.reactor.advance(IDLE_TIMEOUT * 3)
        channel.dataReceived(body)  # the answer now waits on the dial
        self.reactor.advance(IDLE_TIMEOUT * 3)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        from twisted.test.iosim import ConnectionCompleter

        ConnectionCompleter(self.reactor).failOnce()
        self.assertIn(b"502", transport.value().split(b"\r\n", 1)[0])
        self.assertFalse(channel.busy)
        self.reactor.advance(IDLE_TIMEOUT - 0.01)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.01)
        self.assertTrue(transport.disconnected)

    def test_deadline_restarts_after_each_response(self) -> None:
        """A persistent connection may make one request after another; it is dropped
        IDLE_TIMEOUT seconds after its last response."""
        channel, transport = self.connect()
        for _ in range(3):
            self.reactor.advance(IDLE_TIMEOUT - 1)
            channel.dataReceived(http_head(b"GET", b"/api/status"))
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)
        self.reactor.advance(IDLE_TIMEOUT - 0.01)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.01)
        self.assertTrue(transport.disconnected)

    def test_new_connection_takes_oldest_idle_place(self) -> None:
        """At the limit a new connection drops the oldest one with no request in progress,
        and is served."""
        (first, t1), (second, t2), (_, t3) = self.connect(), self.connect(), self.connect()
        self.pending_request(first)
        newest, transport = self.connect()
        self.assertIsNotNone(newest)
        self.assertFalse(t1.disconnecting)  # busy: kept
        self.assertTrue(t2.disconnected)  # the oldest idle one
        self.assertFalse(t3.disconnecting)
        self.lose(second)
        self.assertEqual(self.site.counters["open"], 3)
        self.assertEqual(self.site.counters["evicted"], 1)
        newest.dataReceived(http_head(b"GET", b"/api/status"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"))

    def test_refused_only_when_all_busy(self) -> None:
        """When every open connection has a request in progress, a new one is refused."""
        channels = [self.connect()[0] for _ in range(3)]
        for channel in channels:
            self.pending_request(channel)
        refused, _ = self.connect()
        self.assertIsNone(refused)
        self.assertEqual(self.site.counters["refused"], 1)
        self.assertEqual(self.site.counters["open"], 3)

    def test_many_idle_connections_cannot_lock_out_a_client(self) -> None:
        """Of 1,000 idle connections at most max_connections are open at any time, and a
        client arriving after them is served."""
        opened = [self.connect() for _ in range(1000)]
        for channel, transport in opened:
            if transport.disconnected:
                self.lose(channel)
        self.assertEqual(sum(not t.disconnected for _, t in opened), 3)
        self.assertEqual(self.site.counters["evicted"], 997)
        self.assertLessEqual(len(self.reactor.getDelayedCalls()), 3)
        channel, transport = self.connect()
        channel.dataReceived(http_head(b"GET", b"/api/status"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"))
        status = json.loads(transport.value().partition(b"\r\n\r\n")[2])
        self.assertEqual(status["control"], {"open": 3, "max": 3, "evicted": 998, "refused": 0,
                                             "timed_out": 0, "refused_requests": 0})

    def test_limit_warning_rate_limited(self) -> None:
        """Evictions get no log line each: the warning that the limit is reached, with the
        counts so far, comes at most once a minute."""
        for _ in range(100):
            self.connect()
        [warning] = list(self.logged)
        self.assertEqual(warning["log_level"], LogLevel.warn)
        self.assertEqual((warning["max"], warning["evicted"]), (3, 1))
        self.reactor.advance(LIMIT_WARNING_INTERVAL - 1)
        self.connect()
        self.assertEqual(len(self.logged), 1)
        self.reactor.advance(1)
        self.connect()
        warnings = [e for e in self.logged if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 2)
        self.assertEqual(warnings[1]["evicted"], 99)

    def test_duplicate_host_refused_before_authentication(self) -> None:
        """Two Host headers are a 400 with a JSON error, before the token is looked at, and
        the connection is closed."""
        channel, transport = self.connect()
        channel.dataReceived(http_head(b"GET", b"/api/status", b"Host: 127.0.0.1",
                                       token=False))
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 400 "))
        self.assertIn(b"content-type: application/json", head.lower())
        self.assertEqual(json.loads(body), {"error": "more than one Host header"})
        self.assertTrue(transport.disconnecting)

    def test_duplicate_host_with_body_refused_at_headers(self) -> None:
        """A request with a body and two Host headers is refused before its body is read."""
        channel, transport = self.connect()
        channel.dataReceived(http_head(b"POST", b"/api/block", b"Host: evil.example",
                                       b"Content-Length: 20"))
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 400 "))
        self.assertEqual(json.loads(body), {"error": "more than one Host header"})
        self.assertTrue(transport.disconnecting)

    def test_unauthenticated_connection_closed(self) -> None:
        """A request without the token is answered 401 and its connection closed at once;
        with a body, before the body is read."""
        for extra in ((), (b"Content-Length: 100000",)):
            channel, transport = self.connect()
            channel.dataReceived(http_head(b"POST", b"/api/block", *extra, token=False))
            head, _, body = transport.value().partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 401 "), head)
            self.assertIn(b"www-authenticate", head.lower())
            self.assertIn("token", json.loads(body)["error"])
            self.assertTrue(transport.disconnecting)
            self.lose(channel)
        self.assertEqual(self.site.counters["open"], 0)

    def test_bad_limits(self) -> None:
        """A limit below one connection, or a deadline that is not positive, is refused."""
        for bad in (0, -1, 1.5, True):
            self.assertRaises(ValueError, ControlSite, self.api, self.reactor, bad)
        self.assertRaises(ValueError, ControlSite, self.api, self.reactor, 3, 0)

    def test_requests_cannot_flood_the_log(self) -> None:
        """A started site writes no access-log line per request: a served request is noted
        at debug level, refused ones are counted and warned about once a minute."""
        self.site.doStart()
        self.addCleanup(self.site.doStop)
        for token in (False, True) * 50:
            channel, transport = self.connect()
            channel.dataReceived(http_head(b"GET", b"/api/status", token=token))
            if transport.disconnecting:
                self.lose(channel)
        self.assertEqual(self.site.counters["refused_requests"], 50)
        [warning] = [e for e in self.logged if "count" in e]  # the other: connection limit
        self.assertEqual((warning["log_level"], warning["count"], warning["code"]),
                         (LogLevel.warn, 1, 401))
        self.assertEqual(len([e for e in self.logged if e["log_level"] > LogLevel.debug]), 2)
        self.assertEqual(len([e for e in self.logged if e.get("code") == 200]), 50)


class NodeControlTests(SynchronousTestCase):
    """Blocks and unblocks, the long poll of messages, the node's facts in status, and
    connect errors that say why."""

    setUp = ControlAPITests.setUp
    add_peer = ControlAPITests.add_peer
    call = ControlAPITests.call

    def test_blocks_and_unblock(self) -> None:
        """GET /api/blocks lists the blocks; POST /api/unblock lifts one and says whether it
        was there; bad bodies are 400s."""
        self.call("POST", "/api/block", {"ip": "10.0.0.7"})
        self.call("POST", "/api/block", {"identifier": "peer-x"})
        self.assertEqual(self.call("GET", "/api/blocks"),
                         (200, {"ips": ["10.0.0.7"], "identifiers": ["peer-x"]}))
        self.assertEqual(self.call("POST", "/api/unblock", {"ip": "::ffff:10.0.0.7"}),
                         (200, {"unblocked": "10.0.0.7", "was_blocked": True}))
        self.assertFalse(self.network.policy.is_blocked_ip("10.0.0.7"))
        self.assertEqual(self.call("POST", "/api/unblock", {"identifier": "peer-x"}),
                         (200, {"unblocked": "peer-x", "was_blocked": True}))
        self.assertEqual(self.call("POST", "/api/unblock", {"identifier": "peer-x"}),
                         (200, {"unblocked": "peer-x", "was_blocked": False}))
        self.assertEqual(self.call("GET", "/api/blocks"), (200, {"ips": [], "identifiers": []}))
        for bad in ({}, {"ip": "1.2.3.4", "identifier": "x"}, {"ip": "nowhere"}, {"ip": 5}):
            code, body = self.call("POST", "/api/unblock", bad)
            self.assertEqual(code, 400, bad)
            self.assertIsInstance(body["error"], str)

    def test_blocked_peer_told_why(self) -> None:
        """A peer dropped by a block, or refused at its Identity for a blocked identifier,
        gets a Disconnect whose reason says it is blocked before the close."""
        channel = self.add_peer("10.0.0.7", "peer-a")
        channel.transport.clear()
        self.call("POST", "/api/block", {"identifier": "peer-a"})
        [goodbye] = get_codec("p2pnet").decoder().feed(channel.transport.value())
        self.assertIsInstance(goodbye, DisconnectPacket)
        self.assertEqual(goodbye.data["Reason"], "blocked")
        late = self.add_peer("10.0.0.8", "peer-a")
        packets = get_codec("p2pnet").decoder().feed(late.transport.value())
        self.assertEqual([p.data["Reason"] for p in packets if isinstance(p, DisconnectPacket)],
                         ["blocked"])
        self.assertTrue(late.transport.disconnecting)

    def test_messages_long_poll(self) -> None:
        """With wait=S, a request that finds no message is held until one arrives."""
        channel = self.add_peer("10.0.0.7", "peer-a")
        timers = len(self.reactor.getDelayedCalls())
        d = self.http.get("http://127.0.0.1/api/messages?since=0&wait=20", headers=AUTH)
        self.assertEqual(len(self.reactor.getDelayedCalls()), timers + 1)
        self.assertNoResult(d)
        self.reactor.advance(19)
        self.assertNoResult(d)
        channel.dataReceived(get_codec("p2pnet").encode(PureMessagePacket("hi")))
        self.http.flush()
        response = self.successResultOf(d)
        body = json.loads(self.successResultOf(response.content()))
        self.assertEqual([m["message"] for m in body["messages"]], ["hi"])
        self.assertEqual(self.messages.waiting, 0)
        self.assertEqual(len(self.reactor.getDelayedCalls()), timers)

    def test_messages_long_poll_bounded(self) -> None:
        """A wait over the limit is cut to MAX_MESSAGE_WAIT; at its end the answer is empty;
        a bad wait is a 400; a client that goes away stops the wait."""
        d = self.http.get("http://127.0.0.1/api/messages?since=0&wait=3600", headers=AUTH)
        self.reactor.advance(MAX_MESSAGE_WAIT - 0.5)
        self.assertNoResult(d)
        self.reactor.advance(0.5)
        self.http.flush()
        response = self.successResultOf(d)
        self.assertEqual(json.loads(self.successResultOf(response.content())), {"messages": []})
        for bad in ("-1", "x", "nan", "inf"):
            code, _ = self.call("GET", f"/api/messages?since=0&wait={bad}")
            self.assertEqual(code, 400, bad)
        waiting = self.messages.wait_since(0, 10)
        self.assertEqual(self.messages.waiting, 1)
        waiting.cancel()  # what a client that goes away does (see _Pending)
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.messages.waiting, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_status_node_facts(self) -> None:
        """Status shows the version, uptime, display name, trust mode, transport and the
        control URL."""
        self.reactor.advance(42)
        code, body = self.call("GET", "/api/status")
        self.assertEqual(code, 200)
        self.assertEqual(body["version"], __version__)
        self.assertEqual(body["uptime"], 42)
        self.assertEqual((body["trust"], body["transport"]), ("custom", "tcp"))
        self.assertIsNone(body["display_name"])
        self.assertIn("control_url", body)
        network = PeerNetwork(self.reactor, transport="tls")
        self.assertEqual(_trust_mode(network), "key")
        self.assertEqual(_url_of(IPv4Address("TCP", "127.0.0.1", 8765)), "http://127.0.0.1:8765")

    def test_connect_errors_say_why(self) -> None:
        """A blocked peer is a 409 that says to unblock it; an unknown host name a 502 that
        says it cannot be resolved."""
        self.network.policy.blocked_ips.add("10.0.0.9")
        code, body = self.call("POST", "/api/peers", {"host": "10.0.0.9", "port": 8051})
        self.assertEqual(code, 409)
        self.assertIn("p2pnet-ctl unblock", body["error"])
        self.network.connect = lambda peer, timeout=None: fail(  # type: ignore[method-assign]
            DNSLookupError("no such name"))
        code, body = self.call("POST", "/api/peers", {"host": "nowhere.test", "port": 8051})
        self.assertEqual(code, 502)
        self.assertIn("cannot resolve nowhere.test", body["error"])

    def test_remove_and_connect_tell_the_node(self) -> None:
        """DELETE /api/peers/<id> reports the channel (the node holds a kept --peer) and says
        how many were held; POST /api/peers reports the peer dialled."""
        removed: list[Any] = []
        dialled: list[Any] = []
        self.api = ControlAPI(self.network, TOKEN, self.messages, "tcp:8051",
                              peer_removed=lambda c: removed.append(c) or 1,
                              connecting=dialled.append)
        self.http = StubTreq(self.api)
        channel = self.add_peer("10.0.0.7", "peer-a")
        d = self.http.request("DELETE", "http://127.0.0.1/api/peers/peer-a", headers=AUTH)
        channel.connectionLost(Failure(ConnectionDone()))
        self.http.flush()
        body = json.loads(self.successResultOf(self.successResultOf(d).content()))
        self.assertEqual(body, {"removed": "peer-a", "reason": "removed", "held": 1})
        self.assertEqual(removed, [channel])
        self.http.request("POST", "http://127.0.0.1/api/peers",
                          json={"host": "localhost", "port": 8052}, headers=AUTH)
        self.assertEqual(dialled, [HostnamePeer("localhost", 8052)])

    def test_log_events_survive_json(self) -> None:
        """The events a control request logs have a format with named fields, and
        twisted.logger's JSON output keeps the fields and the text."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.call("POST", "/api/block", {"ip": "10.0.0.7"})
        self.call("POST", "/api/unblock", {"ip": "10.0.0.7"})
        events = [e for e in logged if e.get("log_level", LogLevel.debug) >= LogLevel.info]
        self.assertTrue(events)
        for event in events:
            self.assertIsNotNone(event.get("log_format"))
            again = eventFromJSON(eventAsJSON(event))
            self.assertEqual(formatEvent(again), formatEvent(event))
        [unblocked] = [e for e in events if e["log_format"] == "unblocked {what}"]
        self.assertEqual(eventFromJSON(eventAsJSON(unblocked))["what"], "10.0.0.7")
