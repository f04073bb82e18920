# -*- test-case-name: tests.test_files_transfers -*-
"""
L{FileTransfers}: the file part of a node, and its Python API (docs/files.md).

It is the L{Distribution <p2pnet_tx.distribution.Distribution>}'s handler of File data: it
reads the file-transfer messages (L{p2pnet_tx.files.protocol}), runs one L{OutgoingTransfer}
or L{IncomingTransfer} per transfer, and keeps what the API shows (L{Transfer}).  It follows
the network's trusted peers: a peer that goes pauses its transfers, and when it is trusted
again every unfinished file to it is offered again, so a transfer resumes; transfers kept on
disk by an earlier run (L{FileStore}) are loaded when the service starts.

In C{dotnet} mode a peer speaks the .NET form: a whole file in one DataTransmit of DataType
File, with no name, no hash and no answer, within that mode's 64 MiB frame.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Cooperator
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from p2pnet_tx._observer import Observers
from p2pnet_tx.file_check import NotARegularFile, regular_file
from p2pnet_tx.files.dotnet import DOTNET_MAX_FILE, receive_whole, send_whole
from p2pnet_tx.files.manifest import MAX_FILE_SIZE, Manifest, ManifestHasher
from p2pnet_tx.files.names import safe_name
from p2pnet_tx.files.protocol import (
    BadOffer,
    Chunk,
    FileMessage,
    ProtocolError,
    encode_message,
    new_transfer_id,
    parse,
)
from p2pnet_tx.files.receiving import IncomingTransfer
from p2pnet_tx.files.sending import OutgoingTransfer
from p2pnet_tx.files.store import FileStore, OutgoingRecord
from p2pnet_tx.files.transfer import Transfer, TransferEvent
from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.distribution import Distribution
    from p2pnet_tx.network import PeerNetwork

__all__ = ["DOTNET_MAX_FILE", "FileTransfers", "NotARegularFile", "Transfer", "TransferEvent",
           "regular_file"]

KEEP_FINISHED = 100
"""Finished transfers kept for L{FileTransfers.transfers}."""


class FileTransfers(Service):
    """
    The node's file transfers; one per network, a service of the node.

    @param network: the node's network.
    @param distribution: the network's distribution (File data is routed here).
    @param store: where files go (C{<data-dir>/files}).
    @param max_file_size: the largest file accepted from a peer.
    @param accept_from: C{fn(identifier) -> bool}, whether to accept files from that peer;
        None: from every trusted peer.
    @param max_incoming: the most files received at once (each peer: a quarter of it).
    @param cooperate: runs an iterator a step at a time, returning a Deferred that fires
        when it is exhausted (default: a Twisted C{Cooperator} on the network's reactor).
    @param random_bytes: the source of transfer ids.
    @ivar events: observers called with a L{TransferEvent}.
    @ivar counters: what happened, by name (C{chunks_sent}, C{chunks_bad_hash}...).
    """

    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        distribution: Distribution,
        store: FileStore,
        max_file_size: int = MAX_FILE_SIZE,
        accept_from: Callable[[str], bool] | None = None,
        max_incoming: int = 16,
        cooperate: Callable[[Iterator[Any]], Deferred[Any]] | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.network = network
        self.clock = network.reactor
        self.distribution = distribution
        self.store = store
        self.max_file_size = max_file_size
        self.accept_from = accept_from
        self.max_incoming = max_incoming
        self._random = random_bytes
        self._cooperator: Cooperator | None = None
        self.cooperate = cooperate or self._cooperate
        self.events = Observers("file transfer event")
        self.counters: Counter[str] = Counter()
        self._outgoing: dict[str, OutgoingTransfer] = {}
        self._incoming: dict[tuple[str, str], IncomingTransfer] = {}
        self._transfers: OrderedDict[str, Transfer] = OrderedDict()
        # Files received lately, by (sender, its id): a sender that missed our "done" (it
        # restarted, or the connection dropped) and offers again is told, not served twice.
        self._completed: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._loaded = False
        distribution.set_handler(DataPayloadFormat.FILE, self.data_received)
        network.peer_trusted.add(self._peer_trusted)
        network.peer_removed.add(self._peer_removed)

    # -- The API ------------------------------------------------------------------------------

    def send_file(self, path: str, to: list[str] | None = None) -> list[Transfer]:
        """
        Offer the file to each trusted peer named (identifiers) or, with None, to every
        trusted peer; one outgoing L{Transfer} per recipient.  The file is hashed first (its
        transfers show C{offered} with an empty C{sha256} meanwhile), then offered.

        @raise FileNotFoundError: no such file.
        @raise IsADirectoryError: C{path} is a directory.
        @raise NotARegularFile: C{path} is a FIFO, a device or a socket (refused before it is
            opened: opening one could block the reactor).
        @raise PermissionError: the file cannot be read.
        @raise ValueError: an unknown or untrusted recipient, no trusted peer at all, or a
            file too large to send.
        """
        path = regular_file(os.path.expanduser(path))
        channels = recipients(self.network.trusted_peer_channels, to)
        hasher = ManifestHasher(path)  # PermissionError, naming the path, if unreadable
        if hasher.size > self.max_file_size:
            hasher.close()
            raise ValueError(f"{path} has {hasher.size} bytes; at most {self.max_file_size} "
                             f"can be sent")
        dotnet = [c for c in channels if c.codec.name == "dotnet"]
        if dotnet and hasher.size > DOTNET_MAX_FILE:
            hasher.close()
            raise ValueError(f"{path} has {hasher.size} bytes: a .NET peer takes at most "
                             f"{DOTNET_MAX_FILE} in one packet")
        transfers = [send_whole(self, path, channel) for channel in dotnet]
        outgoing = []
        for channel in channels:
            if channel in dotnet:
                continue
            transfer = Transfer(self.new_id(), "send", self.peer_of(channel), hasher.name,
                                hasher.size, "", self.clock, path=path)
            sender = self._outgoing[transfer.id] = OutgoingTransfer(self, transfer)
            self.add(transfer)
            outgoing.append(sender)
            transfers.append(transfer)
        if outgoing:
            self.cooperate(iter(hasher)).addCallbacks(
                lambda _: self._hashed(outgoing, hasher.manifest),
                lambda failure: self._hash_failed(outgoing, failure))
        else:
            hasher.close()
        return transfers

    def transfers(self) -> list[Transfer]:
        """Every transfer, newest first (the last L{KEEP_FINISHED} finished ones kept)."""
        return list(reversed(self._transfers.values()))

    def get(self, transfer_id: str) -> Transfer | None:
        """The transfer of this id, or None."""
        return self._transfers.get(transfer_id)

    def cancel(self, transfer_id: str) -> Transfer:
        """
        Cancel a transfer, telling the peer; a finished one is left as it is.

        @raise KeyError: for an unknown id.
        """
        transfer = self._transfers[transfer_id]
        if transfer.is_finished:
            return transfer
        engine = self._engine(transfer)
        if engine is not None:
            engine.machine.cancel("cancelled by the user")
        return transfer

    def status(self) -> dict[str, Any]:
        """The counters and the number of live transfers, as JSON (for C{GET /api/status})."""
        return {"active": len(self._outgoing) + len(self._incoming),
                "counters": dict(self.counters)}

    # -- The service --------------------------------------------------------------------------

    def startService(self) -> None:
        """Load the transfers an earlier run left unfinished."""
        super().startService()
        self.load()

    def stopService(self) -> None:
        """Save every receiving file's state and close every file; the transfers pause."""
        super().stopService()
        for incoming in list(self._incoming.values()):
            incoming.partial.close()
        for outgoing in list(self._outgoing.values()):
            outgoing.close()
        if self._cooperator is not None:
            self._cooperator.stop()
            self._cooperator = None

    def load(self) -> None:
        """Load the unfinished transfers saved by an earlier run (once)."""
        if self._loaded:
            return
        self._loaded = True
        self.store.ensure()
        for partial in self.store.load_partials():
            manifest = partial.manifest
            transfer = Transfer(self.new_id(), "receive", partial.peer, safe_name(manifest.name),
                                manifest.size, manifest.sha256, self.clock,
                                done=partial.verified_bytes, state="paused",
                                reason="waiting for the sender")
            self._incoming[(partial.peer, partial.transfer_id)] = IncomingTransfer(
                self, transfer, partial)
            self.add(transfer)
        for record in self.store.load_outgoing():
            transfer = Transfer(record.transfer_id, "send", record.peer, record.manifest.name,
                                record.manifest.size, record.manifest.sha256, self.clock,
                                path=record.path)
            sender = self._outgoing[record.transfer_id] = OutgoingTransfer(self, transfer)
            self.add(transfer)
            self._ready(sender, record.manifest)
        for channel in self.network.trusted_peer_channels:
            self._peer_trusted(channel)

    # -- Helpers of the engines ---------------------------------------------------------------

    def send_message(self, channel: PeerChannel | None, message: FileMessage) -> None:
        """Send a control message to C{channel}, behind what waits for it."""
        if channel is None:
            return
        packet = DataTransmissionPacket(encode_message(message), DataPayloadFormat.FILE,
                                        source_origin_identifier=self.network.identifier)
        self.distribution.send(channel, packet)

    def drop_peer(self, channel: PeerChannel | None, error: Exception) -> None:
        """Drop a peer that broke the file protocol, and discourage its address."""
        if channel is None or channel.is_closed:
            return
        self.log.warn("dropping {peer}: {error}", peer=channel.peer, error=str(error))
        self.network.peer_misbehaved(channel, error)
        channel.abort(f"misbehaving: {error}")

    def transfer_finished(self, transfer: Transfer, kind: str) -> None:
        """A transfer ended: forget its engine, trim the list, tell the observers."""
        if transfer.direction == "send":
            self._outgoing.pop(transfer.id, None)
        else:
            for key, incoming in list(self._incoming.items()):
                if incoming.transfer is transfer:
                    del self._incoming[key]
                    if kind == "received":
                        self._completed[key] = transfer.sha256
                        while len(self._completed) > 1000:
                            self._completed.popitem(last=False)
        self.counters["transfers_" + kind] += 1
        self.log.info("{direction} {name} ({size} bytes) {peer_word} {peer}: {kind}{why}",
                      direction=transfer.direction, name=transfer.name, size=transfer.size,
                      peer_word="to" if transfer.direction == "send" else "from",
                      peer=transfer.peer, kind=kind,
                      why=f" ({transfer.reason})" if transfer.reason else "")
        self._trim()
        self.events.notify(TransferEvent(kind, transfer))

    # -- Receiving messages -------------------------------------------------------------------

    def data_received(self, channel: PeerChannel, packet: DataTransmissionPacket) -> None:
        """The distribution's File handler: one message or chunk of the file protocol."""
        if channel.codec.name == "dotnet":
            receive_whole(self, channel, packet)
            return
        peer = self.peer_of(channel)
        try:
            item = parse(packet.payload)
        except BadOffer as e:
            self.counters["offers_invalid"] += 1
            channel.log_peer(self.log, LogLevel.warn, "refused a file offer from {peer}: "
                             "{why}", peer=channel.peer, why=str(e))
            self.send_message(channel, FileMessage("refuse", e.transfer_id, reason=str(e)))
            return
        except ProtocolError as e:
            self.counters["messages_invalid"] += 1
            self.drop_peer(channel, e)
            return
        if type(item) is Chunk:
            incoming = self._incoming.get((peer, item.transfer_id))
            if incoming is None:
                self.counters["chunks_unknown"] += 1
                return
            incoming.channel = channel
            incoming.machine.chunk(item.index, item.data)
            return
        assert isinstance(item, FileMessage)
        if item.op == "offer":
            self._offer(channel, peer, item)
            return
        if item.op == "cancel":
            incoming = self._incoming.get((peer, item.transfer_id))
            if incoming is not None:
                incoming.machine.peer_cancelled(f"cancelled by the sender: {item.reason}")
                return
        outgoing = self._outgoing.get(item.transfer_id)
        if outgoing is None or outgoing.transfer.peer != peer:
            self.counters["messages_unknown"] += 1
            return
        outgoing.received(item)

    def _offer(self, channel: PeerChannel, peer: str, message: FileMessage) -> None:
        manifest = message.manifest
        assert manifest is not None
        incoming = self._incoming.get((peer, message.transfer_id))
        if incoming is not None:
            if incoming.manifest != manifest:
                self.send_message(channel, FileMessage(
                    "refuse", message.transfer_id, reason="another file under the same id"))
                return
            incoming.channel = channel
            incoming.machine.offered()
            return
        if self._completed.get((peer, message.transfer_id)) == manifest.sha256:
            self.send_message(channel, FileMessage("done", message.transfer_id,
                                                   sha256=manifest.sha256))
            return
        reason = self.refusal(peer, manifest.size)
        transfer = Transfer(self.new_id(), "receive", peer, safe_name(manifest.name),
                            manifest.size, manifest.sha256, self.clock)
        incoming = IncomingTransfer(self, transfer, self.store.partial(
            peer, message.transfer_id, manifest))
        incoming.channel = channel
        self.add(transfer)
        if reason is not None:
            incoming.machine.refuse(reason)
            return
        self._incoming[(peer, message.transfer_id)] = incoming
        self.events.notify(TransferEvent("offered", transfer))
        incoming.machine.offered()

    def refusal(self, peer: str, size: int) -> str | None:
        """Why a file of C{size} bytes from C{peer} is refused now, or None."""
        if self.accept_from is not None and not self.accept_from(peer):
            return "this node accepts no files from you"
        if size > self.max_file_size:
            return f"too large: {size} bytes offered, at most {self.max_file_size} accepted"
        from_peer = sum(1 for (who, _) in self._incoming if who == peer)
        if len(self._incoming) >= self.max_incoming or from_peer >= max(
                1, self.max_incoming // 4):
            return "too many files being received at once: offer it again later"
        try:
            self.store.ensure()
        except OSError as e:
            return f"cannot store files: {e.strerror}"
        # What the files being received have yet to write counts as taken on the disk.
        pending = sum(i.partial.manifest.size - i.partial.verified_bytes
                      for i in self._incoming.values())
        return self.store.refusal(size, pending)

    # -- Peers coming and going ---------------------------------------------------------------

    def _peer_trusted(self, channel: PeerChannel) -> None:
        peer = self.peer_of(channel)
        for outgoing in list(self._outgoing.values()):
            if outgoing.transfer.peer == peer:
                outgoing.channel = channel
                outgoing.machine.connected()
        for (who, _), incoming in self._incoming.items():
            if who == peer:
                incoming.channel = channel

    def _peer_removed(self, channel: PeerChannel) -> None:
        for outgoing in list(self._outgoing.values()):
            if outgoing.channel is channel:
                outgoing.channel = None
                outgoing.machine.disconnected("peer disconnected")
        for incoming in list(self._incoming.values()):
            if incoming.channel is channel:
                incoming.channel = None
                incoming.machine.disconnected("peer disconnected")

    # -- Sending ------------------------------------------------------------------------------

    def _hashed(self, outgoing: list[OutgoingTransfer], manifest: Manifest | None) -> None:
        assert manifest is not None
        for sender in outgoing:
            sender.transfer.sha256 = manifest.sha256
            try:
                self.store.ensure()
                self.store.save_outgoing(OutgoingRecord(
                    sender.transfer.id, sender.transfer.peer, sender.transfer.path or "",
                    manifest))
            except OSError as e:
                self.log.warn("cannot save the transfer of {name} for a restart: {why}",
                              name=manifest.name, why=e.strerror)
            self._ready(sender, manifest)

    def _ready(self, sender: OutgoingTransfer, manifest: Manifest) -> None:
        sender.manifest = manifest
        for channel in self.network.trusted_peer_channels:
            if self.peer_of(channel) == sender.transfer.peer:
                sender.channel = channel
                sender.machine.hashed_while_connected()
                return
        sender.machine.hashed()

    def _hash_failed(self, outgoing: list[OutgoingTransfer], failure: Failure) -> None:
        for sender in outgoing:
            sender.machine.fail(f"cannot read the file: {failure.getErrorMessage()}")

    # -- Small helpers ------------------------------------------------------------------------

    @staticmethod
    def peer_of(channel: PeerChannel) -> str:
        """The identifier of a channel's peer."""
        return channel.peer.identifier if channel.peer is not None else ""

    def new_id(self) -> str:
        """A transfer id no transfer of this node has."""
        while True:
            transfer_id = new_transfer_id(self._random(6))
            if transfer_id not in self._transfers and transfer_id not in self._outgoing:
                return transfer_id

    def add(self, transfer: Transfer) -> None:
        """Show a transfer in L{transfers}."""
        self._transfers[transfer.id] = transfer
        self._trim()

    def _trim(self) -> None:
        finished = [t for t in self._transfers.values() if t.is_finished]
        for transfer in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._transfers[transfer.id]

    def _engine(self, transfer: Transfer) -> OutgoingTransfer | IncomingTransfer | None:
        if transfer.direction == "send":
            return self._outgoing.get(transfer.id)
        for incoming in self._incoming.values():
            if incoming.transfer is transfer:
                return incoming
        return None

    def _cooperate(self, iterator: Iterator[Any]) -> Deferred[Any]:
        if self._cooperator is None:
            clock = self.clock
            self._cooperator = Cooperator(scheduler=lambda step: clock.callLater(0, step))
        return self._cooperator.cooperate(iterator).whenDone()


def recipients(
    trusted_channels: list[PeerChannel], to: list[str] | str | None
) -> list[PeerChannel]:
    """
    The channels a file goes to: every trusted peer's (C{to} is None), or those of the
    identifiers C{to} names, each once.

    @raise ValueError: if there is nobody to send to, or C{to} names a peer that is not
        connected and trusted.
    """
    trusted = {FileTransfers.peer_of(c): c for c in trusted_channels}
    if to is None:
        if not trusted:
            raise ValueError("no trusted peer to send the file to")
        return list(trusted.values())
    if isinstance(to, str):
        to = [to]
    if not to:
        raise ValueError("no recipient named")
    unknown = [peer for peer in to if peer not in trusted]
    if unknown:
        raise ValueError(f"not a connected, trusted peer: {', '.join(unknown)}")
    return [trusted[peer] for peer in dict.fromkeys(to)]
