# -*- test-case-name: tests.test_ctl -*-
"""
The lines C{p2pnet-ctl status} prints for the node's parts: LAN discovery (C{"discovery"}),
the bootstrap clients (C{"bootstrap"}) and file transfers (C{"files"}), each only when the
node's C{GET /api/status} has that section.

Only the figures a user acts on are shown (is it running, is it failing, what did it
refuse); C{--json} shows them all.  Every value is printed through the C{escape} function
C{p2pnet-ctl} passes, whatever its source, and a field of an unexpected type is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["part_rows"]

Escape = Callable[[object], str]


def _count(section: dict[str, Any], key: str) -> int:
    value = section.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _causes(counts: Any, escape: Escape) -> str:
    """C{" (a 2, b 1)"} from a dict of counts (largest first), or C{""}."""
    if not isinstance(counts, dict):
        return ""
    items = sorted(((k, v) for k, v in counts.items() if isinstance(v, int) and v),
                   key=lambda item: (-item[1], str(item[0])))
    return f" ({', '.join(f'{escape(k)} {v}' for k, v in items)})" if items else ""


def _plural(count: int, noun: str) -> str:
    """C{"1 heartbeat"}, C{"2 heartbeats"}; C{"2 chunks with a bad hash"}."""
    first, _, rest = noun.partition(" with ")
    if count != 1:
        first += "s"
    return f"{count} {first}" + (f" with {rest}" if rest else "")


def _discovery(section: dict[str, Any], escape: Escape) -> list[str]:
    listening = section.get("listening")
    ports = [str(escape(p.get("port"))) for p in listening if isinstance(p, dict)] \
        if isinstance(listening, list) else []
    state = "running" if section.get("running") is True else "stopped"
    first = f"{escape(section.get('mode', 'lan'))} {state}"
    if ports:
        first += f", port {', '.join(ports)}"
    if isinstance(section.get("interval"), (int, float)):
        first += f", announces every {section['interval']:g} s"
    first += f": {_count(section, 'sent')} sent"
    if _count(section, "send_failed"):
        first += f", {_count(section, 'send_failed')} failed to send"
    rejected = section.get("rejected")
    refused = sum(v for v in rejected.values() if isinstance(v, int)) \
        if isinstance(rejected, dict) else 0
    heard = (f"heard {_count(section, 'received')}: {_count(section, 'accepted')} accepted, "
             f"{refused} rejected{_causes(rejected, escape)}")
    dials = (f"dials {_count(section, 'dials_started')}: "
             f"{_count(section, 'dials_connected')} connected, "
             f"{_count(section, 'dials_failed')} failed, "
             f"{_count(section, 'pending_dials')} pending")
    return [first, heard, dials]


def _server_line(server: dict[str, Any], escape: Escape) -> str:
    line = (f"{escape(server.get('url', '?'))} {escape(server.get('state', '?'))}: "
            f"{_plural(_count(server, 'registrations'), 'registration')}, "
            f"{_plural(_count(server, 'heartbeats'), 'heartbeat')}, "
            f"{_plural(_count(server, 'failures'), 'failure')}, "
            f"{_count(server, 'peers_learnt')} peers learnt")
    if _count(server, "tasks_ignored"):
        line += f", {_count(server, 'tasks_ignored')} tasks ignored"
    if server.get("last_error"):
        line += f"; last error: {escape(server['last_error'])}"
    return line


def _bootstrap(section: dict[str, Any], escape: Escape) -> list[str]:
    servers = section.get("servers")
    servers = [s for s in servers if isinstance(s, dict)] if isinstance(servers, list) else []
    first = f"{escape(section.get('mode', '?'))} mode, {_plural(len(servers), 'server')}"
    if section.get("mode") == "authority":
        rejected = {key[len("tasks.rejected."):]: value for key, value in section.items()
                    if key.startswith("tasks.rejected.")}
        total = sum(v for v in rejected.values() if isinstance(v, int))
        first += (f"; tasks: {_count(section, 'tasks.executed')} executed, {total} "
                  f"rejected{_causes(rejected, escape)}")
    return [first] + [_server_line(server, escape) for server in servers]


def _files(section: dict[str, Any], escape: Escape) -> list[str]:
    counters = section.get("counters")
    counters = counters if isinstance(counters, dict) else {}
    first = (f"{_plural(_count(section, 'active'), 'active transfer')}; finished: "
             f"{_count(counters, 'transfers_sent')} sent, "
             f"{_count(counters, 'transfers_received')} received, "
             f"{_count(counters, 'transfers_failed')} failed, "
             f"{_count(counters, 'transfers_cancelled')} cancelled, "
             f"{_count(counters, 'transfers_refused')} refused")
    shown = [_plural(_count(counters, key), noun) for key, noun in (
        ("chunks_bad_hash", "chunk with a bad hash"),
        ("chunks_invalid", "invalid chunk"),
        ("offers_invalid", "invalid offer"),
        ("messages_invalid", "invalid message"),
    ) if _count(counters, key)]
    return [first] + ([f"refused from peers: {', '.join(shown)}"] if shown else [])


_PARTS: tuple[tuple[str, Callable[[dict[str, Any], Escape], list[str]]], ...] = (
    ("discovery", _discovery),
    ("bootstrap", _bootstrap),
    ("files", _files),
)


def part_rows(body: dict[str, Any], escape: Escape) -> list[tuple[str, str]]:
    """
    The C{(label, text)} rows of the node's parts in a C{GET /api/status} answer: a first row
    labelled with the part's name, then rows with an empty label; none for a part the node
    does not have (or whose section is not an object).

    @param body: the answer.
    @param escape: makes any value safe to print (L{p2pnet_tx.ctl.escape}).
    """
    rows: list[tuple[str, str]] = []
    for name, lines_of in _PARTS:
        section = body.get(name)
        if not isinstance(section, dict):
            continue
        lines = lines_of(section, escape)
        rows += [(name if i == 0 else "", line) for i, line in enumerate(lines)]
    return rows
