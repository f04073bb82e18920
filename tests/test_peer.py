# -*- test-case-name: tests.test_peer -*-
"""
Tests for L{p2pnet_tx.peer.GenericPeer}: validated, normalised, immutable.
"""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from p2pnet_tx.errors import InvalidPeer, P2PNetError
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.peer import (
    MAX_IDENTIFIER_BYTES,
    GenericPeer,
    HostnamePeer,
    is_hostname,
    peer_for_host,
    peer_from_string,
)


class GenericPeerTests(SynchronousTestCase):
    def test_provides_ipeer(self) -> None:
        """GenericPeer provides IPeer."""
        self.assertTrue(verifyObject(IPeer, GenericPeer("10.0.0.7", 8051, "peer_one")))
        self.assertTrue(verifyObject(IPeer, GenericPeer("::1", 8051)))

    def test_fields(self) -> None:
        """A peer keeps its address, port and identifier (None when not given)."""
        peer = GenericPeer("10.0.0.7", 8051, "peer_one")
        self.assertEqual((peer.address, peer.port, peer.identifier),
                         ("10.0.0.7", 8051, "peer_one"))
        self.assertIsNone(GenericPeer("10.0.0.7", 8051).identifier)

    def test_addresses_normalised(self) -> None:
        """IPv4 and IPv6 addresses are accepted and kept in their normalised text form."""
        for given_address, normal in (
            ("10.0.0.7", "10.0.0.7"),
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255", "255.255.255.255"),
            ("::1", "::1"),
            ("2001:DB8:0:0:0:0:0:0001", "2001:db8::1"),
            ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
            ("FE80::1", "fe80::1"),
        ):
            self.assertEqual(GenericPeer(given_address, 1).address, normal)
        self.assertEqual(GenericPeer("2001:DB8::1", 1), GenericPeer("2001:db8:0::1", 1))

    def test_bad_addresses(self) -> None:
        """Anything that is not an IP address string is an InvalidPeer."""
        for bad in ("999.1.1.1", "10.0.0", "10.0.0.7.1", "010.0.0.7", "localhost", "", " 10.0.0.7",
                    "10.0.0.7:8051", "[::1]", "::g", "2001:db8::1::2", None, 167772167,
                    b"10.0.0.7", ["10.0.0.7"]):
            self.assertRaises(InvalidPeer, GenericPeer, bad, 8051)

    def test_ports(self) -> None:
        """Ports 1 to 65535 are accepted; anything else, including bools, is an InvalidPeer."""
        for good in (1, 8051, 65535):
            self.assertEqual(GenericPeer("10.0.0.7", good).port, good)
        for bad in (0, -1, 65536, 70000, True, False, "8051", 8051.0, None):
            self.assertRaises(InvalidPeer, GenericPeer, "10.0.0.7", bad)

    def test_identifier_length(self) -> None:
        """An identifier of up to 256 UTF-8 bytes is accepted; 257 bytes is an InvalidPeer."""
        self.assertEqual(MAX_IDENTIFIER_BYTES, 256)
        for good in ("", "x" * 256, "\u00e9" * 128, "\U0001F600" * 64):
            self.assertEqual(GenericPeer("10.0.0.7", 1, good).identifier, good)
        for bad in ("x" * 257, "\u00e9" * 128 + "x", "\U0001F600" * 64 + "x", "\u4e2d" * 86):
            self.assertRaises(InvalidPeer, GenericPeer, "10.0.0.7", 1, bad)

    def test_bad_identifiers(self) -> None:
        """An identifier that is not text (or not encodable as UTF-8) is an InvalidPeer."""
        for bad in (5, b"peer_one", ["peer_one"], "\ud800"):
            self.assertRaises(InvalidPeer, GenericPeer, "10.0.0.7", 1, bad)

    def test_invalid_peer_is_value_error(self) -> None:
        """InvalidPeer is a ValueError and a P2PNetError, so either kind of handler catches it."""
        error = self.assertRaises(ValueError, GenericPeer, "999.1.1.1", 1)
        self.assertIsInstance(error, InvalidPeer)
        self.assertIsInstance(error, P2PNetError)
        self.assertIn("999.1.1.1", str(error))

    def test_frozen(self) -> None:
        """A peer is immutable, and equal peers hash alike."""
        peer = GenericPeer("10.0.0.7", 8051)
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, peer, "port", 1)
        self.assertEqual(hash(peer), hash(GenericPeer("10.0.0.7", 8051)))
        self.assertEqual(len({peer, GenericPeer("10.0.0.7", 8051), GenericPeer("10.0.0.7", 1)}), 2)

    def test_str(self) -> None:
        """str() gives identifier@host:port, with IPv6 hosts in brackets."""
        self.assertEqual(str(GenericPeer("10.0.0.7", 8051, "peer_one")), "peer_one@10.0.0.7:8051")
        self.assertEqual(str(GenericPeer("::1", 8051)), "[::1]:8051")

    @settings(max_examples=100, deadline=None)
    @given(address=st.ip_addresses(), port=st.integers(1, 65535),
           identifier=st.none() | st.text(max_size=64))
    def test_any_valid_peer(self, address: object, port: int, identifier: str | None) -> None:
        """
        Every IP address, port and short identifier makes a peer, its address normalised (an
        IPv4-mapped IPv6 address is the IPv4 address it maps).
        """
        peer = GenericPeer(str(address), port, identifier)
        self.assertEqual(peer.address, str(getattr(address, "ipv4_mapped", None) or address))
        self.assertEqual(GenericPeer(peer.address, port, identifier), peer)


