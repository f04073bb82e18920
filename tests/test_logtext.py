"""
Tests for L{p2pnet_tx.logtext}: what a peer said, cut and escaped before it reaches a log.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.errors import MalformedPacket, UnknownPacketType
from p2pnet_tx.logtext import PEER_TEXT_LIMIT, peer_text
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.wire import get_codec, parse_timestamp


def frame_body(text: str) -> bytes:
    """The p2pnet frame of C{text} as it is, length prefix and all."""
    body = text.encode()
    return len(body).to_bytes(4, "big") + body


class PeerTextTests(SynchronousTestCase):
    """peer_text() cuts to a limit, says how much it cut, and makes the invisible visible."""

    def test_short_printable_text_unchanged(self) -> None:
        """Short printable text, in any script, is returned as it is."""
        for text in ("FuturePacket", "peer_one", "", "Grüße, 世界", "a b"):
            self.assertIs(peer_text(text), text)

    def test_long_text_cut_with_marker(self) -> None:
        """A 60 KB text is cut to 100 characters, and the marker says how many were cut."""
        self.assertEqual(PEER_TEXT_LIMIT, 100)
        text = "T" * 60_000
        self.assertEqual(peer_text(text), "T" * 100 + "...[59900 more chars]")
        self.assertEqual(peer_text(text, 10), "T" * 10 + "...[59990 more chars]")
        self.assertEqual(peer_text("x" * 100), "x" * 100)
        self.assertEqual(peer_text("x" * 101), "x" * 100 + "...[1 more chars]")

    def test_control_characters_escaped(self) -> None:
        """Newlines, carriage returns, tabs, NUL and ESC (ANSI sequences) are escaped."""
        self.assertEqual(peer_text("a\nb\r\tc\x00"), "a\\nb\\r\\tc\\x00")
        self.assertEqual(peer_text("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m")
        self.assertEqual(peer_text("fake line\n2026-01-01 [-] peer trusted"),
                         "fake line\\n2026-01-01 [-] peer trusted")

    def test_unicode_tricks_escaped(self) -> None:
        """
        Lone surrogates, line and paragraph separators, and format characters such as the
        right-to-left override are escaped.
        """
        self.assertEqual(peer_text("\ud800x\udfff"), "\\ud800x\\udfff")
        self.assertEqual(peer_text("a\u2028b\u2029c\x85"), "a\\u2028b\\u2029c\\x85")
        self.assertEqual(peer_text("abc\u202edef"), "abc\\u202edef")
        self.assertEqual(peer_text("\u200b"), "\\u200b")

    def test_safe_text_passes_again_unchanged(self) -> None:
        """
        A backslash is kept, so text made safe once (a reason quoting a peer) passes through
        peer_text again unchanged, only cut if it is too long.
        """
        once = peer_text("\x1b[2J\n" * 100)
        self.assertEqual(peer_text(once, len(once)), once)
        self.assertEqual(peer_text("\\x1b"), "\\x1b")

    def test_escapes_count_towards_the_limit(self) -> None:
        """The limit bounds the escaped text; the marker counts the characters not shown."""
        result = peer_text("\n" * 1000)
        self.assertEqual(result, "\\n" * 50 + "...[950 more chars]")
        self.assertEqual(peer_text("ab\x1b", 5), "ab...[1 more chars]")

    def test_bytes(self) -> None:
        """Bytes are shown as repr() shows them, cut to the limit."""
        self.assertEqual(peer_text(b"ab\n\xff"), "b'ab\\n\\xff'")
        shown = peer_text(b"\x1b" * 10_000)
        self.assertTrue(shown.startswith("b'\\x1b"))
        self.assertTrue(shown.endswith(" more chars]"), shown)
        self.assertLess(len(shown), 130)
        self.assertNotIn("\x1b", shown)

    def test_other_values(self) -> None:
        """Other values are shown as str() shows them: ints, None, JSON lists and objects."""
        self.assertEqual(peer_text(5), "5")
        self.assertEqual(peer_text(None), "None")
        self.assertEqual(peer_text(["a\nb"]), "['a\\nb']")
        self.assertEqual(peer_text({"k": 1}), "{'k': 1}")
        self.assertLess(len(peer_text(list(range(100_000)))), 130)

    def test_unshowable_values(self) -> None:
        """A value whose str() fails (an int of 5,000 digits) is named, never raised."""
        self.assertEqual(peer_text(10**5000), "<int that cannot be shown>")

        class Broken:
            def __str__(self) -> str:
                raise RuntimeError("no")

        self.assertEqual(peer_text(Broken()), "<Broken that cannot be shown>")

    def test_limit_checked(self) -> None:
        """A limit below 1 is a ValueError."""
        self.assertRaises(ValueError, peer_text, "x", 0)

    @given(st.text(), st.integers(1, 300))
    def test_always_bounded_and_printable(self, text: str, limit: int) -> None:
        """Whatever the text, the result is printable and at most the limit plus a marker."""
        result = peer_text(text, limit)
        self.assertTrue(result.isprintable(), ascii(result))
        self.assertLessEqual(len(result), limit + len(f"...[{len(text)} more chars]"))
        if len(text) <= limit and text.isprintable():
            self.assertEqual(result, text)
        self.assertEqual(peer_text(result, max(len(result), 1)), result)


class PeerTextAtTheSourceTests(SynchronousTestCase):
    """The errors made of a peer's input quote it through peer_text: they stay small."""

    def test_unknown_packet_type_bounded(self) -> None:
        """A 60 KB type name makes a reason of about 100 characters, escaped."""
        [error] = get_codec("p2pnet").decoder().feed(
            frame_body('{"type": "' + "\\n" * 30_000 + '", "packet": {}}')
        )
        self.assertIsInstance(error, UnknownPacketType)
        self.assertLess(len(error.reason), 160)
        self.assertTrue(error.reason.startswith("unknown packet type '\\n\\n"), error.reason)
        self.assertIn("...[29950 more chars]", error.reason)
        self.assertEqual(error.packet_type, "\n" * 256)
        self.assertEqual(len(error.raw), 60_000 + 26)

    def test_unknown_packet_type_short_names_unchanged(self) -> None:
        """A short type is quoted as before: the reason names it exactly."""
        self.assertEqual(UnknownPacketType("Future", b"{}").reason, "unknown packet type 'Future'")
        self.assertEqual(UnknownPacketType(5, b"{}").reason, "unknown packet type 5")
        self.assertEqual(UnknownPacketType(5, b"{}").packet_type, 5)

    def test_bad_timestamp_bounded(self) -> None:
        """A 3 KB timestamp field makes a short, escaped reason."""
        [error] = get_codec("p2pnet").decoder().feed(frame_body(
            '{"type": "Message", "packet": {"Message": "x", "SourceOriginTime": "'
            + "\\u001b" * 500 + '"}}'
        ))
        self.assertIsInstance(error, MalformedPacket)
        self.assertLess(len(error.reason), 200)
        self.assertNotIn("\x1b", error.reason)
        with self.assertRaises(ValueError) as raised:
            parse_timestamp("9" * 100_000)
        self.assertLess(len(str(raised.exception)), 200)

    def test_bad_address_bounded(self) -> None:
        """A 3 KB address in an Identity or a peer list makes a short, escaped reason."""
        for packet in (
            '{"type": "Identity", "packet": {"IP": "' + "\\n" * 1000 + '"}}',
            '{"type": "PeerGroup", "packet": {"peers": [{"Address": "' + "x" * 3000
            + '", "Port": 1}]}}',
        ):
            [error] = get_codec("p2pnet").decoder().feed(frame_body(packet))
            self.assertIsInstance(error, MalformedPacket)
            self.assertLess(len(error.reason), 200, error.reason)
            self.assertNotIn("\n", error.reason)

    def test_dotnet_reasons_bounded(self) -> None:
        """The dotnet reader quotes the same way."""
        [error] = get_codec("dotnet").decoder().feed(
            b'<Message>{"Message":"x","SourceOriginTime":"' + b"\\u000a" * 500 + b'"}</Message>'
        )
        self.assertIsInstance(error, MalformedPacket)
        self.assertLess(len(error.reason), 200)
        self.assertNotIn("\n", error.reason)


