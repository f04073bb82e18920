# -*- test-case-name: tests.test_files_node -*-
"""
The file part of a node as C{twistd p2pnet} builds it, and its control API routes.

An embedding application does the same in three lines (docs/embedding.md)::

    distribution = Distribution(network)
    files = FileTransfers(network, distribution, FileStore(data_dir / "files"))
    node.add_part("files", files, files.status)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2pnet_tx.control import BadRequest, ControlAPI
from p2pnet_tx.distribution import Distribution
from p2pnet_tx.files.manifest import MAX_FILE_SIZE
from p2pnet_tx.files.store import FileStore
from p2pnet_tx.files.transfers import FileTransfers

if TYPE_CHECKING:
    from twisted.web.server import Request

    from p2pnet_tx.service import PeerNetworkService

__all__ = ["add_file_routes", "add_files_part", "parse_size"]

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
    C{/api/status}), storing files in C{root}, and the control API's file routes.

    @return: the file part; its C{distribution} is the network's L{Distribution}.
    """
    network = node.network
    distribution = Distribution(network)
    files = FileTransfers(network, distribution, FileStore(root, quota, min_free),
                          max_file_size=max_file_size)
    node.add_part("files", files, files.status)
    if node.api is not None:
        add_file_routes(node.api, files)
    return files


def add_file_routes(api: ControlAPI, files: FileTransfers) -> None:
    """
    Serve C{POST /api/files} C{{"path": ..., "to": [ids] or null}}, C{GET /api/transfers}
    and C{DELETE /api/transfers/<id>} from C{files}.
    """

    def post_files(request: Request, argument: str | None) -> dict[str, Any]:
        body = api.body(request)
        path, to = body.get("path"), body.get("to")
        if type(path) is not str or not path:
            raise BadRequest(400, "'path' must be the path of a file on the node")
        if to is not None and (type(to) is not list or not all(type(i) is str for i in to)):
            raise BadRequest(400, "'to' must be a list of peer identifiers, or null for all")
        try:
            transfers = files.send_file(path, to)
        except (OSError, ValueError) as e:
            raise BadRequest(400, str(e)) from None
        return {"transfers": [t.to_json() for t in transfers]}

    def get_transfers(request: Request, argument: str | None) -> dict[str, Any]:
        return {"transfers": [t.to_json() for t in files.transfers()]}

    def delete_transfer(request: Request, argument: str | None) -> dict[str, Any]:
        try:
            return files.cancel(argument or "").to_json()
        except KeyError:
            raise BadRequest(404, f"no transfer {argument!r}") from None

    api.add_route(b"POST", "files", post_files)
    api.add_route(b"GET", "transfers", get_transfers)
    api.add_route(b"DELETE", "transfers", delete_transfer, argument=True)
