# -*- test-case-name: tests.test_policy -*-
"""
L{IncomingPeerTrustPolicy}: what a node lets untrusted peers do, and whom it refuses.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.interfaces import IReactorTime

from p2pnet_tx.errors import TrustPolicyConflict
from p2pnet_tx.peer import normalize_address

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from p2pnet_tx.channel import PeerChannel

DEFAULT_BLOCK_LIST_SIZE = 50_000
"""The most entries a block list holds; past it the oldest entry makes room."""


class IncomingPeerPlacement(enum.Enum):
    """Where a newly connected peer is announced: the inbound queue, the event, or both."""

    QUEUE_BASED = "queue"
    EVENT_BASED = "event"
    QUEUE_AND_EVENT_BASED = "queue_and_event"


def normalize_ip(key: str) -> str:
    """
    Return the one text form of an IP address, so that every spelling of an address is one
    block-list entry (C{::ffff:a.b.c.d} is C{a.b.c.d}); the same form L{GenericPeer} uses.

    @raise ValueError: if C{key} is not an IPv4 or IPv6 address.
    """
    return normalize_address(key)


class BlockList:
    """
    A bounded set of blocked keys (IP addresses or identifiers) with O(1) lookup.

    Holds at most C{max_entries}; adding one more forgets the oldest.  With a C{clock}, an entry
    added with a C{duration} (or the list's C{default_duration}) expires after that many seconds.

    @param normalize: maps a key to its canonical form (e.g. IPv6 addresses) or raises
        L{ValueError}.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_BLOCK_LIST_SIZE,
        clock: IReactorTime | None = None,
        default_duration: float | None = None,
        normalize: Callable[[str], str] = str,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if default_duration is not None and clock is None:
            raise ValueError("entries can only expire with a clock")
        self.max_entries = max_entries
        self.clock = clock
        self.default_duration = default_duration
        self._normalize = normalize
        self._entries: OrderedDict[str, float | None] = OrderedDict()

    @classmethod
    def of_ips(cls, *ips: str, **kwargs: Any) -> BlockList:
        """Return a block list of IP addresses, holding C{ips}."""
        blocked = cls(normalize=normalize_ip, **kwargs)
        for ip in ips:
            blocked.add(ip)
        return blocked

    def add(self, key: str, duration: float | None = None) -> None:
        """
        Block C{key}, for C{duration} seconds (or the default), or for good.

        @raise ValueError: if C{key} is not valid for this list, or a duration has no clock.
        """
        key = self._normalize(key)
        duration = self.default_duration if duration is None else duration
        if duration is not None and self.clock is None:
            raise ValueError("entries can only expire with a clock")
        expires = None if duration is None else self.clock.seconds() + duration  # type: ignore
        self._entries.pop(key, None)
        self._entries[key] = expires
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        """Unblock C{key}, if it was blocked."""
        try:
            self._entries.pop(self._normalize(key), None)
        except ValueError:
            pass

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            key = self._normalize(key)
        except ValueError:
            return False
        if key not in self._entries:
            return False
        expires = self._entries[key]
        if expires is not None and self.clock is not None and self.clock.seconds() >= expires:
            del self._entries[key]
            return False
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))


def _block_list_of_ips(value: object) -> BlockList:
    if isinstance(value, BlockList):
        return value
    return BlockList.of_ips(*value)  # type: ignore[misc]


def _block_list(value: object) -> BlockList:
    if isinstance(value, BlockList):
        return value
    blocked = BlockList()
    for key in value:  # type: ignore[attr-defined]
        blocked.add(key)
    return blocked


@attrs.frozen
class IncomingPeerTrustPolicy:
    """
    What untrusted peers may send, how peers become trusted, and who is refused outright.

    @ivar allow_default_communication: untrusted peers may send Message and Disconnect packets.
    @ivar allow_enhanced_packet_exchange: untrusted peers may also send Identity, PeerGroup and
        DataTransmit packets.
    @ivar run_default_trust_protocol: run the trust protocol on every new channel.
    @ivar incoming_peer_placement: where new inbound peers are announced.
    @ivar blocked_ips: addresses refused before a byte is read.
    @ivar blocked_identifiers: identifiers refused once a peer says who it is.
    @ivar default_trust_protocol: the trust protocol to run, or None for the network's default.

    @raise TrustPolicyConflict: for settings that contradict each other.
    """

    allow_default_communication: bool = True
    allow_enhanced_packet_exchange: bool = False
    run_default_trust_protocol: bool = True
    incoming_peer_placement: IncomingPeerPlacement = attrs.field(
        default=IncomingPeerPlacement.EVENT_BASED, converter=IncomingPeerPlacement
    )
    blocked_ips: BlockList = attrs.field(factory=BlockList.of_ips, converter=_block_list_of_ips)
    blocked_identifiers: BlockList = attrs.field(factory=BlockList, converter=_block_list)
    default_trust_protocol: Callable[[PeerChannel], Deferred[bool]] | None = None

    def __attrs_post_init__(self) -> None:
        if self.allow_enhanced_packet_exchange and not self.allow_default_communication:
            raise TrustPolicyConflict(
                "allow_enhanced_packet_exchange without allow_default_communication would let "
                "untrusted peers send data but not say hello or goodbye"
            )
        if self.default_trust_protocol is not None and not self.run_default_trust_protocol:
            raise TrustPolicyConflict(
                "a default_trust_protocol is set but run_default_trust_protocol is False, so it "
                "would never run"
            )

    def is_blocked_ip(self, ip: str) -> bool:
        """Whether connections from C{ip} are refused."""
        return ip in self.blocked_ips

    def is_blocked_identifier(self, identifier: str | None) -> bool:
        """Whether a peer calling itself C{identifier} is refused."""
        return identifier is not None and identifier in self.blocked_identifiers
