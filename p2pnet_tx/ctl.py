# -*- test-case-name: tests.test_ctl -*-
"""
C{p2pnet-ctl}: drive a running node through its control API::

    p2pnet-ctl status
    p2pnet-ctl peers
    p2pnet-ctl connect localhost:8052
    p2pnet-ctl send [--to IDENTIFIER] hello
    p2pnet-ctl messages [--since N] [--follow]
    p2pnet-ctl block 10.0.0.7 | block --identifier IDENTIFIER
    p2pnet-ctl unblock 10.0.0.7 | unblock --identifier IDENTIFIER
    p2pnet-ctl blocks
    p2pnet-ctl remove IDENTIFIER
    p2pnet-ctl send-file PATH [--to IDENTIFIER]... [--detach]
    p2pnet-ctl transfers
    p2pnet-ctl cancel TRANSFER
    p2pnet-ctl events [--since N] [--follow]

The node is found through its data directory (C{--data-dir}, default C{~/.p2pnet}), which holds
the control token and the URL the control API listens on.

Every command prints text for people, or with C{--json} the control API's JSON answer (one
object per line for C{messages --follow}): see docs/twistd.md for the schema.  A command that
fails, or a C{send} that reached no peer, exits with status 1 and one line on stderr.

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

from p2pnet_tx import ctl_files, ctl_status
from p2pnet_tx._version import __version__
from p2pnet_tx.ctl_follow import FOLLOW_WAIT, add_follow_options, follow  # noqa: F401
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


class NothingSent(CtlError):
    """A C{send} that reached no peer: its answer is printed, then the status is 1."""


def _add_json(command: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not overwrite a --json given before it.
    command.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the control API's JSON answer instead of text")


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser of C{p2pnet-ctl}."""
    top = argparse.ArgumentParser(
        prog="p2pnet-ctl", description="Drive a running p2pnet node through its control API.",
        epilog="Run 'p2pnet-ctl COMMAND --help' for the options of a command.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    top.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                     help="the node's data directory (default: %(default)s)")
    top.add_argument("--url", help="the control API URL (default: read from the data directory)")
    top.add_argument("--json", action="store_true", default=False,
                     help="print the control API's JSON answer instead of text")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description)
        _add_json(sub)
        return sub

    command("status", "show the node's identity, version, uptime, addresses and counts",
            "Show the node's identifier and display name, version, uptime, trust mode and "
            "transport, listen and control addresses, peer counts and packet counters, "
            "and a few lines for each part the node runs: LAN discovery, bootstrap servers, "
            "file transfers.")
    command("peers", "list connected and known peers",
            "List the connected peers (identifier, name, address, trust, direction) and the "
            "known peers the node remembers.")
    connect = command("connect", "connect to a peer",
                      "Connect to a peer, by IP address or host name, and wait until the peer "
                      "is accepted.  A --peer the node stopped redialling after 'remove' is "
                      "kept connected again.")
    connect.add_argument("address", metavar="HOST:PORT",
                         help="e.g. 127.0.0.1:8052, localhost:8052 or [::1]:8052")
    send = command("send", "send a text message to trusted peers",
                   "Send a text message to every trusted peer, or to one.  Exits with status "
                   "1 when no peer took it.")
    send.add_argument("--to", default="*", help="a peer identifier (default: every trusted peer)")
    send.add_argument("text", nargs="+", help="the message (words are joined by spaces)")
    messages = command("messages", "show messages received",
                       "Show the recent messages the node received (the last 1000), one a "
                       "line: [number] sender: text, with (untrusted) after a sender the node "
                       "did not trust.")
    add_follow_options(messages, "keep printing messages as they arrive, until interrupted")
    for name, verb, what in (("block", "block", ("Refuse an IP address (at accept, before a "
                              "byte is read) or an identifier, drop the peers it matches, and "
                              "save the block list.")),
                             ("unblock", "lift the block on", ("Lift a block and save the "
                              "block list."))):
        sub = command(name, f"{verb} an IP address or an identifier", what)
        sub.add_argument("ip", nargs="?", metavar="IP", help="an IP address")
        sub.add_argument("--identifier", help="a peer identifier")
    command("blocks", "list the blocked IP addresses and identifiers",
            "List the blocked IP addresses and identifiers, oldest first.")
    remove = command("remove", "disconnect and forget a peer",
                     "Disconnect a peer and forget it.  If the node keeps it connected "
                     "(--peer), it is not redialled until 'connect' names it again.")
    remove.add_argument("identifier", help="the peer's identifier (see 'peers')")
    ctl_files.add_commands(command)
    return top


def _block_body(args: argparse.Namespace) -> dict[str, str]:
    command = args.command
    if args.ip is None and args.identifier is None:
        raise CtlError(f"{command} needs an IP address (p2pnet-ctl {command} 10.0.0.7) or an "
                       f"identifier (p2pnet-ctl {command} --identifier ID)")
    if args.ip is not None and args.identifier is not None:
        raise CtlError(f"{command} takes an IP address or --identifier, not both")
    return {"ip": args.ip} if args.ip is not None else {"identifier": args.identifier}


