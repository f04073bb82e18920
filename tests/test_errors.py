# -*- test-case-name: tests.test_errors -*-
"""
Tests for the wire-related errors of L{p2pnet_tx.errors}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.errors import (
    FrameTooLarge,
    FramingError,
    InvalidPeer,
    MalformedPacket,
    P2PNetError,
    TooMuchGarbage,
    UnknownPacketType,
)


class ErrorHierarchyTests(SynchronousTestCase):
    def test_hierarchy(self) -> None:
        """
        Every error is a P2PNetError; bad frames (MalformedPacket, UnknownPacketType) are apart
        from broken streams (FramingError: FrameTooLarge, TooMuchGarbage).
        """
        self.assertTrue(issubclass(InvalidPeer, ValueError))
        self.assertTrue(issubclass(UnknownPacketType, MalformedPacket))
        for cls in (FrameTooLarge, TooMuchGarbage):
            self.assertTrue(issubclass(cls, FramingError))
            self.assertFalse(issubclass(cls, MalformedPacket))
        self.assertFalse(issubclass(MalformedPacket, FramingError))
        for cls in (InvalidPeer, MalformedPacket, UnknownPacketType, FramingError, FrameTooLarge,
                    TooMuchGarbage):
            self.assertTrue(issubclass(cls, P2PNetError))


class MalformedPacketTests(SynchronousTestCase):
    def test_fields(self) -> None:
        """A MalformedPacket carries its reason and the raw frame body."""
        error = MalformedPacket("bad", b"{")
        self.assertEqual((error.reason, error.raw, str(error)), ("bad", b"{", "bad"))
        self.assertEqual(MalformedPacket("bad").raw, b"")

    def test_equality(self) -> None:
        """Two MalformedPackets are equal when their type, reason and raw bytes are."""
        self.assertEqual(MalformedPacket("bad", b"{"), MalformedPacket("bad", b"{"))
        self.assertEqual(hash(MalformedPacket("bad", b"{")), hash(MalformedPacket("bad", b"{")))
        self.assertNotEqual(MalformedPacket("bad", b"{"), MalformedPacket("bad", b"["))
        self.assertNotEqual(MalformedPacket("bad", b"{"), MalformedPacket("worse", b"{"))
        self.assertNotEqual(UnknownPacketType("X", b"{}"),
                            MalformedPacket("unknown packet type 'X'", b"{}"))

    def test_repr_hides_raw(self) -> None:
        """The repr gives the size of the raw bytes, not the bytes (they may be megabytes)."""
        text = repr(MalformedPacket("bad", b"x" * 1000))
        self.assertIn("1000 bytes", text)
        self.assertNotIn("xxxx", text)

    def test_unknown_packet_type(self) -> None:
        """An UnknownPacketType names the type it was given."""
        error = UnknownPacketType(5, b"{}")
        self.assertEqual((error.packet_type, error.raw), (5, b"{}"))
        self.assertIn("5", error.reason)


class FramingErrorTests(SynchronousTestCase):
    def test_facts(self) -> None:
        """Framing errors carry the size seen and the limit in force, and say both."""
        for cls in (FrameTooLarge, TooMuchGarbage):
            error = cls(2000, 1000)
            self.assertEqual((error.size, error.limit), (2000, 1000))
            self.assertIn("2000", str(error))
            self.assertIn("1000", str(error))

    def test_frames_default_empty(self) -> None:
        """Before a decoder fills it in, an error's frames list is empty."""
        self.assertEqual(FrameTooLarge(2, 1).frames, [])
