# -*- test-case-name: tests.test_discovery_announcement -*-
"""
The signed LAN announcement of a C{p2pnet} node, sans I/O.

One datagram of L{ANNOUNCEMENT_SIZE} (131) bytes, every field at a fixed place::

    magic     4  b"p2pA"
    version   1  1
    key      32  the node's raw Ed25519 public key (the identifier is derived from it)
    address   4  the IPv4 address the node sends from, which receivers require as the source
    port      2  the TLS listening port, big-endian, 1-65535
    time      8  milliseconds since the Unix epoch when it was sent, big-endian
    nonce    16  random bytes, never sent twice
    signature 64 Ed25519, by that key, over L{SIGNATURE_CONTEXT} + the 67 bytes from magic to nonce

A receiver (L{AnnouncementReader}) checks, cheapest first: the size, magic and version, that
the address is the datagram's source, the port, the time (at most C{max_age} seconds away from
its own clock, either way), that the key is not its own, that the nonce is new, and last the
signature.  Only a verified nonce enters the replay cache, so forged datagrams cannot fill it.
Each refusal is a L{BadAnnouncement} carrying its cause, one of L{CAUSES}.
"""

from __future__ import annotations

import socket
import struct
from collections import OrderedDict
from collections.abc import Callable

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.peer import GenericPeer

__all__ = [
    "ANNOUNCEMENT_SIZE",
    "CAUSES",
    "DEFAULT_MAX_AGE",
    "DEFAULT_REPLAY_ENTRIES",
    "MAGIC",
    "SIGNATURE_CONTEXT",
    "VERSION",
    "Announcement",
    "AnnouncementReader",
    "BadAnnouncement",
    "ReplayCache",
    "encode_announcement",
    "parse_announcement",
]

MAGIC = b"p2pA"
"""The first four bytes of every announcement."""

VERSION = 1
"""The version of the format this module reads and writes."""

SIGNATURE_CONTEXT = b"p2pnet_tx LAN announcement\x00"
"""Prefixed to the signed bytes, so that no other message signed by a node key can pass for an
announcement."""

_BODY = struct.Struct(">4sB32s4sHQ16s")
_SIGNATURE_SIZE = 64

ANNOUNCEMENT_SIZE = _BODY.size + _SIGNATURE_SIZE
"""The size of an announcement, in bytes."""

DEFAULT_MAX_AGE = 20.0
"""How far, in seconds, an announcement's time may be from the receiver's clock (either way)."""

DEFAULT_REPLAY_ENTRIES = 4096
"""How many nonces a replay cache holds at most."""

CAUSES = (
    "malformed", "version", "source_mismatch", "bad_port", "stale", "self", "replayed",
    "bad_signature",
)
"""The causes of refusal, as counted (C{rejected.<cause>}); the receiver adds its own."""


