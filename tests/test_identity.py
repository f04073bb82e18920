"""
Tests for L{p2pnet_tx.identity}: identifiers derived from keys, and display names.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.identity import (
    IDENTIFIER_LENGTH,
    MAX_DISPLAY_NAME,
    identifier_for_public_key,
    is_key_identifier,
    public_key_bytes,
    sanitize_display_name,
)


class IdentifierTests(SynchronousTestCase):
    """An identifier is "b" + base32 of the sha2-256 multihash of the raw public key."""

    def test_known_vector(self) -> None:
        """The identifier of 32 zero bytes, computed by hand from the definition."""
        digest = bytes.fromhex("1220") + hashlib.sha256(bytes(32)).digest()
        self.assertEqual(hashlib.sha256(bytes(32)).hexdigest()[:8], "66687aad")
        expected = "b" + base64.b32encode(digest).decode().rstrip("=").lower()
        self.assertEqual(expected, "bciqgm2d2vx4gfplxnsh4dc4ot6hcacexcscw5yrtwoicuwi5bvpssji")
        self.assertEqual(identifier_for_public_key(bytes(32)), expected)

    def test_shape(self) -> None:
        """Every derived identifier is 56 lowercase characters starting "bciq"."""
        for _ in range(20):
            identifier = identifier_for_public_key(Ed25519PrivateKey.generate())
            self.assertEqual(len(identifier), IDENTIFIER_LENGTH)
            self.assertTrue(identifier.startswith("bciq"))
            self.assertEqual(identifier, identifier.lower())
            self.assertNotIn("=", identifier)
            self.assertTrue(is_key_identifier(identifier))

    def test_same_key_any_form(self) -> None:
        """A private key, its public key and its raw bytes give one identifier."""
        key = Ed25519PrivateKey.generate()
        raw = public_key_bytes(key)
        self.assertEqual(len(raw), 32)
        self.assertEqual(identifier_for_public_key(key), identifier_for_public_key(raw))
        self.assertEqual(identifier_for_public_key(key.public_key()), identifier_for_public_key(raw))

    def test_different_keys(self) -> None:
        """Different keys give different identifiers."""
        self.assertNotEqual(identifier_for_public_key(Ed25519PrivateKey.generate()),
                            identifier_for_public_key(Ed25519PrivateKey.generate()))

    def test_wrong_length(self) -> None:
        """Raw bytes that are not 32 long are no Ed25519 key."""
        with self.assertRaises(ValueError):
            identifier_for_public_key(bytes(31))

    def test_not_key_identifiers(self) -> None:
        """Chosen names, truncated, upper-case or garbled identifiers are not key identifiers."""
        good = identifier_for_public_key(Ed25519PrivateKey.generate())
        for bad in ["server", "", good[:-1], good.upper(), good[:-1] + "1", "b" + "a" * 55,
                    None, 42]:
            self.assertFalse(is_key_identifier(bad), bad)

    def test_trust_reexports(self) -> None:
        """p2pnet_tx.trust still offers the helpers under their old names."""
        from p2pnet_tx import trust

        self.assertIs(trust.identifier_for_public_key, identifier_for_public_key)
        self.assertIs(trust.public_key_bytes, public_key_bytes)


class DisplayNameTests(SynchronousTestCase):
    """A display name is shown, never trusted: short, printable text or nothing."""

    def test_accepted(self) -> None:
        for name in ["alice", "node 7", "Zoë's laptop", "x" * MAX_DISPLAY_NAME, "日本"]:
            self.assertEqual(sanitize_display_name(name), name)

    def test_refused(self) -> None:
        for name in ["", "   ", "x" * (MAX_DISPLAY_NAME + 1), "a\nb", "a\x1b[2Jb", "a\u202eb",
                     "a\u2028b", "a\x00", None, 7, b"bytes"]:
            self.assertIsNone(sanitize_display_name(name), repr(name))

    @given(st.text(max_size=100))
    def test_never_raises(self, name: str) -> None:
        """Any text is either kept whole or refused."""
        result = sanitize_display_name(name)
        self.assertIn(result, (None, name))
        if result is not None:
            self.assertLessEqual(len(result), MAX_DISPLAY_NAME)
            self.assertFalse([c for c in result if unicodedata.category(c)[0] == "C"])
