"""
A small fake of L{p2pnet_tx.files.transfers.FileTransfers}, as the lead's spec
(prompts/files_api.md) gives its API, for the control API and C{p2pnet-ctl} tests: it checks
the path as the real one does and keeps transfers that a test moves along by hand.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import attrs

from p2pnet_tx._observer import Observers

FINISHED = frozenset({"done", "refused", "failed", "cancelled"})


@attrs.define(eq=False)
class FakeTransfer:
    """One transfer, with the fields and the C{changed} observers of the spec's C{Transfer}."""

    id: str
    direction: str
    peer: str
    name: str
    size: int
    sha256: str = "00" * 32
    done: int = 0
    state: str = "offered"
    reason: str | None = None
    started: float = 0.0
    finished: float | None = None
    path: str | None = None
    rate: float = 0.0
    changed: Observers = attrs.field(factory=lambda: Observers("transfer changed"))

    def to_json(self) -> dict[str, Any]:
        """Every field but C{changed}, as the real one gives them."""
        return {field.name: getattr(self, field.name)
                for field in attrs.fields(FakeTransfer) if field.name != "changed"}

    def move(self, **changes: Any) -> None:
        """Change some fields, then tell the observers, as a transfer does on progress."""
        for name, value in changes.items():
            setattr(self, name, value)
        self.changed.notify(self)


@attrs.frozen
class FakeTransferEvent:
    """The spec's C{TransferEvent}."""

    kind: str
    transfer: FakeTransfer


class FakeFileTransfers:
    """
    The spec's C{FileTransfers}: C{send_file} makes one outgoing transfer per recipient among
    C{trusted}; C{cancel} cancels an unfinished one.

    @ivar trusted: the identifiers of the trusted peers.
    @ivar sent: the C{(path, to)} of every C{send_file} call.
    """

    def __init__(self, trusted: list[str] | None = None, clock: Any = None) -> None:
        self.events = Observers("transfer event")
        self.trusted = list(trusted or [])
        self.sent: list[tuple[str, list[str] | None]] = []
        self._clock = clock
        self._transfers: list[FakeTransfer] = []
        self._next = 0

    def _now(self) -> float:
        return self._clock.seconds() if self._clock is not None else 0.0

    def add(self, **fields: Any) -> FakeTransfer:
        """Make a transfer (an incoming one, say) as if the node had started it."""
        self._next += 1
        fields.setdefault("id", f"{self._next:012x}")
        fields.setdefault("started", self._now())
        transfer = FakeTransfer(**fields)
        self._transfers.insert(0, transfer)
        return transfer

    def send_file(self, path: str, to: list[str] | None = None) -> list[FakeTransfer]:
        self.sent.append((path, to))
        mode = os.stat(path).st_mode  # FileNotFoundError, PermissionError
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{path} is a directory")
        if not stat.S_ISREG(mode):
            raise ValueError(f"{path} is not a regular file")
        if not self.trusted:
            raise ValueError("no trusted peer to send to")
        recipients = self.trusted if to is None else to
        for peer in recipients:
            if peer not in self.trusted:
                raise ValueError(f"{peer!r} is not a trusted peer")
        size = os.stat(path).st_size
        return [self.add(direction="send", peer=peer, name=os.path.basename(path), size=size,
                         path=path) for peer in recipients]

    def transfers(self) -> list[FakeTransfer]:
        return list(self._transfers)

    def get(self, transfer_id: str) -> FakeTransfer | None:
        for transfer in self._transfers:
            if transfer.id == transfer_id:
                return transfer
        return None

    def cancel(self, transfer_id: str) -> FakeTransfer:
        transfer = self.get(transfer_id)
        if transfer is None:
            raise KeyError(transfer_id)
        if transfer.state not in FINISHED:
            transfer.move(state="cancelled", reason="cancelled by the user",
                          finished=self._now())
            self.events.notify(FakeTransferEvent("cancelled", transfer))
        return transfer

    def finish(self, transfer: FakeTransfer, state: str = "done", kind: str | None = None,
               reason: str | None = None) -> None:
        """End a transfer and tell the event observers, as the real one does."""
        transfer.move(state=state, reason=reason, finished=self._now(),
                      done=transfer.size if state == "done" else transfer.done)
        if kind is None:
            kind = {"done": "sent" if transfer.direction == "send" else "received"}.get(
                state, state)
        self.events.notify(FakeTransferEvent(kind, transfer))