class BadAnnouncement(Exception):
    """
    A datagram is not an announcement to act on.

    @ivar cause: why, one of L{CAUSES} (or a cause of the receiver's).
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@attrs.frozen
class Announcement:
    """
    A verified announcement.

    @ivar public_key: the sender's 32 raw Ed25519 public-key bytes.
    @ivar identifier: the identifier derived from C{public_key}.
    @ivar address: the sender's IPv4 address (equal to the datagram's source).
    @ivar port: the sender's TLS listening port.
    @ivar timestamp: when it was sent, in seconds since the epoch.
    @ivar nonce: its 16 random bytes.
    """

    public_key: bytes
    identifier: str
    address: str
    port: int
    timestamp: float
    nonce: bytes

    def peer(self) -> GenericPeer:
        """The peer to dial: its address and port, and the identifier TLS must prove."""
        return GenericPeer(self.address, self.port, self.identifier)


def encode_announcement(
    private_key: Ed25519PrivateKey, address: str, port: int, timestamp: float, nonce: bytes
) -> bytes:
    """
    Write and sign an announcement.

    @param private_key: the node key that signs it.
    @param address: the IPv4 address the datagram is sent from.
    @param port: the TLS listening port, 1-65535.
    @param timestamp: now, in seconds since the epoch (the sender's clock).
    @param nonce: 16 fresh random bytes.
    @raise ValueError: for an address that is not IPv4, a port out of range, a negative time
        or a nonce that is not 16 bytes.
    """
    try:
        packed = socket.inet_pton(socket.AF_INET, address)
    except (OSError, TypeError):
        raise ValueError(f"{address!r} is not an IPv4 address") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    if timestamp < 0:
        raise ValueError(f"timestamp {timestamp} is before the epoch")
    if len(nonce) != 16:
        raise ValueError(f"a nonce has 16 bytes, not {len(nonce)}")
    body = _BODY.pack(
        MAGIC, VERSION, public_key_bytes(private_key), packed, port, int(timestamp * 1000), nonce
    )
    return body + private_key.sign(SIGNATURE_CONTEXT + body)


def parse_announcement(data: bytes) -> tuple[Announcement, bytes, bytes]:
    """
    Read the fields of an announcement, checking its shape only (not its time, source or
    signature).

    @return: the announcement, the signed body and the signature.
    @raise BadAnnouncement: C{malformed} or C{version}.
    """
    if len(data) < 5 or data[:4] != MAGIC:
        raise BadAnnouncement("malformed", "not an announcement (no magic)")
    if data[4] != VERSION:
        raise BadAnnouncement("version", f"announcement version {data[4]} is not {VERSION}")
    if len(data) != ANNOUNCEMENT_SIZE:
        raise BadAnnouncement(
            "malformed", f"an announcement has {ANNOUNCEMENT_SIZE} bytes, not {len(data)}"
        )
    _, _, key, packed, port, millis, nonce = _BODY.unpack_from(data)
    announcement = Announcement(
        public_key=key,
        identifier=identifier_for_public_key(key),
        address=socket.inet_ntop(socket.AF_INET, packed),
        port=port,
        timestamp=millis / 1000.0,
        nonce=nonce,
    )
    return announcement, data[: _BODY.size], data[_BODY.size :]


class ReplayCache:
    """
    The nonces of the announcements accepted in the last C{max_age} seconds (and a little
    more), at most C{max_entries}: past that the oldest is forgotten.  An announcement older
    than C{max_age} is refused as stale anyway, so a nonce is kept only as long as it matters.

    @param max_age: the receiver's freshness window, in seconds.
    @param max_entries: the most nonces kept.
    """

    def __init__(self, max_age: float, max_entries: int = DEFAULT_REPLAY_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.max_age = max_age
        self.max_entries = max_entries
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, nonce: bytes, now: float) -> bool:
        """Whether C{nonce} was added and is still remembered at time C{now}."""
        self._expire(now)
        return nonce in self._expiry

    def add(self, nonce: bytes, timestamp: float, now: float) -> None:
        """
        Remember C{nonce}, of an announcement sent at C{timestamp}, until it is stale.

        @param now: the receiver's time.
        """
        self._expire(now)
        self._expiry[nonce] = max(timestamp, now) + self.max_age
        self._expiry.move_to_end(nonce)
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Entries are in the order they were added; expiry times differ a little (clock skew
        # between senders), so this stops at the first live one and the rest wait their turn.
        while self._expiry:
            nonce, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                return
            del self._expiry[nonce]


class AnnouncementReader:
    """
    Checks received announcements (see the module docstring for the order).

    @param clock_seconds: the receiver's clock, C{reactor.seconds}.
    @param own_key: this node's raw public key: its own announcements are refused as C{self}.
    @param max_age: the freshness window, in seconds.
    @param replay_entries: the size of the replay cache.
    @ivar replays: the L{ReplayCache}.
    """

    def __init__(
        self,
        clock_seconds: Callable[[], float],
        own_key: bytes,
        max_age: float = DEFAULT_MAX_AGE,
        replay_entries: int = DEFAULT_REPLAY_ENTRIES,
    ) -> None:
        self._seconds = clock_seconds
        self._own_key = own_key
        self.max_age = max_age
        self.replays = ReplayCache(max_age, replay_entries)

    def read(self, data: bytes, source: str) -> Announcement:
        """
        Check one datagram from C{source}.

        @return: the verified announcement; its address is C{source}.
        @raise BadAnnouncement: with the cause of the refusal.
        """
        announcement, body, signature = parse_announcement(data)
        if announcement.address != source:
            raise BadAnnouncement(
                "source_mismatch",
                f"announces {announcement.address} but was sent from {source}",
            )
        if announcement.port == 0:
            raise BadAnnouncement("bad_port", "announces port 0")
        now = self._seconds()
        if abs(now - announcement.timestamp) > self.max_age:
            raise BadAnnouncement(
                "stale", f"sent {now - announcement.timestamp:.1f} s from now "
                f"(more than {self.max_age:g} s either way)",
            )
        if announcement.public_key == self._own_key:
            raise BadAnnouncement("self", "this node's own announcement")
        if self.replays.seen(announcement.nonce, now):
            raise BadAnnouncement("replayed", "a nonce already seen")
        try:
            Ed25519PublicKey.from_public_bytes(announcement.public_key).verify(
                signature, SIGNATURE_CONTEXT + body
            )
        except (InvalidSignature, ValueError):
            raise BadAnnouncement("bad_signature", "the signature does not verify") from None
        self.replays.add(announcement.nonce, announcement.timestamp, now)
        return announcement
