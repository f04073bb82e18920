"""
Tests for L{p2pnet_tx.ctl}: command lines become control API requests; errors are one line.
"""

from __future__ import annotations

import json

from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.ctl import CtlError, _format, _request_for, escape, parser, run


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
        self.assertEqual(_format("status", {"b": 1, "a": 2}), '{\n  "a": 2,\n  "b": 1\n}')

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
        """Other commands print JSON: ASCII, with every control character JSON-escaped, and
        it parses back to exactly what the node sent."""
        body = {"connected": [{"identifier": "x\x1b[2J\n\u202e", "address": "10.0.0.7"}]}
        output = _format("peers", body)
        self.assertTrue(output.isascii())
        self.assertNotIn("\x1b", output)
        self.assertEqual(json.loads(output), body)
