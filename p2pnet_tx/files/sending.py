# -*- test-case-name: tests.test_files_transfers -*-
"""
L{OutgoingTransfer}: the sending side of one transfer, the I/O of the sender machine
(L{p2pnet_tx.files.resume}).

Chunks are read from the file and sent one at a time, each once the channel takes writes
again (C{channel.drain()}): the channel never queues more than a chunk or two for a transfer,
whatever the file's size, and other traffic interleaves.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from p2pnet_tx.files.manifest import Manifest
from p2pnet_tx.files.protocol import FileMessage, chunk_packet
from p2pnet_tx.files.resume import SenderCore, new_sender
from p2pnet_tx.files.transfer import Transfer

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.files.transfers import FileTransfers

__all__ = ["OutgoingTransfer"]

CHUNKS_PER_TURN = 8
"""The most chunks sent in one reactor turn to a transport that never pushes back."""


class OutgoingTransfer:
    """
    One file being sent to one peer.

    @param owner: the node's L{FileTransfers}.
    @param transfer: what the API shows.
    @ivar manifest: the file's manifest, once hashed.
    @ivar channel: the peer's trusted channel, while there is one.
    @ivar sent_bytes: chunk bytes sent so far (resends and resumes included).
    """

    log = Logger()

    def __init__(self, owner: FileTransfers, transfer: Transfer) -> None:
        self.owner = owner
        self.transfer = transfer
        self.manifest: Manifest | None = None
        self.channel: PeerChannel | None = None
        self.sent_bytes = 0
        self._fd: int | None = None
        self._ranges: deque[list[int]] = deque()
        self._generation = 0
        self._pumping = False
        self.machine = new_sender(SenderCore(self))

    # -- SenderActions ------------------------------------------------------------------------

    def show(self, state: str, reason: str | None) -> None:
        """Show the machine's state on the transfer."""
        self.transfer.show(state, reason)

    def send_offer(self) -> None:
        """Offer the file to the peer's channel."""
        assert self.manifest is not None
        self.owner.send_message(
            self.channel, FileMessage("offer", self.transfer.id, manifest=self.manifest)
        )

    def start_sending(self, need: tuple[tuple[int, int], ...]) -> None:
        """Send the chunks of C{need}, in place of what was still to send."""
        self._ranges = deque()
        self.add_chunks(need)

    def add_chunks(self, need: tuple[tuple[int, int], ...]) -> None:
        """Send the chunks of C{need} too (those past the file's end are ignored)."""
        assert self.manifest is not None
        count = self.manifest.count
        for start, end in need:
            if start < count:
                self._ranges.append([start, min(end, count)])
        if not self._pumping:
            self._pump(self._generation)

    def stop_sending(self) -> None:
        """Send no more chunks (a pending wait for the channel is ignored when it fires)."""
        self._generation += 1
        self._ranges.clear()
        self._pumping = False

    def send_cancel(self, reason: str) -> None:
        """Tell the peer the transfer is cancelled, if its channel is open."""
        if self.channel is not None:
            self.owner.send_message(
                self.channel, FileMessage("cancel", self.transfer.id, reason=reason)
            )

    def finished(self, state: str, reason: str | None) -> None:
        """Close the file, forget the saved record, show the end and tell the observers."""
        self.close()
        self.owner.store.forget_outgoing(self.transfer.id)
        if state == "done":
            self.transfer.progress(self.transfer.size)
        self.transfer.show(state, reason)
        self.owner.transfer_finished(self.transfer, "sent" if state == "done" else state)

    # -- Messages from the receiver -----------------------------------------------------------

    def received(self, message: FileMessage) -> None:
        """A message from the receiver about this transfer."""
        machine = self.machine
        if message.op == "accept":
            machine.accepted(message.need)
        elif message.op == "request":
            machine.requested(message.need)
        elif message.op == "refuse":
            machine.refused(message.reason or "refused")
        elif message.op == "ack":
            self.transfer.progress(min(message.done, self.transfer.size))
        elif message.op == "done":
            if self.manifest is not None and message.sha256 == self.manifest.sha256:
                machine.completed()
            else:
                machine.fail("the receiver reported another SHA-256")
        elif message.op == "cancel":
            machine.peer_cancelled(f"cancelled by the receiver: {message.reason}")

    # -- The pump -----------------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            assert self.transfer.path is not None
            # Non-blocking, then checked: a path swapped for a FIFO since the transfer began
            # (a restart in between) must not block the reactor.
            fd = os.open(self.transfer.path, os.O_RDONLY | os.O_NONBLOCK)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, "not a regular file any more")
            self._fd = fd
        return self._fd

    def close(self) -> None:
        """Close the file."""
        self.stop_sending()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _next_index(self) -> int:
        first = self._ranges[0]
        index = first[0]
        first[0] += 1
        if first[0] >= first[1]:
            self._ranges.popleft()
        return index

    def _pump(self, generation: int) -> None:
        if generation != self._generation:
            return
        channel, manifest = self.channel, self.manifest
        assert manifest is not None
        self._pumping = True
        sent = 0
        while self._ranges and channel is not None:
            ready: Deferred[Any] = channel.drain()
            if not ready.called:
                ready.addCallbacks(lambda _: self._pump(generation), lambda _: None)
                return
            if sent >= CHUNKS_PER_TURN:
                self.owner.clock.callLater(0, self._pump, generation)
                return
            index = self._next_index()
            length = manifest.chunk_length(index)
            try:
                data = os.pread(self._open(), length, index * manifest.chunk_size)
            except OSError as e:
                self._pumping = False
                self.machine.fail(f"cannot read {self.transfer.path}: {e.strerror}")
                return
            if len(data) != length:
                self._pumping = False
                self.machine.fail(f"{self.transfer.path} changed while it was sent")
                return
            channel.send(chunk_packet(self.transfer.id, index, data))
            self.sent_bytes += length
            self.owner.counters["chunks_sent"] += 1
            self.owner.counters["chunk_bytes_sent"] += length
            sent += 1
        self._pumping = False
