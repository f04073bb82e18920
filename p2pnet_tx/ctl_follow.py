# -*- test-case-name: tests.test_ctl_follow -*-
"""
The C{--since N} and C{--follow} of the C{p2pnet-ctl} commands that read one of the node's
numbered logs (C{messages}, C{events}): their options (L{add_follow_options}) and the long poll
that prints a log's entries as they come (L{follow}).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

__all__ = ["FOLLOW_WAIT", "add_follow_options", "follow"]

FOLLOW_WAIT = 25
"""Seconds each long poll of C{p2pnet-ctl} asks the node to wait (the node's limit, under
C{p2pnet-ctl}'s request timeout)."""


def add_follow_options(command: argparse.ArgumentParser, follow_help: str) -> None:
    """
    Give a command C{--since N} and C{--follow}/C{-f}.

    @param command: the command's parser.
    @param follow_help: the help of C{--follow} (C{"keep printing events as they happen, until
        interrupted"}).
    """
    command.add_argument("--since", type=int, default=0, metavar="N",
                         help="only those numbered above N")
    command.add_argument("--follow", "-f", action="store_true", help=follow_help)


async def follow(client: Any, name: str, since: int, as_json: bool, out: Any,
                 line: Callable[[dict[str, Any]], str]) -> int:
    """
    Print the entries of the node's log C{name} as they come, by long poll
    (C{GET /api/<name>?since=N&wait=}L{FOLLOW_WAIT}), until interrupted or the node goes.

    @param client: makes the requests: C{await client.call(method, path)} returns the answer.
    @param name: the log, as the API names it and its answer's key (C{"messages"}).
    @param since: print only the entries numbered above it.
    @param as_json: print each entry as one line of JSON instead of C{line(entry)}.
    @param out: where to print.
    @param line: the text line of an entry (escaping what came from peers).
    @return: never: it ends with the failure of a request (L{p2pnet_tx.ctl.CtlError}).
    """
    while True:
        answer = await client.call("GET", f"/api/{name}?since={since}&wait={FOLLOW_WAIT}")
        for entry in answer.get(name, []):
            print(json.dumps(entry, sort_keys=True) if as_json else line(entry), file=out)
            if isinstance(entry.get("seq"), int):
                since = max(since, entry["seq"])
        out.flush()
