# -*- test-case-name: tests.test_pins -*-
"""
L{NamePins}: trust-on-first-use pinning of display names to identities.

A peer's identity is its key (its identifier is derived from it); the display name it announces
is only a claim.  An application that needs names (a chat that shows "alice") can pin them: the
first key seen under a name is remembered, and a later peer announcing that name with another
key is refused with L{PinMismatch}, until the pin is removed on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

from p2pnet_tx.errors import TrustRefused

MAX_PINS = 10_000
"""The most names pinned; past it, new names are not pinned (and a warning says so)."""


class PinMismatch(TrustRefused):
    """
    A peer announced a pinned name with a key other than the one pinned for it.

    @ivar name: the name.
    @ivar pinned: the identifier pinned for it.
    @ivar shown: the identifier of the peer that announced it now.
    """

    def __init__(self, name: str, pinned: str, shown: str) -> None:
        super().__init__(
            f"the name {name!r} is pinned to {pinned}, but this peer's key is {shown}: "
            f"refused.  If {name!r} really has a new key, remove the pin and reconnect."
        )
        self.name = name
        self.pinned = pinned
        self.shown = shown


class PinsCorrupt(ValueError):
    """Saved pins that cannot be read; the message says why."""


class NamePins:
    """
    Display name -> identifier pins, first use wins.

    @param pins: pins to start with.
    @param changed: called with no argument after every change, to save the pins.
    @param max_pins: the most names pinned.

    @ivar changed: the same, settable once the pins are loaded.
    """

    def __init__(
        self,
        pins: Mapping[str, str] | None = None,
        changed: Callable[[], object] | None = None,
        max_pins: int = MAX_PINS,
    ) -> None:
        self._pins: dict[str, str] = dict(pins or {})
        self.changed = changed
        self.max_pins = max_pins

    def __len__(self) -> int:
        return len(self._pins)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pins)

    def get(self, name: str) -> str | None:
        """The identifier pinned for C{name}, or None."""
        return self._pins.get(name)

    def check(self, name: str, identifier: str) -> bool:
        """
        Accept C{identifier} under C{name}, pinning it if the name is new.

        @return: True if the name was pinned now, False if it already was (to this identifier)
            or could not be (the pins are full).
        @raise PinMismatch: if the name is pinned to another identifier.
        """
        pinned = self._pins.get(name)
        if pinned is not None:
            if pinned != identifier:
                raise PinMismatch(name, pinned, identifier)
            return False
        if len(self._pins) >= self.max_pins:
            return False
        self._pins[name] = identifier
        self._notify()
        return True

    def unpin(self, name: str) -> bool:
        """Forget the pin of C{name}; return whether there was one."""
        if self._pins.pop(name, None) is None:
            return False
        self._notify()
        return True

    def _notify(self) -> None:
        if self.changed is not None:
            self.changed()

    def to_json(self) -> bytes:
        """The pins as a JSON object, name -> identifier, sorted by name."""
        return json.dumps(dict(sorted(self._pins.items())), indent=1).encode()

    @classmethod
    def from_json(
        cls, raw: bytes, changed: Callable[[], object] | None = None
    ) -> NamePins:
        """
        Read pins written by L{to_json}.

        @raise PinsCorrupt: if C{raw} is not a JSON object of strings; pins are security
            state, so a damaged file is an error, never silently emptied.
        """
        try:
            saved = json.loads(raw)
        except ValueError as e:
            raise PinsCorrupt(f"not valid JSON: {e}") from None
        if not isinstance(saved, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in saved.items()
        ):
            raise PinsCorrupt("not a JSON object of name -> identifier strings")
        return cls(saved, changed)
