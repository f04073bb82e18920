# -*- test-case-name: tests.test_ctl_files -*-
"""
The progress display of C{p2pnet-ctl send-file}: how far the transfers of one file have come,
with rate and time left, drawn from the node's answers (L{TransferProgressView}).

On a terminal it is one bar, redrawn in place (a carriage return, the line, then "erase to the
end of the line"); each transfer that ends gets a line of its own above it.  Anywhere else
(a pipe, a file, a CI log) it degrades to plain lines: one when a transfer changes state, and
one each time the whole passes another tenth, so a log of a 200 MiB transfer holds a dozen
lines, not a thousand redraws.

Why not tqdm or rich: both would be a new dependency for one line of text, and both draw
from a thread of their own by default (tqdm's monitor, rich's auto-refresh), where everything
here runs on the reactor.  The node already measures the rate (C{Transfer.to_json()["rate"]}),
and C{send-file} redraws only when an answer comes (a long poll, at most four times a second),
so what is left to draw is a few lines of formatting.  Peer text goes through
L{p2pnet_tx.ctl.escape}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

__all__ = ["FINISHED", "TransferProgressView", "duration", "size"]

FINISHED = frozenset({"done", "refused", "failed", "cancelled"})
"""The states a transfer never leaves: L{p2pnet_tx.files.transfer.FINISHED_STATES}, as the
control API shows them (kept apart so that C{p2pnet-ctl} does not import the node's file
transfer package; a test holds the two equal)."""

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(value: Any) -> str:
    """A byte count for people: C{"512 B"}, C{"1.5 MiB"}; C{"?"} for what is not a number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        return "?"
    amount = float(value)
    for unit in _UNITS:
        if amount < 1024 or unit == _UNITS[-1]:
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def duration(seconds: Any) -> str:
    """A time left for people: C{"0:07"}, C{"12:30"}, C{"2:03:04"}; C{"?"} if unknown."""
    if not isinstance(seconds, (int, float)) or not 0 <= seconds < 100 * 86400:
        return "?"
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def ending(transfer: dict[str, Any], escape: Callable[[object], str]) -> str:
    """
    The line that says how one transfer ended (or stands): C{"report.pdf to peer-a: done
    (1.5 MiB)"}, C{"report.pdf to peer-b: refused (over the size limit)"}.
    """
    who = ("to " if transfer.get("direction") != "receive" else "from ") + escape(
        transfer.get("peer"))
    state = escape(transfer.get("state"))
    line = f"{escape(transfer.get('name'))} {who}: {state}"
    if transfer.get("state") == "done":
        line += f" ({size(transfer.get('size'))})"
    elif transfer.get("reason"):
        line += f" ({escape(transfer['reason'])})"
    return line


class TransferProgressView:
    """
    Shows the progress of the transfers of one file.

    @param out: where to draw.
    @param escape: makes peer text safe to print (L{p2pnet_tx.ctl.escape}).
    @param tty: whether C{out} is a terminal: a bar redrawn in place, else plain lines.
    @param width: the terminal's width, in characters.
    """

    BAR = 24
    """Characters of the bar itself, at most."""

    FIGURES = 50
    """Characters kept for the figures after the bar: percentage, bytes done and in all,
    rate, time left."""

    def __init__(self, out: TextIO, escape: Callable[[object], str], tty: bool,
                 width: int = 80) -> None:
        self._out = out
        self._escape = escape
        self._tty = tty
        self._width = max(40, width)
        self._states: dict[str, str] = {}
        self._tenths = -1
        self._drawn = False

    def show(self, transfers: Sequence[dict[str, Any]]) -> None:
        """
        Draw the transfers as they are now (newest answer from the node).

        @param transfers: their JSON objects (C{id}, C{state}, C{done}, C{size}, C{rate}...).
        """
        for transfer in transfers:
            key = str(transfer.get("id"))
            state = transfer.get("state")
            if self._states.get(key) != state:
                self._states[key] = str(state)
                if state in FINISHED or not self._tty:
                    self._line(ending(transfer, self._escape))
        if self._tty:
            self._bar(transfers)
        else:
            tenths = int(10 * self._fraction(transfers))
            if tenths > self._tenths and any(t.get("state") not in FINISHED for t in transfers):
                self._tenths = tenths
                self._line(self._summary(transfers, bar=False))
        self._out.flush()

    def close(self) -> None:
        """End the bar's line, if one is drawn; call once the transfers are over."""
        if self._drawn:
            self._out.write("\r\x1b[K")
            self._drawn = False
        self._out.flush()

    def _line(self, text: str) -> None:
        if self._drawn:
            self._out.write("\r\x1b[K")
            self._drawn = False
        self._out.write(text + "\n")

    def _bar(self, transfers: Sequence[dict[str, Any]]) -> None:
        if all(t.get("state") in FINISHED for t in transfers):
            self.close()
            return
        self._out.write("\r" + self._summary(transfers, bar=True) + "\x1b[K")
        self._drawn = True

    @staticmethod
    def _fraction(transfers: Sequence[dict[str, Any]]) -> float:
        total = sum(_number(t.get("size")) for t in transfers)
        done = sum(min(_number(t.get("done")), _number(t.get("size"))) for t in transfers)
        if total <= 0:
            return 1.0 if all(t.get("state") in FINISHED for t in transfers) else 0.0
        return done / total

    def _summary(self, transfers: Sequence[dict[str, Any]], bar: bool) -> str:
        active = [t for t in transfers if t.get("state") not in FINISHED]
        name = self._escape(transfers[0].get("name")) if transfers else "?"
        if len(transfers) == 1:
            who = self._escape(transfers[0].get("peer"))
            who = who if len(who) <= 16 else who[:15] + "~"
        else:
            who = f"{len(transfers)} peers"
        fraction = self._fraction(transfers)
        total = sum(_number(t.get("size")) for t in transfers)
        done = fraction * total
        rate = sum(_number(t.get("rate")) for t in active)
        left = [(_number(t.get("size")) - _number(t.get("done"))) / _number(t.get("rate"))
                for t in active if _number(t.get("rate")) > 0]
        eta = duration(max(left)) if left and len(left) == len(active) else "?"
        figures = (f"{fraction * 100:3.0f}%  {size(done)} of {size(total)}  "
                   f"{size(rate)}/s  ETA {eta}")
        states = sorted({str(t.get("state")) for t in active})
        waiting = "" if states == ["sending"] or states == ["receiving"] else (
            "  " + ",".join(self._escape(s) for s in states))
        if not bar:
            return f"{name} to {who}: {figures}{waiting}"
        # The bar's width is reckoned on FIGURES, not on this frame's figures, so that it
        # does not jump from one frame to the next; the last column is left empty (a
        # terminal may wrap a line that fills it).
        room = self._width - 1 - self.FIGURES - len(" [] ")
        label = f"{name} to {who}"
        longest = max(12, room - 10)
        if len(label) > longest:
            label = label[: longest - 1] + "~"
        fits = self._width - 1 - len(label) - len(" [] ") - len(figures) - len(waiting)
        width = min(self.BAR, room - len(label), fits)
        if width < 5:  # too narrow for a bar: the figures say it all
            return f"{label} {figures}{waiting}"
        filled = int(width * min(1.0, fraction))
        return f"{label} [{'#' * filled}{'-' * (width - filled)}] {figures}{waiting}"
