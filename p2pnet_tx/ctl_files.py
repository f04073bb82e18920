# -*- test-case-name: tests.test_ctl_files -*-
"""
The file-transfer commands of C{p2pnet-ctl}, and its event stream::

    p2pnet-ctl send-file PATH [--to ID]... [--detach]
    p2pnet-ctl transfers
    p2pnet-ctl cancel TRANSFER
    p2pnet-ctl events [--since N] [--follow]

C{send-file} offers the file through C{POST /api/files}, then follows its transfers by long
poll (C{GET /api/transfers/<id>?wait=...}, or C{GET /api/transfers?wait=...&version=...} for
several recipients) and draws their progress (L{p2pnet_tx.progress}) until they end; it exits
with status 1 unless every recipient got the file.  Interrupting it leaves the transfers to
the node (C{p2pnet-ctl cancel} stops one).  With C{--json} it draws nothing and prints the
transfers once they end; with C{--detach}, as soon as they start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet.task import deferLater

from p2pnet_tx.ctl_follow import FOLLOW_WAIT, add_follow_options, follow
from p2pnet_tx.file_check import regular_file
from p2pnet_tx.progress import FINISHED, TransferProgressView, ending, size

__all__ = [
    "COMMANDS",
    "PROGRESS_INTERVAL",
    "WATCH_WAIT",
    "NotAllSent",
    "add_commands",
    "follow_events",
    "format_answer",
    "request_for",
    "send_file",
]

COMMANDS = frozenset({"send-file", "transfers", "cancel", "events"})
"""The commands this module adds to C{p2pnet-ctl}."""

WATCH_WAIT = FOLLOW_WAIT
"""Seconds each long poll of C{send-file} and C{events --follow} asks the node to wait."""

PROGRESS_INTERVAL = 0.25
"""The least time between two requests of C{send-file} while its transfers move: the node
answers a long poll at once when a transfer has changed, which during a transfer is always."""


def add_commands(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """
    Add the commands of this module to C{p2pnet-ctl}'s parser.

    @param command: makes a subcommand from its name, summary and description.
    """
    send = command("send-file", "offer a file to trusted peers, showing its progress",
                   "Offer a file to every trusted peer, or to those --to names, and show how "
                   "far each transfer has come (rate and time left) until they end.  Exits "
                   "with status 1 unless every peer got the file.  Interrupting it leaves the "
                   "transfers to the node: 'p2pnet-ctl cancel' stops one.")
    send.add_argument("path", metavar="PATH", help="the file to send")
    send.add_argument("--to", action="append", metavar="ID",
                      help="a peer identifier; give it again for more peers (default: every "
                           "trusted peer)")
    send.add_argument("--detach", action="store_true",
                      help="print the transfers started and return at once")
    command("transfers", "list file transfers",
            "List the node's file transfers, newest first (the last 100 that ended are kept): "
            "id, direction, file, peer, progress and state.")
    cancel = command("cancel", "cancel a file transfer",
                     "Cancel a file transfer (one that has ended is left as it is).")
    cancel.add_argument("transfer", metavar="TRANSFER", help="a transfer id (see 'transfers')")
    events = command("events", "show what the node says happened (files received, sent...)",
                     "Show the node's recent events (the last 1000), one a line: files "
                     "offered, received, sent, refused, failed or cancelled.")
    add_follow_options(events, "keep printing events as they happen, until interrupted")


def _local_file(path: str, error: Callable[[str], Exception]) -> str:
    """
    The absolute path of C{path}, checked here first (the node runs as its own user, in its
    own directory, and checks it again) so that a mistake is told at once and plainly.
    """
    try:
        return regular_file(path)
    except OSError as e:
        raise error(str(e)) from None


def request_for(args: argparse.Namespace,
                error: Callable[[str], Exception]) -> tuple[str, str, Any]:
    """
    Return C{(method, path, json body or None)} for a command of this module.

    @param error: makes the exception that reports a bad argument (L{p2pnet_tx.ctl.CtlError}).
    """
    command = args.command
    if command == "send-file":
        return "POST", "/api/files", {"path": _local_file(args.path, error), "to": args.to}
    if command == "transfers":
        return "GET", "/api/transfers", None
    if command == "cancel":
        if not args.transfer or not all(c in "0123456789abcdefABCDEF" for c in args.transfer):
            raise error(f"{args.transfer!r} is not a transfer id (hex digits; see "
                        f"'p2pnet-ctl transfers')")
        return "DELETE", f"/api/transfers/{args.transfer.lower()}", None
    if command == "events":
        return "GET", f"/api/events?since={args.since}", None
    raise error(f"unknown command {command!r}")  # pragma: no cover - argparse refuses it


def transfer_line(transfer: dict[str, Any], escape: Callable[[object], str]) -> str:
    """One line of C{p2pnet-ctl transfers}."""
    receive = transfer.get("direction") == "receive"
    parts = [escape(transfer.get("id")), "receive" if receive else "send   ",
             escape(transfer.get("name")),
             ("from " if receive else "to ") + escape(transfer.get("peer"))]
    total, done = transfer.get("size"), transfer.get("done")
    state = transfer.get("state")
    if isinstance(total, int) and isinstance(done, int) and total > 0:
        parts.append(f"{100 * min(done, total) // total}% of {size(total)}")
    else:
        parts.append(size(total))
    if state not in FINISHED and isinstance(transfer.get("rate"), (int, float)):
        parts.append(f"{size(transfer['rate'])}/s")
    parts.append(escape(state))
    if transfer.get("reason") and state != "done":
        parts[-1] += f" ({escape(transfer['reason'])})"
    if receive and state == "done" and transfer.get("path"):
        parts.append(f"-> {escape(transfer['path'])}")
    return "  ".join(parts)


def event_line(event: dict[str, Any], escape: Callable[[object], str]) -> str:
    """One line of C{p2pnet-ctl events}: C{[7] file received: a.bin from peer-a (1.0 MiB)}."""
    kind = str(event.get("kind", "?"))
    head = f"[{escape(event.get('seq'))}] {escape(kind.replace('.', ' ', 1))}"
    transfer = event.get("transfer")
    if not isinstance(transfer, dict):
        return head
    receive = transfer.get("direction") == "receive"
    line = (f"{head}: {escape(transfer.get('name'))} "
            f"{'from' if receive else 'to'} {escape(transfer.get('peer'))} "
            f"({size(transfer.get('size'))}, transfer {escape(transfer.get('id'))})")
    if transfer.get("reason") and transfer.get("state") != "done":
        line += f": {escape(transfer['reason'])}"
    if receive and transfer.get("state") == "done" and transfer.get("path"):
        line += f" -> {escape(transfer['path'])}"
    return line


def format_answer(command: str, body: Any, escape: Callable[[object], str]) -> str:
    """The text a command of this module prints for the node's answer C{body}."""
    if command == "transfers":
        lines = [transfer_line(t, escape) for t in body.get("transfers", [])]
        return "\n".join(lines) if lines else "(no transfers)"
    if command == "cancel":
        what = ending(body, escape)
        if body.get("cancelled_now") is True:
            return f"cancelled {escape(body.get('id'))}: {what}"
        return f"{escape(body.get('id'))} had already ended: {what}"
    if command == "events":
        lines = [event_line(e, escape) for e in body.get("events", [])]
        return "\n".join(lines) if lines else "(no events)"
    if command == "send-file":
        return "\n".join(
            [f"transfer {escape(t.get('id'))}: {ending(t, escape)}"
             for t in body.get("transfers", [])]
        ) or "(no transfers)"
    return json.dumps(body, indent=2, sort_keys=True)


