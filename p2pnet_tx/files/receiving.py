# -*- test-case-name: tests.test_files_transfers -*-
"""
L{IncomingTransfer}: the receiving side of one transfer, the I/O of the receiver machine
(L{p2pnet_tx.files.resume}).

Each chunk is checked against the manifest as it arrives: one outside the file or of the
wrong length is a protocol violation (the transfer fails and the sender is dropped), one whose
SHA-256 differs is dropped and asked for again (up to L{MAX_BAD_CHUNKS} per transfer).  Every
L{CHECKPOINT_CHUNKS} chunks the data is fsynced and the state saved, then acknowledged: a
restart loses at most that many chunks.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from p2pnet_tx.files.protocol import FileMessage, ProtocolError
from p2pnet_tx.files.resume import ReceiverCore, new_receiver
from p2pnet_tx.files.store import Partial
from p2pnet_tx.files.transfer import Transfer

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.files.transfers import FileTransfers

__all__ = ["CHECKPOINT_CHUNKS", "MAX_BAD_CHUNKS", "IncomingTransfer"]

CHECKPOINT_CHUNKS = 32
"""Chunks between two checkpoints (fsync, saved state, ack to the sender): 8 MiB."""

MAX_BAD_CHUNKS = 16
"""Chunks that fail their hash before a transfer fails."""


class IncomingTransfer:
    """
    One file being received from one peer.

    @param owner: the node's L{FileTransfers}.
    @param transfer: what the API shows.
    @param partial: the partial file (new, or loaded after a restart).
    @ivar channel: the sender's trusted channel, while there is one.
    @ivar wire_id: the sender's transfer id.
    @ivar bad_chunks: chunks that failed their hash.
    """

    log = Logger()

    def __init__(self, owner: FileTransfers, transfer: Transfer, partial: Partial) -> None:
        self.owner = owner
        self.transfer = transfer
        self.partial = partial
        self.wire_id = partial.transfer_id
        self.channel: PeerChannel | None = None
        self.bad_chunks = 0
        self._since_checkpoint = 0
        self.machine = new_receiver(ReceiverCore(self))

    @property
    def manifest(self):  # type: ignore[no-untyped-def]
        """The manifest offered."""
        return self.partial.manifest

    def _send(self, message: FileMessage) -> None:
        if self.channel is not None:
            self.owner.send_message(self.channel, message)

    # -- ReceiverActions ----------------------------------------------------------------------

    def show(self, state: str, reason: str | None) -> None:
        """Show the machine's state on the transfer."""
        self.transfer.show(state, reason)

    def send_accept(self) -> None:
        """Open the partial file and ask for the chunks still needed."""
        try:
            self.partial.open()
        except OSError as e:
            self.machine.fail(f"cannot write the partial file: {e.strerror}")
            return
        self.transfer.progress(self.partial.verified_bytes)
        need = tuple((start, end) for start, end in self.partial.missing())
        self._send(FileMessage("accept", self.wire_id, need=need))
        if not need:
            self.machine.all_verified()

    def store_chunk(self, index: int, data: memoryview) -> None:
        """Verify chunk C{index} and write it, or ask for it again."""
        manifest = self.partial.manifest
        if not 0 <= index < manifest.count or len(data) != manifest.chunk_length(index):
            self.owner.counters["chunks_invalid"] += 1
            error = ProtocolError(f"chunk {index} of {manifest.count} with {len(data)} bytes "
                                  f"is not a chunk of the file offered")
            self.machine.fail(str(error))
            self.owner.drop_peer(self.channel, error)
            return
        if self.partial.verified[index]:
            self.owner.counters["chunks_duplicate"] += 1
            return
        if hashlib.sha256(data).digest() != manifest.chunk_hashes[index]:
            self._bad_chunk(index)
            return
        try:
            self.partial.write_chunk(index, data)
        except OSError as e:
            self.machine.fail(f"cannot write the partial file: {e.strerror}")
            return
        self.owner.counters["chunks_received"] += 1
        self.transfer.progress(self.transfer.done + len(data))
        self._since_checkpoint += 1
        complete = self.partial.complete
        if self._since_checkpoint >= CHECKPOINT_CHUNKS or complete:
            self._checkpoint()
        if complete:
            self.machine.all_verified()

    def _bad_chunk(self, index: int) -> None:
        self.bad_chunks += 1
        self.owner.counters["chunks_bad_hash"] += 1
        if self.channel is not None:
            self.channel.log_peer(self.log, LogLevel.warn,
                                  "chunk {index} of {name} from {peer} failed its hash: "
                                  "asking for it again", index=index,
                                  name=self.transfer.name, peer=self.channel.peer)
        if self.bad_chunks >= MAX_BAD_CHUNKS:
            self.machine.fail(f"{self.bad_chunks} chunks failed their hash")
            return
        self._send(FileMessage("request", self.wire_id, need=((index, index + 1),)))

    def _checkpoint(self) -> None:
        try:
            self.partial.checkpoint()
        except OSError as e:
            self.machine.fail(f"cannot save the partial file: {e.strerror}")
            return
        self._since_checkpoint = 0
        self._send(FileMessage("ack", self.wire_id, done=self.partial.verified_bytes))

    def verify_file(self) -> None:
        """Hash the whole file (cooperatively), then tell the machine whether it matches."""
        self.transfer.show("receiving", "verifying")
        done = self.owner.cooperate(self.partial.hash_rest())
        done.addCallbacks(self._hashed, self._hash_failed)

    def _hashed(self, _: object) -> None:
        if self.partial.sha256() == self.partial.manifest.sha256:
            self.machine.verified()
        else:
            self.machine.mismatch("the file's SHA-256 does not match the manifest")

    def _hash_failed(self, failure: Failure) -> None:
        self.machine.fail(f"cannot read the partial file: {failure.getErrorMessage()}")

    def send_done(self) -> None:
        """Tell the sender the whole file verified."""
        self._send(FileMessage("done", self.wire_id, sha256=self.partial.manifest.sha256))

    def send_refuse(self, reason: str) -> None:
        """Refuse the offer, saying why."""
        self._send(FileMessage("refuse", self.wire_id, reason=reason))

    def send_cancel(self, reason: str) -> None:
        """Tell the sender the transfer is cancelled or failed."""
        self._send(FileMessage("cancel", self.wire_id, reason=reason))

    def pause(self) -> None:
        """Save the state and close the partial file, for a resume."""
        self.partial.close()

    def finished(self, state: str, reason: str | None) -> None:
        """Put a verified file into place, or delete the partial one; tell the observers."""
        if state == "done":
            try:
                self.transfer.path = str(self.partial.finish())
            except OSError as e:
                self.partial.discard()
                state, reason = "failed", f"cannot move the file into place: {e.strerror}"
            else:
                self.transfer.name = self.transfer.path.rsplit("/", 1)[-1]
        else:
            self.partial.discard()
        self.transfer.show(state, reason)
        self.owner.transfer_finished(self.transfer, "received" if state == "done" else state)
