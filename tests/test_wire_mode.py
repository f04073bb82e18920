# -*- test-case-name: tests.test_wire_mode -*-
"""
Tests for L{p2pnet_tx.wire_mode}: one object per wire mode, looked up by name.
"""

from __future__ import annotations

import attrs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from p2pnet_tx.interfaces import ICodec
from p2pnet_tx.wire_mode import DOTNET, P2PNET, WIRE_MODES, WireMode, get_wire_mode


class WireModeTests(SynchronousTestCase):
    """Each mode says what differs around its bytes; names map to modes, and only known ones."""

    def test_lookup_by_name(self) -> None:
        """get_wire_mode returns the one instance of each mode, and a mode as is."""
        self.assertIs(get_wire_mode("p2pnet"), P2PNET)
        self.assertIs(get_wire_mode("dotnet"), DOTNET)
        self.assertIs(get_wire_mode(DOTNET), DOTNET)
        self.assertEqual(sorted(WIRE_MODES), ["dotnet", "p2pnet"])

    def test_unknown_name(self) -> None:
        """An unknown name is a ValueError naming it and the choices."""
        for bad in ("json", "", None, 3):
            with self.assertRaises(ValueError) as caught:
                get_wire_mode(bad)  # type: ignore[arg-type]
            self.assertIn(repr(bad), str(caught.exception))
            self.assertIn("dotnet, p2pnet", str(caught.exception))

    def test_differences(self) -> None:
        """p2pnet exchanges Identity packets; dotnet knows peers by their connection."""
        self.assertEqual(
            (P2PNET.exchanges_identity, P2PNET.peer_known_by_connection,
             P2PNET.sends_empty_peer_group), (True, False, True))
        self.assertEqual(
            (DOTNET.exchanges_identity, DOTNET.peer_known_by_connection,
             DOTNET.sends_empty_peer_group), (False, True, False))

    def test_codec(self) -> None:
        """A mode's codec is the wire format of its name."""
        for mode in (P2PNET, DOTNET):
            codec = mode.codec()
            self.assertTrue(verifyObject(ICodec, codec))
            self.assertEqual(codec.name, mode.name)

    def test_frozen(self) -> None:
        """Modes are values: they cannot be changed."""
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, P2PNET, "name", "x")
        self.assertEqual(WireMode("p2pnet", True, False, True), P2PNET)
