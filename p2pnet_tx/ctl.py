# -*- test-case-name: tests.test_ctl -*-
"""
C{p2pnet-ctl}: drive a running node through its control API::

    p2pnet-ctl status
    p2pnet-ctl peers
    p2pnet-ctl connect 127.0.0.1:8052
    p2pnet-ctl send [--to IDENTIFIER] hello
    p2pnet-ctl messages [--since N]
    p2pnet-ctl block 10.0.0.7
    p2pnet-ctl block --identifier IDENTIFIER

The node is found through its data directory (C{--data-dir}, default C{~/.p2pnet}), which holds
the control token and the URL the control API listens on.

Text that came from a peer (messages, identifiers, addresses) is printed through L{escape}: no
escape sequence, carriage return or newline of a peer's reaches the terminal, so a peer can
neither drive the terminal nor forge a line.  JSON output is JSON-escaped (ASCII only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.error import ConnectError, ConnectionRefusedError, TimeoutError
from twisted.internet.task import react
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported

from p2pnet_tx.datadir import DEFAULT_DATA_DIR, DataDirError, NodeDataDir

REQUEST_TIMEOUT = 30.0

_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)
"""Backslash, C0 and C1 controls and DEL, line and paragraph separators, bidirectional
controls and lone surrogates."""


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: object) -> str:
    """
    Return C{str(text)} safe to print on a terminal: every control character (ESC, CR, LF,
    C1 controls...), line or paragraph separator, bidirectional control and lone surrogate is
    shown as a Python-style escape (C{\\x1b}, C{\\u202e}), and a backslash as two, so that the
    output is unambiguous.

    @param text: text from a peer (or any value).
    @return: the escaped text, on one line.
    """
    return _UNSAFE.sub(_escaped, str(text))


class CtlError(Exception):
    """A failure to report to the user in one line, with exit status 1."""


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser of C{p2pnet-ctl}."""
    top = argparse.ArgumentParser(prog="p2pnet-ctl", description="Drive a running p2pnet node.")
    top.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                     help="the node's data directory (default: %(default)s)")
    top.add_argument("--url", help="the control API URL (default: read from the data directory)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", help="show the node's identity, counts and counters")
    commands.add_parser("peers", help="list connected and known peers")
    connect = commands.add_parser("connect", help="connect to a peer")
    connect.add_argument("address", metavar="HOST:PORT")
    send = commands.add_parser("send", help="send a text message to trusted peers")
    send.add_argument("--to", default="*", help="a peer identifier (default: every trusted peer)")
    send.add_argument("text", nargs="+")
    messages = commands.add_parser("messages", help="show recent messages received")
    messages.add_argument("--since", type=int, default=0, help="only those numbered above N")
    block = commands.add_parser("block", help="block an IP address or an identifier")
    block.add_argument("ip", nargs="?")
    block.add_argument("--identifier")
    remove = commands.add_parser("remove", help="disconnect and forget a peer")
    remove.add_argument("identifier")
    return top


def _request_for(args: argparse.Namespace) -> tuple[str, str, Any]:
    """Return C{(method, path, json body or None)} for a parsed command line."""
    command = args.command
    if command == "status":
        return "GET", "/api/status", None
    if command == "peers":
        return "GET", "/api/peers", None
    if command == "connect":
        host, sep, port = args.address.rpartition(":")
        if not sep or not port.isdigit():
            raise CtlError(f"{args.address!r} is not HOST:PORT")
        return "POST", "/api/peers", {"host": host.strip("[]"), "port": int(port)}
    if command == "send":
        return "POST", "/api/messages", {"to": args.to, "message": " ".join(args.text)}
    if command == "messages":
        return "GET", f"/api/messages?since={args.since}", None
    if command == "block":
        if (args.ip is None) == (args.identifier is None):
            raise CtlError("block needs an IP address or --identifier, not both")
        body = {"ip": args.ip} if args.ip else {"identifier": args.identifier}
        return "POST", "/api/block", body
    if command == "remove":
        return "DELETE", f"/api/peers/{args.identifier}", None
    raise CtlError(f"unknown command {command!r}")  # pragma: no cover - argparse refuses it


def _format(command: str, body: Any) -> str:
    if command == "messages":
        # Only a sender the node said it trusted is shown without the mark.
        lines = [
            f"[{escape(m['seq'])}] {escape(m['from'])}"
            f"{'' if m.get('trusted') is True else ' (untrusted)'}: {escape(m['message'])}"
            for m in body["messages"]
        ]
        return "\n".join(lines) if lines else "(no messages)"
    if command == "send":
        return f"sent to {body['sent']} peer(s)"
    return json.dumps(body, indent=2, sort_keys=True)


async def run(reactor: Any, args: argparse.Namespace, out: Any = None) -> int:
    """Perform one command against the node; print its result; return the exit status."""
    import treq

    out = sys.stdout if out is None else out
    data_dir = NodeDataDir(args.data_dir)
    method, path, body = _request_for(args)
    try:
        token = data_dir.read_control_token()
        # Without the URL the node wrote, do not guess: the token must not go to whatever
        # else listens on a default port.
        url = args.url or data_dir.control_url()
    except DataDirError as e:
        raise CtlError(str(e)) from None
    if token is None:
        raise CtlError(f"no control token in {data_dir.path}: is a node using that data dir?")
    if url is None:
        raise CtlError(f"no control URL in {data_dir.path}: is the node running (or give --url)?")
    headers = {b"Authorization": [b"Bearer " + token.encode()]}
    try:
        response = await treq.request(
            method, url.rstrip("/") + path, json=body, headers=headers,
            timeout=REQUEST_TIMEOUT, reactor=reactor,
        )
        raw = await response.content()
    except (ConnectionRefusedError, ConnectError, TimeoutError, CancelledError) as e:
        raise CtlError(f"no node is answering at {url} ({e.__class__.__name__}); is it running?")
    except (ResponseFailed, ResponseNeverReceived) as e:
        raise CtlError(f"the connection to {url} failed before an answer ({e.__class__.__name__})")
    except SchemeNotSupported as e:
        raise CtlError(f"cannot use the URL {url!r}: {e}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise CtlError(f"{url} did not answer with JSON (HTTP {response.code})") from None
    if response.code >= 400:
        error = answer.get("error", answer) if isinstance(answer, dict) else answer
        raise CtlError(f"the node refused: {escape(error)} (HTTP {response.code})")
    print(_format(args.command, answer), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """The C{p2pnet-ctl} console script."""
    args = parser().parse_args(argv)

    def start(reactor: Any) -> Deferred[int]:
        def report(failure: Any) -> int:
            if failure.check(CtlError):
                print(f"p2pnet-ctl: {escape(failure.value)}", file=sys.stderr)
                return 1
            if failure.check(BrokenPipeError):
                # The reader went away (| head): say nothing more on the closed pipe.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 1
            return failure  # type: ignore[no-any-return]

        return ensureDeferred(run(reactor, args)).addErrback(report)

    react(_exit_with_status(start))


def _exit_with_status(start: Any) -> Any:
    def wrapped(reactor: Any) -> Deferred[None]:
        def done(status: int) -> None:
            if status:
                raise SystemExit(status)

        return start(reactor).addCallback(done)

    return wrapped


if __name__ == "__main__":  # pragma: no cover
    main()
