# -*- test-case-name: tests.test_files_node -*-
"""
The file part of a node as C{twistd p2pnet} builds it, with its control API routes
(L{p2pnet_tx.control_files}).

An embedding application does the same in four lines (docs/embedding.md)::

    distribution = Distribution(network)
    files = FileTransfers(network, distribution, FileStore(data_dir / "files"))
    node.add_part("files", files, files.status)
    serve_file_transfers(node, files)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from p2pnet_tx.control_files import serve_file_transfers
from p2pnet_tx.distribution import Distribution
from p2pnet_tx.files.manifest import MAX_FILE_SIZE
from p2pnet_tx.files.store import FileStore
from p2pnet_tx.files.transfers import FileTransfers

if TYPE_CHECKING:
    from p2pnet_tx.service import PeerNetworkService

__all__ = ["add_files_part", "parse_size"]

_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: object) -> int:
    """
    Read a size: a whole number of bytes, or with a suffix K, M, G or T (powers of 1024;
    C{KiB}/C{KB} alike).

    @raise ValueError: for anything else.
    """
    match = _SIZE.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 500M, 10G or a number of bytes)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def add_files_part(
    node: PeerNetworkService,
    root: Path | str,
    quota: int | None = None,
    max_file_size: int = MAX_FILE_SIZE,
    min_free: int = 256 * 1024**2,
) -> FileTransfers:
    """
    Give C{node} a distribution and a file part (named C{"files"}, its status in
    C{/api/status}), storing files in C{root}; its transfers are served on the control API
    and their events kept in the node's event log (L{serve_file_transfers}).

    @return: the file part; its C{distribution} is the network's L{Distribution}.
    """
    network = node.network
    distribution = Distribution(network)
    files = FileTransfers(network, distribution, FileStore(root, quota, min_free),
                          max_file_size=max_file_size)
    node.add_part("files", files, files.status)
    serve_file_transfers(node, files)
    return files
