# -*- test-case-name: tests.test_files_transfers -*-
"""
Files in the .NET form, for C{dotnet} mode: a whole file in one DataTransmit of DataType File,
as the reference's C{DistributionHandler.DistributeFileAsync} sends it, with no name, no hash,
no answer and no resume, within the mode's 64 MiB frame.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from p2pnet_tx.files.transfer import Transfer
from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket
from p2pnet_tx.wire_mode import DOTNET_FRAME_LIMIT

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.files.transfers import FileTransfers

__all__ = ["DOTNET_MAX_FILE", "receive_whole", "send_whole"]

DOTNET_MAX_FILE = (DOTNET_FRAME_LIMIT - 4096) * 3 // 4 - 16
"""The largest file in the .NET form: its base64, in JSON, within the 64 MiB frame."""


def send_whole(owner: FileTransfers, path: str, channel: PeerChannel) -> Transfer:
    """
    Send the file at C{path} to a .NET peer in one packet; the transfer is done once the
    packet is in the channel (.NET answers nothing).
    """
    with open(path, "rb") as file:
        data = file.read(DOTNET_MAX_FILE + 1)
    transfer = Transfer(owner.new_id(), "send", owner.peer_of(channel), os.path.basename(path),
                        len(data), hashlib.sha256(data).hexdigest(), owner.clock,
                        state="sending", path=path)
    owner.add(transfer)

    def sent(ok: bool) -> None:
        if ok:
            transfer.progress(transfer.size)
        transfer.show("done" if ok else "failed", None if ok else "peer disconnected")
        owner.transfer_finished(transfer, "sent" if ok else "failed")

    owner.distribution.send(channel, DataTransmissionPacket(
        data, DataPayloadFormat.FILE, source_origin_identifier=owner.network.identifier
    )).addCallback(sent)
    return transfer


def receive_whole(owner: FileTransfers, channel: PeerChannel,
                  packet: DataTransmissionPacket) -> Transfer:
    """
    Store a whole file a .NET peer sent, as C{dotnet-<16 hex of its SHA-256>.bin}, unless
    the node's refusals say no (a refusal is logged and counted: .NET cannot be told).
    """
    data, peer = packet.payload, owner.peer_of(channel)
    sha256 = hashlib.sha256(data).hexdigest()
    transfer = Transfer(owner.new_id(), "receive", peer, f"dotnet-{sha256[:16]}.bin",
                        len(data), sha256, owner.clock, state="receiving")
    owner.add(transfer)
    reason = owner.refusal(peer, len(data))
    if reason is None:
        temporary = owner.store.partial_dir / f"dotnet-{transfer.id}.part"
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            transfer.path = str(owner.store.place(temporary, transfer.name))
        except OSError as e:
            temporary.unlink(missing_ok=True)
            reason = f"cannot store the file: {e.strerror}"
    if reason is not None:
        transfer.show("refused", reason)
        owner.transfer_finished(transfer, "refused")
        return transfer
    transfer.name = os.path.basename(transfer.path or transfer.name)
    transfer.progress(len(data))
    transfer.show("done")
    owner.transfer_finished(transfer, "received")
    return transfer