class HostnamePeerTests(SynchronousTestCase):
    """A host name is a place to dial, bounded in length and characters."""

    def test_provides_ipeer(self) -> None:
        """HostnamePeer provides IPeer, keeps the name in lower case, and shows it."""
        peer = HostnamePeer("Node-1.Example.", 8051, "peer_one")
        self.assertTrue(verifyObject(IPeer, peer))
        self.assertEqual((peer.address, peer.port), ("node-1.example.", 8051))
        self.assertEqual(str(peer), "peer_one@node-1.example.:8051")

    def test_bad_names(self) -> None:
        """Names with other characters, empty or over-long labels, a numeric last label, or
        over 253 characters are refused; escape sequences are shown escaped."""
        for bad in ("", "a..b", "-a", "a-", "a_b", "a b", "x" * 64, "10.0.0", "h\x1b[31m",
                    "\u00e9t\u00e9.example", ("a." * 127) + "ab", None, 5):
            self.assertRaises(InvalidPeer, HostnamePeer, bad, 8051)
        error = self.assertRaises(InvalidPeer, HostnamePeer, "h\x1b[31m", 1)
        self.assertNotIn("\x1b", str(error))
        self.assertTrue(is_hostname("x" * 63 + "." + "y" * 63))
        self.assertFalse(is_hostname("a" * 254))

    def test_generic_peer_says_to_use_a_hostname_peer(self) -> None:
        """GenericPeer is an address: a name is refused with a message saying what to use."""
        error = self.assertRaises(InvalidPeer, GenericPeer, "localhost", 8051)
        self.assertIn("HostnamePeer('localhost', PORT)", str(error))

    def test_peer_from_string(self) -> None:
        """HOST:PORT gives a GenericPeer for an address, a HostnamePeer for a name."""
        self.assertEqual(peer_from_string("localhost:8051"), HostnamePeer("localhost", 8051))
        self.assertEqual(peer_from_string("10.0.0.7:1"), GenericPeer("10.0.0.7", 1))
        self.assertEqual(peer_from_string("[::1]:8051"), GenericPeer("::1", 8051))
        self.assertEqual(peer_for_host("[::1]", 2), GenericPeer("::1", 2))
        for bad, says in (("localhost", "HOST:PORT"), (":8051", "HOST:PORT"),
                          ("localhost:x", "port must be a number"), ("::1:8051", "brackets"),
                          ("local_host:1", "neither an IP address nor a host name"),
                          ("localhost:0", "outside 1-65535")):
            error = self.assertRaises(InvalidPeer, peer_from_string, bad)
            self.assertIn(says, str(error))
