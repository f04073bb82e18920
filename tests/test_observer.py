# -*- test-case-name: tests.test_observer -*-
"""
Tests for L{p2pnet_tx._observer}: observer lists and one-shot events.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx._observer import Observers, OneShotObserver
from p2pnet_tx.errors import ChannelClosed


class ObserversTests(SynchronousTestCase):
    """Observers are called in order; one that raises is logged and does not stop the rest."""

    def setUp(self) -> None:
        self.observers = Observers("test event")
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def recorder(self, name: str, result: Any = None) -> Any:
        def observe(*args: Any) -> Any:
            self.calls.append((name, args))
            return result

        return observe

    def test_order_and_results(self) -> None:
        """notify() calls every observer with its arguments, in order, and returns results."""
        self.observers.add(self.recorder("a", 1))
        self.observers.add(self.recorder("b", 2))
        self.assertEqual(self.observers.notify("x", 3), [1, 2])
        self.assertEqual(self.calls, [("a", ("x", 3)), ("b", ("x", 3))])

    def test_remove(self) -> None:
        """A removed observer is not called; removing one never added raises ValueError."""
        observe = self.recorder("a")
        self.observers.add(observe)
        self.assertIn(observe, self.observers)
        self.observers.remove(observe)
        self.assertNotIn(observe, self.observers)
        self.observers.notify()
        self.assertEqual(self.calls, [])
        with self.assertRaises(ValueError):
            self.observers.remove(observe)

    def test_clear_and_len(self) -> None:
        """len() counts observers; clear() removes them all."""
        self.assertFalse(self.observers)
        self.observers.add(self.recorder("a"))
        self.observers.add(self.recorder("b"))
        self.assertEqual(len(self.observers), 2)
        self.observers.clear()
        self.assertEqual(len(self.observers), 0)
        self.assertEqual(self.observers.notify(), [])

    def test_raising_observer(self) -> None:
        """An observer that raises is logged with the event's name; the others still run."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        def broken(*args: Any) -> None:
            raise RuntimeError("observer bug")

        self.observers.add(broken)
        self.observers.add(self.recorder("b", "ok"))
        self.assertEqual(self.observers.notify(), [None, "ok"])
        self.assertEqual(self.calls, [("b", ())])
        [event] = [e for e in logged if "log_failure" in e]
        self.assertTrue(event["log_failure"].check(RuntimeError))
        self.assertEqual(event["event"], "test event")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_removal_during_notify(self) -> None:
        """An observer that removes itself while being notified does not skip the others."""

        def once(*args: Any) -> None:
            self.observers.remove(once)

        self.observers.add(once)
        self.observers.add(self.recorder("b"))
        self.observers.notify()
        self.observers.notify()
        self.assertEqual([name for name, _ in self.calls], ["b", "b"])


class OneShotObserverTests(SynchronousTestCase):
    """A one-shot event hands every caller a fresh Deferred of its single outcome."""

    def test_fresh_deferreds(self) -> None:
        """Each when_fired() call returns a new Deferred; all fire with the result."""
        event: OneShotObserver[str] = OneShotObserver()
        first, second = event.when_fired(), event.when_fired()
        self.assertIsNot(first, second)
        self.assertFalse(event.fired)
        self.assertNoResult(first)
        event.fire("done")
        self.assertTrue(event.fired)
        self.assertEqual(self.successResultOf(first), "done")
        self.assertEqual(self.successResultOf(second), "done")

    def test_late_caller(self) -> None:
        """A caller arriving after the event gets its result at once."""
        event: OneShotObserver[str] = OneShotObserver()
        event.fire("done")
        self.assertEqual(self.successResultOf(event.when_fired()), "done")

    def test_fires_once(self) -> None:
        """Later fire() calls are ignored."""
        event: OneShotObserver[str] = OneShotObserver()
        event.fire("first")
        event.fire("second")
        self.assertEqual(self.successResultOf(event.when_fired()), "first")

    def test_none_result(self) -> None:
        """None is a valid result, told apart from "not fired"."""
        event: OneShotObserver[None] = OneShotObserver()
        event.fire(None)
        self.assertIsNone(self.successResultOf(event.when_fired()))

    def test_failure(self) -> None:
        """A failure reaches every waiter, and every later caller, each on its own Deferred."""
        event: OneShotObserver[str] = OneShotObserver()
        waiting = event.when_fired()
        event.fire(Failure(ChannelClosed("gone")))
        self.failureResultOf(waiting, ChannelClosed)
        self.failureResultOf(event.when_fired(), ChannelClosed)
        self.failureResultOf(event.when_fired(), ChannelClosed)

    def test_failure_without_waiters(self) -> None:
        """A failure nobody waits for is not an unhandled error."""
        event: OneShotObserver[str] = OneShotObserver()
        event.fire(Failure(ChannelClosed("gone")))
        self.assertTrue(event.fired)
        self.assertEqual(self.flushLoggedErrors(), [])
