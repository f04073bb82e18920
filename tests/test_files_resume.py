"""
Tests for L{p2pnet_tx.files.resume}: the two transfer machines alone, against a recorder.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.files.resume import ReceiverCore, SenderCore, new_receiver, new_sender


class Recorder:
    """Records every action asked of it (wormhole's Dummy)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, *args))

    def shown(self) -> list[str]:
        return [call[1] for call in self.calls if call[0] == "show"]

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]


class SenderMachineTests(SynchronousTestCase):
    """The sender offers once hashed and connected, pauses on a disconnect, offers again."""

    def setUp(self) -> None:
        self.actions = Recorder()
        self.sender = new_sender(SenderCore(self.actions))

    def test_whole_transfer(self) -> None:
        """hashed, connected, accepted, completed: offer, send, done."""
        self.sender.hashed()
        self.sender.connected()
        self.sender.accepted(((0, 4),))
        self.sender.requested(((2, 3),))
        self.sender.completed()
        self.assertEqual(self.actions.names(), [
            "show", "show", "send_offer", "show", "start_sending", "add_chunks",
            "stop_sending", "finished"])
        self.assertEqual(self.actions.calls[-1], ("finished", "done", None))

    def test_hashed_while_connected(self) -> None:
        """Hashed with the peer already there: offered at once, never shown as paused."""
        self.sender.hashed_while_connected()
        self.assertEqual(self.actions.calls, [("show", "offered", None), ("send_offer",)])
        self.sender.accepted(((0, 4),))
        self.assertEqual(self.actions.calls[-1], ("start_sending", ((0, 4),)))

    def test_connected_while_hashing(self) -> None:
        """A connection while hashing waits for the hash; nothing is offered before."""
        self.sender.connected()
        self.assertEqual(self.actions.calls, [])

    def test_pause_and_resume(self) -> None:
        """A disconnect pauses; the next connection offers again."""
        self.sender.hashed()
        self.sender.connected()
        self.sender.accepted(((0, 4),))
        self.sender.disconnected("peer disconnected")
        self.assertEqual(self.actions.shown()[-1], "paused")
        self.sender.accepted(((0, 4),))  # late: ignored
        self.sender.connected()
        self.assertEqual(self.actions.names()[-2:], ["show", "send_offer"])
        self.sender.accepted(((2, 4),))
        self.assertEqual(self.actions.calls[-1], ("start_sending", ((2, 4),)))

    def test_refused(self) -> None:
        """A refusal ends the transfer with its reason."""
        self.sender.hashed()
        self.sender.connected()
        self.sender.refused("too large")
        self.assertEqual(self.actions.calls[-1], ("finished", "refused", "too large"))

    def test_cancel_from_every_live_state(self) -> None:
        """Cancel works in every state but the final ones, telling the peer."""
        for steps in ([], ["hashed"], ["hashed", "connected"]):
            self.setUp()
            for step in steps:
                getattr(self.sender, step)()
            self.sender.cancel("user")
            self.assertEqual(self.actions.names()[-3:],
                             ["stop_sending", "send_cancel", "finished"])
            before = len(self.actions.calls)
            self.sender.cancel("again")
            self.sender.connected()
            self.sender.completed()
            self.assertEqual(len(self.actions.calls), before)

    def test_fail(self) -> None:
        """A local failure tells the peer and ends as failed."""
        self.sender.hashed()
        self.sender.fail("cannot read")
        self.assertEqual(self.actions.calls[-1], ("finished", "failed", "cannot read"))


class ReceiverMachineTests(SynchronousTestCase):
    """The receiver accepts each offer, verifies, and pauses on a disconnect."""

    def setUp(self) -> None:
        self.actions = Recorder()
        self.receiver = new_receiver(ReceiverCore(self.actions))

    def test_whole_transfer(self) -> None:
        """offered, chunks, all verified, verified: accept, store, verify, done."""
        self.receiver.offered()
        self.receiver.chunk(0, memoryview(b"x"))
        self.receiver.all_verified()
        self.receiver.chunk(0, memoryview(b"x"))  # late: ignored
        self.receiver.verified()
        self.assertEqual(self.actions.names(), [
            "show", "send_accept", "store_chunk", "verify_file", "finished", "send_done"])
        self.receiver.offered()  # the sender missed our done: tell it again
        self.assertEqual(self.actions.names()[-1], "send_done")

    def test_mismatch(self) -> None:
        """A whole-file hash that differs fails the transfer."""
        self.receiver.offered()
        self.receiver.all_verified()
        self.receiver.mismatch("bad")
        self.assertEqual(self.actions.calls[-2:], [("send_cancel", "bad"),
                                                   ("finished", "failed", "bad")])

    def test_pause_and_resume(self) -> None:
        """A disconnect saves and pauses; chunks then are ignored; an offer resumes."""
        self.receiver.offered()
        self.receiver.disconnected("gone")
        self.assertEqual(self.actions.names()[-2:], ["pause", "show"])
        self.receiver.chunk(1, memoryview(b"x"))
        self.assertNotEqual(self.actions.names()[-1], "store_chunk")
        self.receiver.offered()
        self.assertEqual(self.actions.names()[-1], "send_accept")

    def test_refuse(self) -> None:
        """A refusal answers the sender and ends the transfer."""
        self.receiver.refuse("over quota")
        self.assertEqual(self.actions.calls, [("send_refuse", "over quota"),
                                              ("finished", "refused", "over quota")])
        self.receiver.offered()
        self.assertEqual(len(self.actions.calls), 2)

    def test_peer_cancelled(self) -> None:
        """The sender's cancel ends the transfer without answering."""
        self.receiver.offered()
        self.receiver.peer_cancelled("bye")
        self.assertEqual(self.actions.calls[-1], ("finished", "cancelled", "bye"))
        self.assertNotIn("send_cancel", self.actions.names())
