# -*- test-case-name: tests.test_observer -*-
"""
Observer lists and one-shot observers: the events of channels and networks, without threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

_T = TypeVar("_T")


class Observers:
    """
    A list of callables notified, in the order they were added, of an event.

    An observer that raises is logged and does not stop the others.
    """

    log = Logger()
    __slots__ = ("_event", "_observers")

    def __init__(self, event: str) -> None:
        self._event = event
        self._observers: list[Callable[..., Any]] = []

    def add(self, observer: Callable[..., Any]) -> None:
        """Call C{observer} on every later event."""
        self._observers.append(observer)

    def remove(self, observer: Callable[..., Any]) -> None:
        """
        Stop calling C{observer}.

        @raise ValueError: if it was not added.
        """
        self._observers.remove(observer)

    def clear(self) -> None:
        """Remove every observer."""
        del self._observers[:]

    def __len__(self) -> int:
        return len(self._observers)

    def __bool__(self) -> bool:
        return bool(self._observers)

    def __contains__(self, observer: object) -> bool:
        return observer in self._observers

    def notify(self, *args: Any) -> list[Any]:
        """
        Call every observer with C{args}; return their results (None for one that raised).
        """
        results = []
        for observer in list(self._observers):
            try:
                results.append(observer(*args))
            except Exception:
                results.append(None)
                self.log.failure(
                    "observer {observer!r} of {event} failed", observer=observer, event=self._event
                )
        return results


    def notify_consumed(self, *args: Any) -> bool:
        """
        Call every observer with C{args}, as L{notify} does; return whether any of them returned
        C{True} (consumed the event).
        """
        consumed = False
        for observer in list(self._observers):
            try:
                if observer(*args) is True:
                    consumed = True
            except Exception:
                self.log.failure(
                    "observer {observer!r} of {event} failed", observer=observer, event=self._event
                )
        return consumed


class OneShotObserver(Generic[_T]):
    """
    An event that happens once; C{when_fired()} hands each caller a fresh Deferred.
    """

    __slots__ = ("_result", "_fired", "_waiters")

    def __init__(self) -> None:
        self._result: _T | Failure | None = None
        self._fired = False
        self._waiters: list[Deferred[_T]] = []

    @property
    def fired(self) -> bool:
        """Whether the event has happened."""
        return self._fired

    def when_fired(self) -> Deferred[_T]:
        """Return a new Deferred that fires (or fails) with the event's result."""
        if not self._fired:
            waiter: Deferred[_T] = Deferred()
            self._waiters.append(waiter)
            return waiter
        if isinstance(self._result, Failure):
            return fail(self._result)
        return succeed(self._result)  # type: ignore[arg-type]

    def fire(self, result: _T | Failure) -> None:
        """Make the event happen; later calls are ignored."""
        if self._fired:
            return
        self._fired, self._result = True, result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
