"""
The signed LAN announcement: what a sender writes, and every reason a receiver refuses one.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.discovery.announcement import (
    ANNOUNCEMENT_SIZE,
    CAUSES,
    MAGIC,
    AnnouncementReader,
    BadAnnouncement,
    ReplayCache,
    encode_announcement,
    parse_announcement,
)
from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.peer import GenericPeer

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()
OWN_KEY = Ed25519PrivateKey.generate()


def announcement(address: str = "10.0.0.7", port: int = 8051, timestamp: float = NOW,
                 nonce: bytes = b"n" * 16, key: Ed25519PrivateKey = KEY) -> bytes:
    return encode_announcement(key, address, port, timestamp, nonce)


class AnnouncementFormatTests(SynchronousTestCase):
    """The datagram's fixed layout."""

    def test_layout(self) -> None:
        """131 bytes: magic, version 1, the key, the address, the port, the time in ms, the
        nonce and the signature."""
        data = announcement()
        self.assertEqual(len(data), ANNOUNCEMENT_SIZE)
        self.assertEqual(ANNOUNCEMENT_SIZE, 131)
        self.assertEqual(data[:5], MAGIC + b"\x01")
        self.assertEqual(data[5:37], public_key_bytes(KEY))
        self.assertEqual(data[37:41], bytes([10, 0, 0, 7]))
        self.assertEqual(data[41:43], (8051).to_bytes(2, "big"))
        self.assertEqual(data[43:51], int(NOW * 1000).to_bytes(8, "big"))
        self.assertEqual(data[51:67], b"n" * 16)

    def test_parse_round_trip(self) -> None:
        """Parsing gives back the fields, the identifier derived from the key, and a peer to
        dial that carries that identifier."""
        parsed, body, signature = parse_announcement(announcement())
        self.assertEqual(parsed.identifier, identifier_for_public_key(KEY))
        self.assertEqual((parsed.address, parsed.port, parsed.timestamp, parsed.nonce),
                         ("10.0.0.7", 8051, NOW, b"n" * 16))
        self.assertEqual(len(body) + len(signature), ANNOUNCEMENT_SIZE)
        self.assertEqual(parsed.peer(), GenericPeer("10.0.0.7", 8051, parsed.identifier))

    def test_encode_refuses_bad_fields(self) -> None:
        """A sender cannot write an announcement it could not stand behind."""
        for kwargs in ({"address": "::1"}, {"address": "host"}, {"port": 0},
                       {"port": 70000}, {"timestamp": -1.0}, {"nonce": b"short"}):
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                self.assertRaises(ValueError, announcement, **kwargs)  # type: ignore[arg-type]

    @given(st.binary(max_size=400))
    def test_any_bytes_parse_or_raise_bad_announcement(self, data: bytes) -> None:
        """Hostile input: arbitrary bytes either parse or raise BadAnnouncement, nothing else."""
        try:
            parse_announcement(data)
        except BadAnnouncement as e:
            self.assertIn(e.cause, CAUSES)

    @given(st.tuples(*[st.integers(0, 255)] * 4), st.integers(1, 65535),
           st.floats(0, 2**40, allow_nan=False), st.binary(min_size=16, max_size=16))
    def test_round_trip_property(self, octets: tuple[int, ...], port: int, timestamp: float,
                                 nonce: bytes) -> None:
        """Every valid announcement parses back to its fields (the time to the millisecond)."""
        address = ".".join(map(str, octets))
        parsed, _, _ = parse_announcement(announcement(address, port, timestamp, nonce))
        self.assertEqual((parsed.address, parsed.port, parsed.nonce), (address, port, nonce))
        self.assertAlmostEqual(parsed.timestamp, int(timestamp * 1000) / 1000.0)