class GenericPeerTextTests(SynchronousTestCase):
    """A peer's text form (what every log line shows) escapes what the peer chose."""

    def test_plain_peer_unchanged(self) -> None:
        """A usual identifier and address are shown as they are."""
        self.assertEqual(str(GenericPeer("10.0.0.7", 8001, "0123abcd" * 4)),
                         "0123abcd" * 4 + "@10.0.0.7:8001")
        self.assertEqual(str(GenericPeer("::1", 8001)), "[::1]:8001")

    def test_identifier_escaped_and_cut(self) -> None:
        """An identifier with a newline and ANSI escapes cannot forge or colour a log line."""
        peer = GenericPeer("10.0.0.7", 8001, "evil\n\x1b[2J" * 20)
        text = str(peer)
        self.assertTrue(text.isprintable(), text)
        self.assertTrue(text.startswith("evil\\n\\x1b[2J"), text)
        self.assertTrue(text.endswith("more chars]@10.0.0.7:8001"), text)
        self.assertLess(len(text), 120)

    def test_ipv6_scope_escaped_and_cut(self) -> None:
        """An IPv6 scope (which a peer list may carry) is escaped and cut too."""
        text = str(GenericPeer("fe80::1%\x1b[31m" + "x" * 3000, 1))
        self.assertTrue(text.isprintable(), text)
        self.assertLess(len(text), 120)
        self.assertTrue(text.startswith("[fe80::1%\\x1b[31mxx"), text)
