# -*- test-case-name: tests.test_numbered_log -*-
"""Tests for L{p2pnet_tx.numbered_log}: numbered entries and the long polls that wait on them."""

from __future__ import annotations

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.numbered_log import NumberedLog


@attrs.frozen
class Entry:
    seq: int
    time: float


class NumberedLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.log: NumberedLog[Entry] = NumberedLog(self.clock, max_entries=3)

    def keep(self) -> Entry:
        return self.log.append(lambda seq: Entry(seq, self.log.now()))

    def test_numbers_from_one_and_keeps_the_newest(self) -> None:
        """Entries are numbered from 1; past C{max_entries} the oldest fall off."""
        self.assertEqual(self.log.last, 0)
        for _ in range(5):
            self.clock.advance(1)
            self.keep()
        self.assertEqual(self.log.last, 5)
        self.assertEqual(self.log.since(0), [Entry(3, 3.0), Entry(4, 4.0), Entry(5, 5.0)])
        self.assertEqual(self.log.since(4), [Entry(5, 5.0)])

    def test_wait_answers_at_once_when_newer_entries_exist(self) -> None:
        """A caller behind the log gets the newer entries without waiting."""
        self.keep()
        self.assertEqual(self.successResultOf(self.log.wait_since(0, 30)), [Entry(1, 0.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wait_answered_by_the_next_entry(self) -> None:
        """A waiting caller is answered by the next entry and its timer is cancelled."""
        waiter = self.log.wait_since(0, 30)
        self.assertNoResult(waiter)
        self.assertEqual(self.log.waiting, 1)
        self.keep()
        self.assertEqual(self.successResultOf(waiter), [Entry(1, 0.0)])
        self.assertEqual(self.log.waiting, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wait_times_out_empty(self) -> None:
        """With nothing new, the wait ends after C{timeout} seconds with an empty list."""
        waiter = self.log.wait_since(0, 30)
        self.clock.advance(29.9)
        self.assertNoResult(waiter)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(waiter), [])
        self.assertEqual(self.log.waiting, 0)

    def test_cancelled_wait_leaves_nothing_behind(self) -> None:
        """Cancelling a wait removes the waiter and its timer."""
        waiter = self.log.wait_since(0, 30)
        waiter.cancel()
        self.failureResultOf(waiter)
        self.assertEqual(self.log.waiting, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.keep()

    def test_zero_timeout_answers_at_once(self) -> None:
        """A timeout of 0 answers at once, empty when nothing is newer."""
        self.assertEqual(self.successResultOf(self.log.wait_since(0, 0)), [])
        self.assertEqual(self.log.waiting, 0)
