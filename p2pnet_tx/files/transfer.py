# -*- test-case-name: tests.test_files_transfers -*-
"""
L{Transfer} and L{TransferEvent}: what the API shows of one file transfer, and the events
that tell an application a file arrived, was sent, or did not make it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from p2pnet_tx._observer import Observers

__all__ = ["FINISHED_STATES", "STATES", "Transfer", "TransferEvent"]

STATES = ("offered", "sending", "receiving", "paused", "done", "refused", "failed", "cancelled")
"""Every state a transfer can show."""

FINISHED_STATES = frozenset({"done", "refused", "failed", "cancelled"})
"""The states a transfer never leaves."""

RATE_WINDOW = 5.0
"""The seconds over which L{Transfer.rate} is measured."""


@attrs.define(eq=False)
class Transfer:
    """
    One file transfer, to or from one peer.

    @ivar id: a short unique hex id (12 characters), this node's name for the transfer.
    @ivar direction: C{"send"} or C{"receive"}.
    @ivar peer: the other node's identifier.
    @ivar name: the file name (the safe name, on the receiving side).
    @ivar size: the file's size in bytes.
    @ivar sha256: the SHA-256 of the whole file, hex (empty while a file to send is hashed).
    @ivar done: bytes verified (receive) or acknowledged by the receiver (send).
    @ivar state: one of L{STATES}.
    @ivar reason: why the transfer is refused, failed, cancelled or paused.
    @ivar started: when it started, in reactor seconds.
    @ivar finished: when it ended, or None.
    @ivar path: where the finished file is (receive) or the source file (send).
    @ivar changed: observers called with C{(transfer)} on every progress or state change.
    """

    id: str
    direction: str
    peer: str
    name: str
    size: int
    sha256: str
    clock: IReactorTime = attrs.field(repr=False)
    done: int = 0
    state: str = "offered"
    reason: str | None = None
    started: float = 0.0
    finished: float | None = None
    path: str | None = None
    changed: Observers = attrs.field(factory=lambda: Observers("transfer changed"), repr=False)
    _samples: deque[tuple[float, int]] = attrs.field(factory=deque, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.started:
            self.started = self.clock.seconds()

    @property
    def is_finished(self) -> bool:
        """Whether the transfer has ended (done, refused, failed or cancelled)."""
        return self.state in FINISHED_STATES

    @property
    def rate(self) -> float:
        """Bytes per second over the last L{RATE_WINDOW} seconds (0 when idle or finished)."""
        if self.is_finished or len(self._samples) < 2:
            return 0.0
        now = self.clock.seconds()
        first_time, first_done = self._samples[0]
        if now - self._samples[-1][0] > RATE_WINDOW or now <= first_time:
            return 0.0
        return (self.done - first_done) / (now - first_time)

    def progress(self, done: int) -> None:
        """Set the bytes done (a sample for the rate) and tell the observers."""
        now = self.clock.seconds()
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()
        self.done = done
        self.changed.notify(self)

    def show(self, state: str, reason: str | None = None) -> None:
        """Set the state and its reason (the end time for a final state); tell the observers."""
        self.state = state
        self.reason = reason
        if self.is_finished and self.finished is None:
            self.finished = self.clock.seconds()
        if state == "paused":
            self._samples.clear()
        self.changed.notify(self)

    def to_json(self) -> dict[str, Any]:
        """The transfer as a JSON object: every field above, and C{rate} (bytes/s)."""
        return {
            "id": self.id,
            "direction": self.direction,
            "peer": self.peer,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "done": self.done,
            "state": self.state,
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
            "path": self.path,
            "rate": round(self.rate, 1),
        }


@attrs.frozen
class TransferEvent:
    """
    Something that happened to a transfer, for L{FileTransfers.events
    <p2pnet_tx.files.transfers.FileTransfers.events>}.

    @ivar kind: C{"offered"} (a peer offers a file), C{"received"} (a file arrived and
        verified), C{"sent"} (the peer verified a file sent), C{"refused"}, C{"failed"} or
        C{"cancelled"}.
    @ivar transfer: the transfer.
    """

    kind: str
    transfer: Transfer
