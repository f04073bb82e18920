# -*- test-case-name: tests.test_identity -*-
"""
Self-certifying identities: a node is its Ed25519 key, and its identifier is derived from the
public key, as libp2p peer IDs are.

The identifier is C{"b"} followed by the lowercase, unpadded RFC 4648 base32 of the sha2-256
multihash of the 32 raw public-key bytes (C{0x12 0x20} then the 32-byte SHA-256 digest): 56
characters, always starting C{"bciq"}.  A peer can claim an identifier only with the key it
derives from; L{p2pnet_tx.tls} makes each connection prove that key.

A display name is what a user chose to call a node: shown to people, never trusted.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "IDENTIFIER_LENGTH",
    "MAX_DISPLAY_NAME",
    "identifier_for_public_key",
    "is_key_identifier",
    "public_key_bytes",
    "sanitize_display_name",
]

_MULTIHASH_SHA2_256 = b"\x12\x20"
"""The multihash header of a 32-byte sha2-256 digest (code 0x12, length 0x20)."""

_MULTIBASE_BASE32 = "b"
"""The multibase prefix of lowercase, unpadded RFC 4648 base32."""

IDENTIFIER_LENGTH = 56
"""The length of every identifier derived from a key."""

MAX_DISPLAY_NAME = 64
"""The longest display name accepted, in characters."""


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Return the 32 raw bytes of an Ed25519 public key (of a private key's public half)."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def identifier_for_public_key(key: bytes | Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """
    Return the identifier derived from an Ed25519 public key (see the module docstring).

    @param key: the 32 raw public-key bytes, or a public or private key.
    @raise ValueError: for raw bytes that are not 32 long.
    """
    raw = key if isinstance(key, bytes) else public_key_bytes(key)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    digest = _MULTIHASH_SHA2_256 + hashlib.sha256(raw).digest()
    return _MULTIBASE_BASE32 + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def is_key_identifier(identifier: object) -> bool:
    """Whether C{identifier} has the form of an identifier derived from a key."""
    if not isinstance(identifier, str) or len(identifier) != IDENTIFIER_LENGTH:
        return False
    if not identifier.startswith(_MULTIBASE_BASE32 + "ciq"):
        return False
    try:
        body = identifier[1:].upper()
        digest = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        return False
    return digest[:2] == _MULTIHASH_SHA2_256 and len(digest) == 34


def sanitize_display_name(name: object) -> str | None:
    """
    Return C{name} if it is fit to show as a display name, else C{None}: a str of 1 to
    L{MAX_DISPLAY_NAME} characters with no control, format or line-separator characters
    (which could rewrite a terminal or reorder text), and not only spaces.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_DISPLAY_NAME:
        return None
    for char in name:
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp"):
            return None
    return name