def _watch_path(transfers: list[dict[str, Any]], version: str | None) -> str:
    if len(transfers) == 1:
        [transfer] = transfers
        query = urlencode({"wait": WATCH_WAIT, "after": transfer.get("done", 0),
                           "state": transfer.get("state", "")})
        return f"/api/transfers/{quote(str(transfer.get('id')), safe='')}?{query}"
    query = {"wait": WATCH_WAIT} | ({"version": version} if version is not None else {})
    return f"/api/transfers?{urlencode(query)}"


def _merge(mine: list[dict[str, Any]], answer: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Our transfers, as the node's answer (one transfer, or the list) has them now."""
    if "transfers" not in answer:
        return [answer], None
    latest = {t.get("id"): t for t in answer["transfers"]}
    merged = []
    for transfer in mine:
        now = latest.get(transfer.get("id"))
        if now is None and transfer.get("state") not in FINISHED:
            now = {**transfer, "state": "failed", "reason": "the node no longer lists it"}
        merged.append(now if now is not None else transfer)
    return merged, answer.get("version")


class NotAllSent(Exception):
    """C{send-file} ended with some transfer not done: the message says which."""


def _unfinished(transfers: list[dict[str, Any]]) -> bool:
    return any(t.get("state") not in FINISHED for t in transfers)


async def send_file(client: Any, reactor: Any, args: argparse.Namespace, body: Any, out: Any,
                    escape: Callable[[object], str]) -> int:
    """
    Offer a file, then follow its transfers until they end.

    @param client: calls the control API (C{call(method, path, body)}).
    @param reactor: paces the requests (L{PROGRESS_INTERVAL}) and is told of an interruption.
    @param args: the parsed command line.
    @param body: the body of C{POST /api/files}.
    @param out: where to print.
    @param escape: makes peer text safe to print.
    @return: 0 once every transfer is done.
    @raise NotAllSent: when some transfer ended otherwise (its line is printed).
    """
    answer = await client.call("POST", "/api/files", body)
    transfers: list[dict[str, Any]] = list(answer.get("transfers", []))
    if args.detach:
        print(json.dumps(answer, indent=2, sort_keys=True) if args.json
              else format_answer("send-file", answer, escape), file=out)
        return 0
    view = None if args.json else TransferProgressView(
        out, escape, tty=_isatty(out), width=shutil.get_terminal_size().columns)
    following = _Following(out, view, " ".join(escape(t.get("id")) for t in transfers))
    reactor.addSystemEventTrigger("before", "shutdown", following.interrupted)
    version = None
    try:
        while _unfinished(transfers):
            if view is not None:
                view.show(transfers)
            asked = reactor.seconds()
            transfers, version = _merge(
                transfers, await client.call("GET", _watch_path(transfers, version)))
            rest = PROGRESS_INTERVAL - (reactor.seconds() - asked)
            if rest > 0 and _unfinished(transfers):
                await deferLater(reactor, rest)
        if view is not None:
            view.show(transfers)
    finally:
        following.over()
    if args.json:
        print(json.dumps({"transfers": transfers}, indent=2, sort_keys=True), file=out)
    failed = [t for t in transfers if t.get("state") != "done"]
    if failed:
        raise NotAllSent(
            f"{len(failed)} of {len(transfers)} transfer(s) did not complete: "
            + "; ".join(ending(t, escape) for t in failed)
        )
    return 0


class _Following:
    """
    What C{send-file} does if the reactor stops (Ctrl-C) while it follows its transfers: end
    the bar's line and say, on standard error (so that C{--json} output stays JSON), that the
    node goes on with them.

    @ivar following: whether C{send-file} is still following them.
    """

    def __init__(self, out: Any, view: TransferProgressView | None, ids: str) -> None:
        self._out = out
        self._view = view
        self._ids = ids
        self.following = True

    def over(self) -> None:
        """C{send-file} stopped following (the transfers ended, or it failed)."""
        if self._view is not None:
            self._view.close()
        self.following = False

    def interrupted(self) -> None:
        """The reactor is stopping: if still following, say so."""
        if not self.following:
            return
        self.over()
        self._out.flush()
        print(f"p2pnet-ctl: interrupted: the node goes on with the transfer(s); 'p2pnet-ctl "
              f"cancel ID' stops one ({self._ids})", file=sys.stderr)


def _isatty(out: Any) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


async def follow_events(client: Any, since: int, as_json: bool, out: Any,
                        escape: Callable[[object], str]) -> int:
    """Print events as they happen, by long poll, until interrupted or the node goes."""
    return await follow(client, "events", since, as_json, out,
                        lambda event: event_line(event, escape))