def _request_for(args: argparse.Namespace) -> tuple[str, str, Any]:
    """Return C{(method, path, json body or None)} for a parsed command line."""
    command = args.command
    if command in ctl_files.COMMANDS:
        return ctl_files.request_for(args, CtlError)
    if command == "status":
        return "GET", "/api/status", None
    if command == "peers":
        return "GET", "/api/peers", None
    if command == "connect":
        host, sep, port = args.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise CtlError(f"{args.address!r} is not HOST:PORT (e.g. 127.0.0.1:8052, "
                           f"localhost:8052 or [::1]:8052)")
        return "POST", "/api/peers", {"host": host.strip("[]"), "port": int(port)}
    if command == "send":
        return "POST", "/api/messages", {"to": args.to, "message": " ".join(args.text)}
    if command == "messages":
        return "GET", f"/api/messages?since={args.since}", None
    if command == "block":
        return "POST", "/api/block", _block_body(args)
    if command == "unblock":
        return "POST", "/api/unblock", _block_body(args)
    if command == "blocks":
        return "GET", "/api/blocks", None
    if command == "remove":
        return "DELETE", f"/api/peers/{args.identifier}", None
    raise CtlError(f"unknown command {command!r}")  # pragma: no cover - argparse refuses it


def _json_text(body: Any) -> str:
    """The JSON of an answer as C{--json} prints it: ASCII, keys sorted."""
    return json.dumps(body, indent=2, sort_keys=True)


def _message_line(message: dict[str, Any]) -> str:
    # Only a sender the node said it trusted is shown without the mark.
    return (f"[{escape(message['seq'])}] {escape(message['from'])}"
            f"{'' if message.get('trusted') is True else ' (untrusted)'}: "
            f"{escape(message['message'])}")


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _format_status(body: dict[str, Any]) -> str:
    counts = body.get("counts", {})
    counters = body.get("counters", {})
    name = body.get("display_name")
    packets_in = sum(v for k, v in counters.items() if k.startswith("packets_in."))
    packets_out = sum(v for k, v in counters.items() if k.startswith("packets_out."))
    rows = [
        ("node", escape(body.get("identifier")) + (f" ({escape(name)})" if name else "")),
        ("version", f"{escape(body.get('version', '?'))}, up {_duration(body.get('uptime'))}"),
        ("trust", (f"{escape(body.get('trust', '?'))} over "
                   f"{escape(body.get('transport', '?'))} ({escape(body.get('wire', '?'))} wire)")),
        ("listen", (f"{escape(body.get('listen') or '?')} (port "
                    f"{escape(body.get('listening_port'))})")),
        ("control", escape(body.get("control_url") or "?")),
        ("peers", (f"{counts.get('active', 0)} connected, {counts.get('trusted', 0)} trusted, "
                   f"{counts.get('pending', 0)} in handshake, {counts.get('known', 0)} known")),
        ("packets", (f"{packets_in} in, {packets_out} out; {counters.get('refused', 0)} "
                     f"refused, {counters.get('malformed', 0)} malformed")),
    ]
    rows += ctl_status.part_rows(body, escape)
    lines = [f"{label:<8} {value}" for label, value in rows]
    return "\n".join(lines + [_peer_line(peer) for peer in body.get("peers", [])])


def _peer_line(peer: dict[str, Any]) -> str:
    address = escape(peer.get("address"))
    where = f"[{address}]" if ":" in address else address
    parts = [escape(peer.get("identifier") or "(no identifier)")]
    if peer.get("display_name"):
        parts.append(f"({escape(peer['display_name'])})")
    parts.append(f"{where}:{escape(peer.get('port'))}")
    if "trusted" in peer:
        parts.append("trusted" if peer["trusted"] is True else "untrusted")
    if "direction" in peer:
        parts.append(escape(peer["direction"]))
    # Filled in by nodes that measure them (round-trip time from keepalives, last packet).
    if isinstance(peer.get("rtt"), (int, float)):
        millis = peer["rtt"] * 1000
        parts.append(f"rtt {millis:.0f} ms" if millis >= 10 else f"rtt {millis:.2g} ms")
    if isinstance(peer.get("seen_seconds_ago"), (int, float)):
        parts.append(f"last seen {_duration(peer['seen_seconds_ago'])} ago")
    return "  " + " ".join(parts)


def _format_peers(body: dict[str, Any]) -> str:
    connected = body.get("connected", [])
    known = body.get("known", [])
    lines = [f"connected ({len(connected)}):"] + [_peer_line(p) for p in connected]
    lines += [f"known ({len(known)}):"] + [_peer_line(p) for p in known]
    return "\n".join(lines)


