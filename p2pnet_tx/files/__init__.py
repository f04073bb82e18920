"""
File transfer between trusted peers: verified, resumable, with progress (docs/files.md).

The API is L{p2pnet_tx.files.transfers.FileTransfers}; the other modules are its parts:
L{manifest}, L{names}, L{store}, L{protocol}, L{resume} (the state machines), L{sending},
L{receiving} and L{transfer}.
"""

from p2pnet_tx.files.transfer import Transfer, TransferEvent
from p2pnet_tx.files.transfers import FileTransfers, NotARegularFile

__all__ = ["FileTransfers", "NotARegularFile", "Transfer", "TransferEvent"]
