# -*- test-case-name: tests.test_control_files -*-
"""
The control API's file-transfer endpoints: offer a file to peers, list, watch and cancel
transfers.  A part of the API like any other, added with L{ControlAPI.add_route
<p2pnet_tx.control.ControlAPI.add_route>}::

    POST   /api/files               {"path": "/abs/file", "to": null | "ID" | ["ID", ...]}
    GET    /api/transfers           [?wait=S&version=V]
    GET    /api/transfers/<id>      [?wait=S&after=DONE&state=STATE]
    DELETE /api/transfers/<id>

The C{wait} forms are long polls, as C{GET /api/messages?wait=S} is: the request is held until
the transfer (or any transfer) changes, told by the transfers' own C{changed} observers, or
for S seconds; the node runs no timer but the one that ends the wait.

L{FileRoutes} also records the transfers' events in the node's L{EventLog} (C{GET
/api/events}) and feeds the C{p2pnet_transfer_*} families of C{/metrics}.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request

from p2pnet_tx._observer import Observers
from p2pnet_tx.control_events import query_int, query_text, query_wait
from p2pnet_tx.control_site import BadRequest
from p2pnet_tx.event_log import EventLog
from p2pnet_tx.file_check import regular_file
from p2pnet_tx.files.transfer import FINISHED_STATES
from p2pnet_tx.logtext import peer_text
from p2pnet_tx.metrics import TransferProgress

if TYPE_CHECKING:
    from p2pnet_tx.control import ControlAPI
    from p2pnet_tx.files.transfers import FileTransfers
    from p2pnet_tx.service import PeerNetworkService

__all__ = [
    "FINISHED_STATES",
    "MAX_PATH_LENGTH",
    "MAX_RECIPIENTS",
    "TRANSFER_ID",
    "FileRoutes",
    "serve_file_transfers",
    "transfers_version",
]

MAX_PATH_LENGTH = 4096
"""The longest path C{POST /api/files} takes, in characters (Linux's C{PATH_MAX})."""

MAX_RECIPIENTS = 1024
"""The most identifiers C{POST /api/files} takes in C{to} (a node keeps 64 peers by default)."""

MAX_IDENTIFIER_LENGTH = 256
"""The longest identifier C{to} may name (as for the identifiers peers claim)."""

TRANSFER_ID = re.compile(r"[0-9a-f]{1,64}")
"""What a transfer id looks like (the node makes 12 lowercase hex digits)."""

_DIRECTIONS = {"send": "out", "receive": "in"}


def transfers_version(transfers: Iterable[Any]) -> str:
    """
    A short fingerprint of the transfers' ids, states and progress: it changes whenever one of
    them does, so a long poll of the list can say which list its caller has.

    @param transfers: the transfers (C{id}, C{state}, C{done}).
    @return: 16 hex digits.
    """
    digest = hashlib.blake2b(digest_size=8)
    for transfer in transfers:
        digest.update(f"{transfer.id}:{transfer.state}:{transfer.done};".encode())
    return digest.hexdigest()


def _path_argument(value: object) -> str:
    """
    Check the C{path} of C{POST /api/files}: an absolute path to a regular file the node can
    see.  It is checked with C{stat} only (which never blocks on a FIFO or a device); the
    transfers' part opens the file and reports what it finds then.

    @raise BadRequest: 400 saying what is wrong with it.
    """
    if not isinstance(value, str) or not value:
        raise BadRequest(400, '"path" must be the absolute path of a file, as a string')
    if len(value) > MAX_PATH_LENGTH:
        raise BadRequest(400, f'"path" is over {MAX_PATH_LENGTH} characters')
    if "\x00" in value:
        raise BadRequest(400, '"path" holds a NUL character')
    if not os.path.isabs(value):
        raise BadRequest(400, f'"path" must be absolute (the node does not run in your '
                              f'directory): {peer_text(value)}')
    try:
        regular_file(value, show=peer_text)
    except OSError as e:
        raise BadRequest(400, str(e)) from None
    return value


def _recipients(value: object) -> list[str] | None:
    """
    Check the C{to} of C{POST /api/files}: missing or C{null} (every trusted peer), one
    identifier, or a list of them (duplicates dropped, order kept).

    @raise BadRequest: 400 saying what is wrong with it.
    """
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise BadRequest(400, '"to" must be an identifier, a list of them, or null (every '
                              'trusted peer)')
    if not names:
        raise BadRequest(400, '"to" is an empty list: name a peer, or leave "to" out to send '
                              'to every trusted peer')
    if len(names) > MAX_RECIPIENTS:
        raise BadRequest(400, f'"to" names over {MAX_RECIPIENTS} peers')
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_IDENTIFIER_LENGTH:
            raise BadRequest(400, f'each peer in "to" must be an identifier of 1 to '
                                  f"{MAX_IDENTIFIER_LENGTH} characters")
    return list(dict.fromkeys(names))


class _ChangeWait:
    """
    One long poll: fires with C{None} on the first notification of any of C{observers}, or
    after C{timeout} seconds, whichever is first; then it stops observing.  Cancelling it (the
    client went away) stops it too.
    """

    def __init__(self, clock: IReactorTime, observers: list[Observers], timeout: float) -> None:
        self._observers = observers
        self.deferred: Deferred[None] = Deferred(lambda _: self._stop())
        for observer in observers:
            observer.add(self._changed)
        self._timer: IDelayedCall | None = clock.callLater(timeout, self._changed)

    def _changed(self, *_: object) -> None:
        self._stop()
        if not self.deferred.called:
            self.deferred.callback(None)

    def _stop(self) -> None:
        for observer in self._observers:
            if self._changed in observer:
                observer.remove(self._changed)
        self._observers = []
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class FileRoutes:
    """
    The file-transfer endpoints of one control API, over one node's file transfers.

    @param transfers: the node's L{FileTransfers <p2pnet_tx.files.transfers.FileTransfers>}
        (or anything with its API: C{send_file}, C{transfers}, C{get}, C{cancel}, C{events}).
    @param api: the control API to serve them on; its C{/metrics} then shows the transfers.
    @param clock: times out the long polls.
    @param events: where the transfers' events are recorded for C{GET /api/events}, if
        anywhere.
    """

    log = Logger()

    def __init__(
        self,
        transfers: FileTransfers,
        api: ControlAPI,
        clock: IReactorTime,
        events: EventLog | None = None,
    ) -> None:
        self.transfers = transfers
        self._api = api
        self._clock = clock
        self._events = events
        self._listed = Observers("transfer list changed")
        self._waits: set[_ChangeWait] = set()
        api.add_route(b"POST", "files", self.post_files)
        api.add_route(b"GET", "transfers", self.get_transfers)
        api.add_route(b"GET", "transfers", self.get_transfer, argument=True)
        api.add_route(b"DELETE", "transfers", self.delete_transfer, argument=True)
        api.metrics.transfers = self.progress
        transfers.events.add(self._event)

    # -- Events and metrics -----------------------------------------------------------------------

    def _event(self, event: Any) -> None:
        """Record a transfer's event, and wake the long polls of the list."""
        transfer = event.transfer
        if self._events is not None:
            self._events.record(f"file.{event.kind}", transfer=transfer.to_json())
        self._listed.notify()

    def progress(self) -> list[TransferProgress]:
        """The transfers in progress, for the C{p2pnet_transfer_*} families of C{/metrics}."""
        return [
            TransferProgress(transfer.id, transfer.peer,
                             _DIRECTIONS.get(transfer.direction, transfer.direction),
                             transfer.done, transfer.size)
            for transfer in self.transfers.transfers()
            if transfer.state not in FINISHED_STATES
        ]

    # -- Endpoints --------------------------------------------------------------------------------

    def post_files(self, request: Request, _: None) -> dict[str, Any]:
        """
        C{POST /api/files} C{{"path", "to"}}: offer the file at C{path} (absolute, a regular
        file) to the trusted peer(s) C{to} names, or to every trusted peer.  Answers with the
        transfers started, one per recipient.  A bad path or C{to} is a 400; a recipient that
        is unknown or not trusted, or no trusted peer at all, a 409.
        """
        body = self._api.body(request)
        path = _path_argument(body.get("path"))
        to = _recipients(body.get("to"))
        try:
            started = self.transfers.send_file(path, to)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            raise BadRequest(400, str(e)) from None
        except ValueError as e:
            raise BadRequest(409, str(e)) from None
        except OSError as e:
            raise BadRequest(400, f"cannot send {peer_text(path)}: {e}") from None
        self.log.info("control API: offering {path} to {count} peer(s)",
                      path=peer_text(path), count=len(started))
        self._listed.notify()
        return {"transfers": [transfer.to_json() for transfer in started]}

    def get_transfers(
        self, request: Request, _: None
    ) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """
        C{GET /api/transfers[?wait=S&version=V]}: every transfer, newest first, and the
        C{version} of that list.  With C{wait} and the C{version} the caller has, a request
        for an unchanged list is held until a transfer changes (or one starts), or for S
        seconds: a long poll.
        """
        wait = query_wait(request)
        version = query_text(request, "version")
        listed = self._listing()
        if wait <= 0 or version is None or version != listed["version"]:
            return listed
        observers = [self._listed] + [
            transfer.changed for transfer in self.transfers.transfers()
            if transfer.state not in FINISHED_STATES
        ]
        return self._wait(observers, wait).addCallback(lambda _: self._listing())

    def _listing(self) -> dict[str, Any]:
        transfers = self.transfers.transfers()
        return {"transfers": [transfer.to_json() for transfer in transfers],
                "version": transfers_version(transfers)}

    def get_transfer(
        self, request: Request, transfer_id: str
    ) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """
        C{GET /api/transfers/<id>[?wait=S&after=DONE&state=STATE]}: one transfer.  With
        C{wait}, a request for a transfer that is still at C{after} bytes (and, if given, in
        C{state}) and not finished is held until it changes, or for S seconds: a long poll.
        """
        transfer = self._transfer(transfer_id)
        wait = query_wait(request)
        after = query_int(request, "after", -1)
        state = query_text(request, "state")
        if (wait <= 0 or transfer.state in FINISHED_STATES or transfer.done != after
                or (state is not None and state != transfer.state)):
            return transfer.to_json()
        return self._wait([transfer.changed], wait).addCallback(lambda _: transfer.to_json())

    def delete_transfer(self, request: Request, transfer_id: str) -> dict[str, Any]:
        """
        C{DELETE /api/transfers/<id>}: cancel a transfer (one that has finished is left as
        it is); answers with the transfer, and C{cancelled_now}: whether this request
        cancelled it.
        """
        ended = self._transfer(transfer_id).state in FINISHED_STATES
        try:
            transfer = self.transfers.cancel(transfer_id)
        except KeyError:
            raise BadRequest(404, f"no transfer {transfer_id}") from None
        if not ended:
            self.log.info("control API: transfer {id} cancelled ({state})",
                          id=transfer_id, state=transfer.state)
        return {**transfer.to_json(), "cancelled_now": not ended}

    # -- Plumbing ---------------------------------------------------------------------------------

    def _transfer(self, transfer_id: str) -> Any:
        if not TRANSFER_ID.fullmatch(transfer_id):
            raise BadRequest(400, f"{peer_text(transfer_id, limit=80)!r} is not a transfer id "
                                  f"(hex digits; see p2pnet-ctl transfers)")
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            raise BadRequest(404, f"no transfer {transfer_id} (see p2pnet-ctl transfers)")
        return transfer

    def _wait(self, observers: list[Observers], timeout: float) -> Deferred[None]:
        wait = _ChangeWait(self._clock, observers, timeout)
        self._waits.add(wait)
        return wait.deferred.addBoth(self._waited, wait)

    def _waited(self, result: Any, wait: _ChangeWait) -> Any:
        self._waits.discard(wait)
        return result

    @property
    def waiting(self) -> int:
        """How many long polls are held now."""
        return len(self._waits)


def serve_file_transfers(node: PeerNetworkService,
                         transfers: FileTransfers) -> FileRoutes | None:
    """
    Serve a node's file transfers on its control API, and record their events in the node's
    event log (C{GET /api/events}).

    @param node: the node.
    @param transfers: its C{FileTransfers}.
    @return: the routes, or C{None} if the node has no control API.
    """
    if node.api is None:
        return None
    return FileRoutes(transfers, node.api, node.reactor, node.events)