def _format(command: str, body: Any) -> str:
    """The text C{command} prints for the node's answer C{body}; peer text is escaped."""
    if command in ctl_files.COMMANDS:
        return ctl_files.format_answer(command, body, escape)
    if command == "messages":
        lines = [_message_line(m) for m in body["messages"]]
        return "\n".join(lines) if lines else "(no messages)"
    if command == "send":
        return f"sent to {body['sent']} peer(s)"
    if command == "status":
        return _format_status(body)
    if command == "peers":
        return _format_peers(body)
    if command == "connect":
        trusted = "trusted" if body.get("trusted") is True else "not trusted yet"
        peer = {k: v for k, v in body.items() if k not in ("trusted", "direction")}
        return (f"connected to {_peer_line(peer).strip()} ({trusted}, "
                f"{escape(body.get('direction'))})")
    if command == "block":
        return f"blocked {escape(body['blocked'])}; dropped {body['dropped']} connection(s)"
    if command == "unblock":
        what = escape(body["unblocked"])
        return f"unblocked {what}" if body.get("was_blocked") else f"{what} was not blocked"
    if command == "blocks":
        lines = [f"ip {escape(ip)}" for ip in body.get("ips", [])]
        lines += [f"identifier {escape(i)}" for i in body.get("identifiers", [])]
        return "\n".join(lines) if lines else "(no blocks)"
    if command == "remove":
        line = f"removed {escape(body['removed'])} ({escape(body.get('reason'))})"
        if body.get("held"):
            line += "; it is no longer redialled until 'p2pnet-ctl connect' names it"
        return line
    return _json_text(body)


def _refusal(code: int, error: Any, url: str) -> str:
    text = escape(error)
    if code == 401:
        return (f"the node at {url} refused the token (HTTP 401): is --data-dir the data "
                f"directory of the node at that URL?")
    if code in (409, 502):
        return text
    if code >= 500:
        return f"the node failed: {text} (HTTP {code})"
    return f"the node refused the request: {text} (HTTP {code})"


class _Client:
    """Calls the control API of one node, with its token."""

    def __init__(self, reactor: Any, url: str, token: str, http: Any = None) -> None:
        if http is None:
            import treq as http
        self._http = http
        self._reactor = reactor
        self.url = url
        self._headers = {b"Authorization": [b"Bearer " + token.encode()]}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        url = self.url
        try:
            response = await self._http.request(
                method, url.rstrip("/") + path, json=body, headers=self._headers,
                timeout=REQUEST_TIMEOUT, reactor=self._reactor,
            )
            raw = await response.content()
        except (ConnectionRefusedError, ConnectError, TimeoutError, CancelledError) as e:
            raise CtlError(
                f"no node is answering at {url} ({e.__class__.__name__}); is it running?"
            ) from None
        except (ResponseFailed, ResponseNeverReceived) as e:
            raise CtlError(
                f"the connection to {url} failed before an answer ({e.__class__.__name__})"
            ) from None
        except SchemeNotSupported as e:
            raise CtlError(f"cannot use the URL {url!r}: {e}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise CtlError(f"{url} did not answer with JSON (HTTP {response.code})") from None
        if response.code >= 400:
            error = answer.get("error", answer) if isinstance(answer, dict) else answer
            raise CtlError(_refusal(response.code, error, url))
        return answer


def _client(reactor: Any, args: argparse.Namespace, http: Any = None) -> _Client:
    data_dir = NodeDataDir(args.data_dir)
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
    return _Client(reactor, url, token, http)


async def _follow(client: _Client, since: int, as_json: bool, out: Any) -> int:
    """Print messages as they arrive, by long poll, until interrupted or the node goes."""
    return await follow(client, "messages", since, as_json, out, _message_line)


async def run(reactor: Any, args: argparse.Namespace, out: Any = None, http: Any = None) -> int:
    """
    Perform one command against the node; print its result; return the exit status.

    @param reactor: makes the HTTP requests.
    @param args: the parsed command line.
    @param out: where to print (default: standard output).
    @param http: what makes the requests, with treq's C{request} (default: treq).
    @raise CtlError: for a failure to report in one line (exit status 1).
    """
    out = sys.stdout if out is None else out
    method, path, body = _request_for(args)
    client = _client(reactor, args, http)
    if args.command == "messages" and args.follow:
        return await _follow(client, args.since, args.json, out)
    if args.command == "events" and args.follow:
        return await ctl_files.follow_events(client, args.since, args.json, out, escape)
    if args.command == "send-file":
        try:
            return await ctl_files.send_file(client, reactor, args, body, out, escape)
        except ctl_files.NotAllSent as e:
            raise CtlError(str(e)) from None
    answer = await client.call(method, path, body)
    print(_json_text(answer) if args.json else _format(args.command, answer), file=out)
    if args.command == "send" and answer.get("sent") == 0:
        raise NothingSent(
            "nothing was sent: no trusted peer took the message (see 'p2pnet-ctl peers')"
            if args.to == "*" else f"nothing was sent to {escape(args.to)}"
        )
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