class AnnouncementReaderTests(SynchronousTestCase):
    """Each refusal has its cause; only a verified announcement is accepted."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.reader = AnnouncementReader(self.clock.seconds, public_key_bytes(OWN_KEY))

    def cause(self, data: bytes, source: str = "10.0.0.7") -> str:
        with self.assertRaises(BadAnnouncement) as raised:
            self.reader.read(data, source)
        return raised.exception.cause

    def test_accepts_a_fresh_signed_announcement(self) -> None:
        """The address is the source, the time is now, the signature verifies: accepted."""
        accepted = self.reader.read(announcement(), "10.0.0.7")
        self.assertEqual(accepted.identifier, identifier_for_public_key(KEY))
        self.assertEqual(len(self.reader.replays), 1)

    def test_malformed(self) -> None:
        """No magic, a truncated or a padded datagram: malformed."""
        data = announcement()
        self.assertEqual(self.cause(b""), "malformed")
        self.assertEqual(self.cause(b"junk" + data[4:]), "malformed")
        self.assertEqual(self.cause(data[:-1]), "malformed")
        self.assertEqual(self.cause(data + b"\x00"), "malformed")

    def test_unknown_version(self) -> None:
        """A later version is refused as such (a newer sender on the LAN is no offender)."""
        data = announcement()
        self.assertEqual(self.cause(data[:4] + b"\x02" + data[5:]), "version")

    def test_address_must_be_the_source(self) -> None:
        """An announcement naming another host's address is refused before anything else."""
        self.assertEqual(self.cause(announcement(), source="10.0.0.8"), "source_mismatch")
        self.assertEqual(len(self.reader.replays), 0)

    def test_port_zero(self) -> None:
        """Port 0 (which no honest sender writes) is refused."""
        data = bytearray(announcement())
        data[41:43] = b"\x00\x00"
        self.assertEqual(self.cause(bytes(data)), "bad_port")

    def test_stale_either_way(self) -> None:
        """More than 20 s old or more than 20 s ahead: stale; 20 s exactly: accepted."""
        self.assertEqual(self.cause(announcement(timestamp=NOW - 20.5)), "stale")
        self.assertEqual(self.cause(announcement(timestamp=NOW + 20.5)), "stale")
        self.reader.read(announcement(timestamp=NOW - 20, nonce=b"a" * 16), "10.0.0.7")
        self.reader.read(announcement(timestamp=NOW + 20, nonce=b"b" * 16), "10.0.0.7")

    def test_own_announcement(self) -> None:
        """This node's own announcement (looped back by multicast) is refused as self."""
        self.assertEqual(self.cause(announcement(key=OWN_KEY)), "self")

    def test_replay(self) -> None:
        """The same datagram twice: the second is a replay."""
        data = announcement()
        self.reader.read(data, "10.0.0.7")
        self.assertEqual(self.cause(data), "replayed")

    def test_bad_signature(self) -> None:
        """A changed signature, or a changed signed byte, fails verification, and a forged
        datagram does not enter the replay cache."""
        data = announcement()
        self.assertEqual(self.cause(data[:-1] + bytes([data[-1] ^ 1])), "bad_signature")
        forged = bytearray(data)
        forged[42] ^= 1  # the port's low byte
        self.assertEqual(self.cause(bytes(forged)), "bad_signature")
        self.assertEqual(len(self.reader.replays), 0)
        self.reader.read(data, "10.0.0.7")  # the genuine one still passes

    def test_another_key_cannot_sign_for_a_key(self) -> None:
        """A datagram carrying one key, signed by another: bad signature."""
        data = announcement()
        other = announcement(key=Ed25519PrivateKey.generate())
        self.assertEqual(self.cause(data[:-64] + other[-64:]), "bad_signature")

    @given(st.integers(0, ANNOUNCEMENT_SIZE - 1), st.integers(1, 255))
    def test_every_byte_counts(self, index: int, flip: int) -> None:
        """Changing any one byte of a genuine announcement gets it refused: every byte is
        checked or signed."""
        data = bytearray(announcement(nonce=os.urandom(16)))
        data[index] ^= flip
        with self.assertRaises(BadAnnouncement):
            self.reader.read(bytes(data), "10.0.0.7")

    def test_an_invalid_key_is_a_bad_signature(self) -> None:
        """32 bytes that are no Ed25519 point never verify."""
        data = bytearray(announcement())
        data[5:37] = b"\xff" * 32
        self.assertEqual(self.cause(bytes(data)), "bad_signature")


class ReplayCacheTests(SynchronousTestCase):
    """The nonces kept are bounded in number and in time."""

    def test_forgets_after_max_age(self) -> None:
        """A nonce is kept until its announcement would be stale, then forgotten."""
        cache = ReplayCache(max_age=20)
        cache.add(b"a" * 16, timestamp=100.0, now=100.0)
        self.assertTrue(cache.seen(b"a" * 16, now=119.9))
        self.assertFalse(cache.seen(b"a" * 16, now=120.0))
        self.assertEqual(len(cache), 0)

    def test_future_timestamp_kept_until_it_is_stale(self) -> None:
        """An announcement dated 15 s ahead stays fresh until 35 s from now: so does its nonce."""
        cache = ReplayCache(max_age=20)
        cache.add(b"a" * 16, timestamp=115.0, now=100.0)
        self.assertTrue(cache.seen(b"a" * 16, now=134.0))

    def test_bounded(self) -> None:
        """Past max_entries the oldest nonce goes first."""
        cache = ReplayCache(max_age=20, max_entries=3)
        nonces = [os.urandom(16) for _ in range(5)]
        for nonce in nonces:
            cache.add(nonce, timestamp=100.0, now=100.0)
        self.assertEqual(len(cache), 3)
        self.assertEqual([cache.seen(n, now=100.0) for n in nonces],
                         [False, False, True, True, True])

    def test_needs_room(self) -> None:
        """A cache of no entries is refused."""
        self.assertRaises(ValueError, ReplayCache, 20, 0)
