# -*- test-case-name: tests.test_logtext -*-
"""
L{peer_text}: what a peer said, made fit for a log line or an error message.

Anything a peer chose (a packet type, a field it sent, an identifier it claims, an error
message that quotes it) reaches a log only through L{peer_text}: cut to a bounded length, with
a marker saying how much was cut, and with every character that a terminal or a log reader
could take for something else made visible.  A peer can then neither fill the disk with one
log line nor forge lines, colour a terminal or hide text.

This module is plain Python, imported by the codecs: no Twisted here.
"""

from __future__ import annotations

__all__ = ["PEER_TEXT_LIMIT", "REASON_TEXT_LIMIT", "peer_text"]

PEER_TEXT_LIMIT = 100
"""The default length, in characters, of what L{peer_text} returns (before its cut marker)."""

REASON_TEXT_LIMIT = 300
"""The length a reason is cut to: our own words, with some of the peer's quoted in them."""


def peer_text(value: object, limit: int = PEER_TEXT_LIMIT) -> str:
    """
    Return C{value} as text that is safe to log: at most C{limit} characters of it, escaped,
    then a marker C{...[N more chars]} if anything was cut: N counts the characters of the text
    form of C{value} left out (of C{bytes}, those of their C{repr}, and the bytes not read).

    Printable characters are kept as they are, in any script.  Control characters (newlines,
    C{ESC} and so ANSI escapes), Unicode separators, format characters (such as the
    right-to-left override) and lone surrogates become the escapes C{repr} writes (C{\\n},
    C{\\x1b}, C{\\u202e}, C{\\ud800}).  A backslash is kept: then text made safe once, such as
    a reason quoting a peer, passes through again unchanged (but shorter, if it is too long).  Of a C{str} or C{bytes}, only the first C{limit}
    characters are looked at, so the cost does not grow with the size of C{value}.

    A C{str} is taken as it is, C{bytes} as C{repr} writes them, anything else as C{str()} makes
    it (a L{p2pnet_tx.peer.GenericPeer} makes a safe text of its own).

    @param value: what the peer said.
    @param limit: the most characters of escaped text kept, at least 1.
    @return: the safe text; C{value} itself when it is a short, printable C{str}.
    @raise ValueError: if C{limit} is less than 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit!r}")
    if isinstance(value, (bytes, bytearray, memoryview)):
        # repr() escapes whatever is not printable ASCII: only the length is left to bound.
        text = repr(bytes(value[:limit]))
        return _cut(text[:limit], max(len(text) - limit, 0) + max(len(value) - limit, 0))
    text = _as_text(value)
    head = text[:limit]
    if head.isprintable():
        return text if len(text) <= limit else _cut(head, len(text) - limit)
    parts = []
    size = shown = 0
    for char in head:
        escaped = char if char.isprintable() else repr(char)[1:-1]
        size += len(escaped)
        if size > limit:
            break
        parts.append(escaped)
        shown += 1
    return _cut("".join(parts), len(text) - shown)


def _cut(shown: str, left_out: int) -> str:
    """C{shown}, then the marker saying how much was C{left_out}, if anything was."""
    return f"{shown}...[{left_out} more chars]" if left_out > 0 else shown


def _as_text(value: object) -> str:
    """C{value} as text, as L{peer_text} takes it."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 -- a huge int (str() refuses it), a broken __str__
        return f"<{type(value).__name__} that cannot be shown>"
