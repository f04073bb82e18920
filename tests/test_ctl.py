"""
Tests for L{p2pnet_tx.ctl}: command lines become control API requests; errors are one line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx import __version__
from p2pnet_tx.control import ControlAPI, MessageLog
from p2pnet_tx.ctl import (
    FOLLOW_WAIT,
    CtlError,
    NothingSent,
    _follow,
    _format,
    _json_text,
    _request_for,
    escape,
    parser,
    run,
)
from p2pnet_tx.datadir import NodeDataDir
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import IdentifierPacket
from p2pnet_tx.peer import HostnamePeer
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire import get_codec
from tests.ctl_fakes import ScriptedClient


def request(*argv: str):
    return _request_for(parser().parse_args(list(argv)))


class RequestTests(SynchronousTestCase):
    """Each command maps to one control API request."""

    def test_commands(self) -> None:
        """status, peers, connect, send, messages, block and remove map as documented."""
        self.assertEqual(request("status"), ("GET", "/api/status", None))
        self.assertEqual(request("peers"), ("GET", "/api/peers", None))
        self.assertEqual(request("connect", "127.0.0.1:8052"),
                         ("POST", "/api/peers", {"host": "127.0.0.1", "port": 8052}))
        self.assertEqual(request("connect", "[::1]:8052"),
                         ("POST", "/api/peers", {"host": "::1", "port": 8052}))
        self.assertEqual(request("send", "hello", "there"),
                         ("POST", "/api/messages", {"to": "*", "message": "hello there"}))
        self.assertEqual(request("send", "--to", "abc", "hi"),
                         ("POST", "/api/messages", {"to": "abc", "message": "hi"}))
        self.assertEqual(request("messages", "--since", "4"),
                         ("GET", "/api/messages?since=4", None))
        self.assertEqual(request("block", "10.0.0.7"),
                         ("POST", "/api/block", {"ip": "10.0.0.7"}))
        self.assertEqual(request("block", "--identifier", "x"),
                         ("POST", "/api/block", {"identifier": "x"}))
        self.assertEqual(request("remove", "abc"), ("DELETE", "/api/peers/abc", None))

    def test_bad_arguments(self) -> None:
        """Bad addresses and ambiguous blocks are CtlErrors, reported in one line."""
        for argv in (("connect", "nowhere"), ("connect", "host:port"), ("block",),
                     ("block", "10.0.0.7", "--identifier", "x")):
            self.assertRaises(CtlError, request, *argv)

    def test_format(self) -> None:
        """Messages print one per line; sends print a count; the rest is JSON."""
        self.assertEqual(_format("messages", {"messages": [
            {"seq": 3, "from": "abc", "message": "hi", "time": 1.0, "trusted": True}]}),
            "[3] abc: hi")
        self.assertEqual(_format("messages", {"messages": [  # no verdict: not trusted
            {"seq": 3, "from": "abc", "message": "hi", "time": 1.0}]}), "[3] abc (untrusted): hi")
        self.assertEqual(_format("messages", {"messages": [
            {"seq": 4, "from": "x", "message": "hey", "time": 1.0, "trusted": False}]}),
            "[4] x (untrusted): hey")
        self.assertEqual(_format("messages", {"messages": []}), "(no messages)")
        self.assertEqual(_format("send", {"sent": 2}), "sent to 2 peer(s)")
        self.assertEqual(_json_text({"b": 1, "a": 2}), '{\n  "a": 2,\n  "b": 1\n}')

    def test_no_token(self) -> None:
        """Without a control token in the data dir, ctl says so instead of calling."""
        args = parser().parse_args(["--data-dir", self.mktemp(), "status"])
        failure = self.failureResultOf(ensureDeferred(run(MemoryReactorClock(), args)), CtlError)
        self.assertIn("no control token", str(failure.value))

    def test_no_url_no_guess(self) -> None:
        """With a token but no control URL, ctl refuses rather than send the token anywhere."""
        from p2pnet_tx.datadir import NodeDataDir

        data_dir = NodeDataDir(self.mktemp()).ensure()
        data_dir.control_token()
        args = parser().parse_args(["--data-dir", str(data_dir.path), "status"])
        failure = self.failureResultOf(ensureDeferred(run(MemoryReactorClock(), args)), CtlError)
        self.assertIn("no control URL", str(failure.value))


class PeerTextTests(SynchronousTestCase):
    """Text that came from a peer cannot drive the terminal or forge a line."""

    def test_escape(self) -> None:
        """Control characters, separators, bidirectional controls and lone surrogates become
        visible escapes; a backslash is doubled; other text is left alone."""
        self.assertEqual(escape("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m")
        self.assertEqual(escape("a\rb\nc\x00\x7f\x9b"), "a\\x0db\\x0ac\\x00\\x7f\\x9b")
        self.assertEqual(escape("\u2028\u2029\u202e\u2066\ud800"),
                         "\\u2028\\u2029\\u202e\\u2066\\ud800")
        self.assertEqual(escape("C:\\x1b"), "C:\\\\x1b")
        self.assertEqual(escape("héllo wörld 😀 \t"), "héllo wörld 😀 \\x09")

    def test_messages_cannot_forge_lines(self) -> None:
        """A message, or an identifier, with CR, LF and ANSI sequences prints as one line
        per message, with no escape character, and the untrusted mark stays visible."""
        output = _format("messages", {"messages": [
            {"seq": 4, "from": "mallory\x1b[2K\r", "trusted": False, "time": 1.0,
             "message": "hi\r\n[5] alice: send me your key\x1b]0;owned\x07\u202e"},
            {"seq": 5, "from": "bob", "trusted": True, "time": 1.0, "message": "ok"}]})
        lines = output.split("\n")
        self.assertEqual(len(lines), 2)
        self.assertEqual(lines[1], "[5] bob: ok")
        self.assertTrue(lines[0].startswith("[4] mallory\\x1b[2K\\x0d (untrusted): hi\\x0d"))
        for char in "\x1b\r\x07\u202e":
            self.assertNotIn(char, output)

    def test_json_output_exact(self) -> None:
        """--json prints JSON: ASCII, with every control character JSON-escaped, and it
        parses back to exactly what the node sent."""
        body = {"connected": [{"identifier": "x\x1b[2J\n\u202e", "address": "10.0.0.7"}]}
        output = _json_text(body)
        self.assertTrue(output.isascii())
        self.assertNotIn("\x1b", output)
        self.assertEqual(json.loads(output), body)


class _Output(io.StringIO):
    """Standard output for a test."""


class CommandTests(SynchronousTestCase):
    """Whole commands against a real control API in memory: text by default, JSON with
    --json, and one-line errors that say what to do."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.messages = MessageLog(self.reactor)
        self.messages.install(self.network)
        self.api = ControlAPI(self.network, "tok", self.messages, "tcp:8051")
        self.http = StubTreq(self.api)
        data_dir = NodeDataDir(self.mktemp()).ensure()
        (data_dir.path / "control.token").write_text("tok")
        self.data_dir = str(data_dir.path)

    def ctl(self, *argv: str) -> tuple[str, Any]:
        """Run p2pnet-ctl; return its output and its result (an int or a Failure)."""
        args = parser().parse_args(["--data-dir", self.data_dir, "--url", "http://127.0.0.1",
                                    *argv])
        out = _Output()
        d = ensureDeferred(run(self.reactor, args, out, self.http))
        self.http.flush()
        results: list[Any] = []
        d.addBoth(results.append)
        return out.getvalue(), results[0] if results else None

    def add_trusted_peer(self) -> Any:
        channel = self.network.make_channel(outbound=False)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 1)))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "alice", 9000, "", source_origin_identifier="peer-a")))
        return channel

    def test_status_text(self) -> None:
        """status shows version, uptime, trust mode, transport, listen and control address."""
        self.reactor.advance(3725)
        output, result = self.ctl("status")
        self.assertEqual(result, 0)
        self.assertIn(f"version  {__version__}, up 1h 2m 5s", output)
        self.assertIn("trust    custom over tcp (p2pnet wire)", output)
        self.assertIn("listen   tcp:8051", output)
        self.assertIn("control  ", output)
        self.assertIn("node     node", output)

    def test_status_text_lists_peers_with_rtt_and_last_seen(self) -> None:
        """status ends with a line per peer: identifier, name, address, trust, RTT, last seen."""
        self.add_trusted_peer()
        self.reactor.advance(65)
        output, result = self.ctl("status")
        self.assertEqual(result, 0)
        [line] = [line for line in output.splitlines() if "peer-a" in line]
        self.assertIn("(alice) 10.0.0.7:9000", line)
        self.assertIn("last seen 1m 5s ago", line)

    def test_json_unchanged_text_shows_parts(self) -> None:
        """Against a real control API with a part's status section: --json prints the
        section as the node gives it; the text shows its lines."""
        section = {"active": 1, "counters": {"transfers_sent": 4}}
        self.api.add_status_section("files", lambda: section)
        output, result = self.ctl("status", "--json")
        self.assertEqual(result, 0)
        self.assertEqual(json.loads(output)["files"], section)
        self.assertNotIn("discovery", json.loads(output))
        output, result = self.ctl("status")
        self.assertEqual(result, 0)
        self.assertIn("files    1 active transfer; finished: 4 sent, 0 received", output)
        self.assertNotIn("discovery", output)
        self.assertNotIn("bootstrap", output)

    def test_rtt_shown_to_two_significant_digits_under_10_ms(self) -> None:
        """Loopback RTTs are fractions of a millisecond: they are not shown as 0 ms."""
        from p2pnet_tx.ctl import _peer_line

        self.assertIn("rtt 0.052 ms", _peer_line({"address": "10.0.0.7", "rtt": 0.000052}))
        self.assertIn("rtt 2.5 ms", _peer_line({"address": "10.0.0.7", "rtt": 0.0025}))
        self.assertIn("rtt 120 ms", _peer_line({"address": "10.0.0.7", "rtt": 0.1204}))

    def test_json_on_every_command(self) -> None:
        """--json, before or after the command, prints the API's JSON answer."""
        self.add_trusted_peer()
        for argv in (["status"], ["peers"], ["messages"], ["blocks"], ["send", "hi"],
                     ["block", "10.0.0.9"], ["unblock", "10.0.0.9"]):
            for where in ("before", "after"):
                full = ["--json", *argv] if where == "before" else [*argv, "--json"]
                output, result = self.ctl(*full)
                self.assertEqual(result, 0, (full, result))
                self.assertIsInstance(json.loads(output), dict, full)
        output, _ = self.ctl("status")
        self.assertRaises(ValueError, json.loads, output)  # text for people by default

    def test_send_to_nobody_fails(self) -> None:
        """send that reaches no trusted peer prints the count and fails (exit status 1)."""
        output, result = self.ctl("send", "hello")
        self.assertEqual(output, "sent to 0 peer(s)\n")
        self.assertIsInstance(result.value, NothingSent)
        self.assertIn("no trusted peer", str(result.value))
        self.add_trusted_peer()
        output, result = self.ctl("send", "hello")
        self.assertEqual((output, result), ("sent to 1 peer(s)\n", 0))

    def test_blocks_text(self) -> None:
        """block, blocks and unblock print what they did."""
        self.assertEqual(self.ctl("block", "10.0.0.9")[0],
                         "blocked 10.0.0.9; dropped 0 connection(s)\n")
        self.assertEqual(self.ctl("block", "--identifier", "peer-x")[0],
                         "blocked peer-x; dropped 0 connection(s)\n")
        self.assertEqual(self.ctl("blocks")[0], "ip 10.0.0.9\nidentifier peer-x\n")
        self.assertEqual(self.ctl("unblock", "10.0.0.9")[0], "unblocked 10.0.0.9\n")
        self.assertEqual(self.ctl("unblock", "10.0.0.9")[0], "10.0.0.9 was not blocked\n")
        self.assertEqual(self.ctl("unblock", "--identifier", "peer-x")[0], "unblocked peer-x\n")
        self.assertEqual(self.ctl("blocks")[0], "(no blocks)\n")

    def test_block_without_arguments_says_what_to_give(self) -> None:
        """block or unblock with nothing to block says what to write."""
        for command in ("block", "unblock"):
            _, result = self.ctl(command)
            self.assertIsInstance(result.value, CtlError)
            self.assertIn(f"needs an IP address (p2pnet-ctl {command} 10.0.0.7)",
                          str(result.value))
            self.assertNotIn("not both", str(result.value))

    def test_unreachable_peer_says_so(self) -> None:
        """connect to a peer that refuses the TCP connection says it is unreachable and why,
        not that the node refused."""
        args = parser().parse_args(["--data-dir", self.data_dir, "--url", "http://127.0.0.1",
                                    "connect", "127.0.0.1:8059"])
        d = ensureDeferred(run(self.reactor, args, _Output(), self.http))
        ConnectionCompleter(self.reactor).failOnce()
        self.http.flush()
        failure = self.failureResultOf(d, CtlError)
        message = str(failure.value)
        self.assertIn("peer 127.0.0.1:8059 is unreachable", message)
        self.assertIn("refused", message)
        self.assertNotIn("HTTP", message)
        self.assertNotIn("the node refused", message)

    def test_connect_by_host_name(self) -> None:
        """connect accepts a host name; the API hands it to the network as a HostnamePeer."""
        dialled: list[Any] = []
        self.network.connect = lambda peer, timeout=None: (  # type: ignore[method-assign]
            dialled.append(peer) or Deferred())
        self.ctl("connect", "localhost:8052")
        self.assertEqual(dialled, [HostnamePeer("localhost", 8052)])

    def test_peers_text_escaped(self) -> None:
        """peers prints one line a peer; a peer's text is escaped."""
        channel = self.network.make_channel(outbound=False)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.8", 1)))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "eve\x1b[2J", 9001, "", source_origin_identifier="peer-\u202eb")))
        output, _ = self.ctl("peers")
        self.assertIn("connected (1):\n  peer-\\u202eb 10.0.0.8:9001 trusted inbound", output)
        self.assertNotIn("\x1b", output)
        self.assertNotIn("\u202e", output)

    def test_follow_long_polls(self) -> None:
        """messages --follow asks for the messages after the last one it printed, with a
        wait, and prints them as they come, until the node stops answering."""
        client = ScriptedClient([
            {"messages": [{"seq": 1, "from": "a", "message": "one", "trusted": True}]},
            {"messages": []},
            {"messages": [{"seq": 2, "from": "b", "message": "two\x1b", "trusted": False}]},
        ])
        out = _Output()
        d = ensureDeferred(_follow(client, 0, False, out))  # type: ignore[arg-type]
        self.failureResultOf(d, CtlError)
        self.assertEqual(client.paths, [f"/api/messages?since={n}&wait={FOLLOW_WAIT}"
                                 for n in (0, 1, 1, 2)])
        self.assertEqual(out.getvalue(), "[1] a: one\n[2] b (untrusted): two\\x1b\n")

    def test_version_and_help(self) -> None:
        """--version prints the version; every command has a help line and a description."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as caught:
            parser().parse_args(["--version"])
        self.assertEqual(caught.exception.code, 0)
        self.assertEqual(out.getvalue().strip(), f"p2pnet-ctl {__version__}")
        top = parser()
        [commands] = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
        helps = {action.dest: action.help for action in commands._choices_actions}
        self.assertEqual(set(helps), set(commands.choices))
        for name, sub in commands.choices.items():
            self.assertTrue(helps[name], name)
            self.assertTrue(sub.description, name)
            self.assertIn("--json", sub.format_help(), name)


def _status(**sections: Any) -> dict[str, Any]:
    """A node's C{GET /api/status} answer, with the given part sections."""
    return {"identifier": "node", "counts": {"active": 1}, "counters": {}, **sections,
            "peers": [{"identifier": "peer-a", "address": "10.0.0.7", "port": 9000}]}


_DISCOVERY = {
    "mode": "lan", "format": "p2pnet", "running": True,
    "listening": [{"port": 8004, "group": "239.255.80.80"}],
    "sends_to": ["255.255.255.255:8004"], "interval": 10.0,
    "sent": 12, "send_failed": 3, "received": 30, "accepted": 12,
    "rejected": {"self": 12, "rate_limited": 4, "stale": 2},
    "dials_started": 2, "dials_connected": 1, "dials_failed": 1,
    "dials_skipped": {"connected": 10}, "pending_dials": 0,
}


class StatusPartsTests(SynchronousTestCase):
    """status shows a few lines for each part the node has (LAN discovery, bootstrap, files),
    between the node's own rows and its peers; nothing for a part it does not have."""

    def part_lines(self, body: dict[str, Any]) -> list[str]:
        lines = _format("status", body).splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("packets"))
        self.assertEqual(lines[-1].strip().split()[0], "peer-a", "the peers come last")
        return lines[start + 1:-1]

    def test_no_parts_no_lines(self) -> None:
        """A node without those parts shows none of them."""
        self.assertEqual(self.part_lines(_status()), [])

    def test_discovery(self) -> None:
        """Discovery: running, its port and interval, what it sent and heard, what it
        rejected and why (most frequent first), and its dials."""
        self.assertEqual(self.part_lines(_status(discovery=_DISCOVERY)), [
            "discovery lan running, port 8004, announces every 10 s: 12 sent, 3 failed to send",
            "         heard 30: 12 accepted, 18 rejected (self 12, rate_limited 4, stale 2)",
            "         dials 2: 1 connected, 1 failed, 0 pending",
        ])
        stopped = dict(_DISCOVERY, running=False, listening=[], send_failed=0, rejected={})
        first, heard, _ = self.part_lines(_status(discovery=stopped))
        self.assertEqual(first, "discovery lan stopped, announces every 10 s: 12 sent")
        self.assertEqual(heard, "         heard 30: 12 accepted, 0 rejected")

    def test_bootstrap(self) -> None:
        """Bootstrap: the mode, in authority mode the tasks executed and rejected, and a line
        per server with its state, counts and last error (escaped: it may quote the server)."""
        section = {
            "mode": "authority",
            "servers": [
                {"url": "http://127.0.0.1:5070", "state": "registered", "last_error": None,
                 "heartbeat_interval": 8.0, "registrations": 1, "heartbeats": 42,
                 "peers_learnt": 3},
                {"url": "http://b.example:5070", "state": "registering", "failures": 5,
                 "last_error": "HTTP 503: \x1b[2J\nnode     forged\u202e"},
            ],
            "tasks.executed": 1, "tasks.executed.BLOCK_AND_REMOVE_PEER": 1,
            "tasks.rejected.forged": 2, "tasks.rejected.stale": 1,
        }
        self.assertEqual(self.part_lines(_status(bootstrap=section)), [
            ("bootstrap authority mode, 2 servers; tasks: 1 executed, 3 rejected "
            "(forged 2, stale 1)"),
            ("         http://127.0.0.1:5070 registered: 1 registration, 42 heartbeats, "
            "0 failures, 3 peers learnt"),
            ("         http://b.example:5070 registering: 0 registrations, 0 heartbeats, "
            "5 failures, 0 peers learnt; last error: HTTP 503: \\x1b[2J\\x0anode     "
            "forged\\u202e"),
        ])
        trustless = {"mode": "trustless", "servers": [
            {"url": "http://a", "state": "registered", "registrations": 1, "heartbeats": 1,
             "tasks_ignored": 2}]}
        self.assertEqual(self.part_lines(_status(bootstrap=trustless)), [
            "bootstrap trustless mode, 1 server",
            ("         http://a registered: 1 registration, 1 heartbeat, 0 failures, "
            "0 peers learnt, 2 tasks ignored"),
        ])

    def test_files(self) -> None:
        """Files: live transfers, finished ones by outcome, and what peers sent that was
        refused (only when there is some)."""
        counters = {"transfers_sent": 3, "transfers_received": 2, "transfers_failed": 1,
                    "chunks_sent": 90, "chunk_bytes_sent": 5_000_000}
        self.assertEqual(self.part_lines(_status(files={"active": 1, "counters": counters})), [
            ("files    1 active transfer; finished: 3 sent, 2 received, 1 failed, 0 cancelled, "
            "0 refused"),
        ])
        counters.update(chunks_bad_hash=2, messages_invalid=1)
        _, refused = self.part_lines(_status(files={"active": 0, "counters": counters}))
        self.assertEqual(refused, "         refused from peers: 2 chunks with a bad hash, "
                                  "1 invalid message")

    def test_all_parts_in_order(self) -> None:
        """Discovery, then bootstrap, then files."""
        body = _status(files={"active": 2, "counters": {}}, discovery=_DISCOVERY,
                       bootstrap={"mode": "trustless", "servers": []})
        labels = [line.split()[0] for line in self.part_lines(body) if not line.startswith(" ")]
        self.assertEqual(labels, ["discovery", "bootstrap", "files"])

    def test_hostile_or_unexpected_sections(self) -> None:
        """Sections of the wrong shape, fields of the wrong type and peer-controlled keys
        never crash status nor reach the terminal unescaped."""
        bodies = [
            _status(discovery=[1, 2], bootstrap="x", files=None),
            _status(discovery={"listening": "x", "rejected": [1], "interval": "10",
                               "sent": "many", "mode": "\x1b]0;title\x07"},
                    bootstrap={"servers": [None, 5, {"url": ["x"], "failures": True}],
                               "mode": "authority", "tasks.rejected.\x1b[31m": 1},
                    files={"active": "1", "counters": [1]}),
        ]
        for body in bodies:
            text = _format("status", body)
            self.assertNotIn("\x1b", text)
            self.assertNotIn("\x07", text)
        self.assertEqual(self.part_lines(bodies[0]), [])
        lines = self.part_lines(bodies[1])
        self.assertIn("discovery \\x1b]0;title\\x07 stopped: 0 sent", lines)
        self.assertIn("(\\x1b[31m 1)", lines[3])
