"""
Tests for L{p2pnet_tx.pins}: trust-on-first-use name pins.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnet_tx.errors import TrustRefused
from p2pnet_tx.pins import NamePins, PinMismatch, PinsCorrupt


def test_first_use_pins_the_name() -> None:
    changes: list[None] = []
    pins = NamePins(changed=lambda: changes.append(None))
    assert pins.check("alice", "bciqa") is True
    assert pins.get("alice") == "bciqa"
    assert len(changes) == 1


def test_same_key_again_is_accepted_without_change() -> None:
    changes: list[None] = []
    pins = NamePins({"alice": "bciqa"}, changed=lambda: changes.append(None))
    assert pins.check("alice", "bciqa") is False
    assert changes == []


def test_new_key_under_a_pinned_name_is_refused_with_both_identifiers() -> None:
    pins = NamePins({"alice": "bciqa"})
    with pytest.raises(PinMismatch) as caught:
        pins.check("alice", "bciqb")
    error = caught.value
    assert isinstance(error, TrustRefused)
    assert (error.name, error.pinned, error.shown) == ("alice", "bciqa", "bciqb")
    assert "bciqa" in str(error) and "bciqb" in str(error) and "remove the pin" in str(error)
    assert pins.get("alice") == "bciqa"


def test_unpin_lets_the_next_key_pin_the_name() -> None:
    pins = NamePins({"alice": "bciqa"})
    assert pins.unpin("alice") is True
    assert pins.unpin("alice") is False
    assert pins.check("alice", "bciqb") is True


def test_full_pins_do_not_grow() -> None:
    pins = NamePins({"a": "1", "b": "2"}, max_pins=2)
    assert pins.check("c", "3") is False
    assert pins.get("c") is None and len(pins) == 2


def test_json_round_trip() -> None:
    raw = NamePins({"bob": "2", "alice": "1"}).to_json()
    assert raw.index(b"alice") < raw.index(b"bob")
    again = NamePins.from_json(raw)
    assert {name: again.get(name) for name in again} == {"alice": "1", "bob": "2"}


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"a": 1}', b'"x"', b"null", b"\xff"])
def test_corrupt_pins_are_an_error_not_an_empty_set(raw: bytes) -> None:
    with pytest.raises(PinsCorrupt):
        NamePins.from_json(raw)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_pins_or_pins_corrupt(raw: bytes) -> None:
    try:
        pins = NamePins.from_json(raw)
    except PinsCorrupt:
        return
    for name in pins:
        assert isinstance(pins.get(name), str)
