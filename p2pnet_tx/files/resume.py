# -*- test-case-name: tests.test_files_resume -*-
"""
The transfer state machines, one for each side, as Automat machines with no I/O of their own
(see C{docs/state-machines/files.dot}).  Each state is named for what is true, and its name is
the L{Transfer.state <p2pnet_tx.files.transfers.Transfer.state>} the API shows, except
C{hashing} and C{verifying} (shown as C{offered} and C{receiving}) and C{waiting} (C{paused}).

Sender::

    hashing -> waiting <-> offered -> sending -> done
       |          ^          ^           |
       +----------|----------+ (hashed while the peer is connected)
                  |                      |
                  +------ disconnected --+          any but a final state -> cancelled | failed
                                         offered -> refused

Receiver::

    waiting -> receiving -> verifying -> done | failed
       ^           |
       +-- disconnected                          any but a final state -> cancelled | failed
    waiting -> refused

A disconnect (or a restart, which starts each side in C{waiting}) only ever pauses a transfer:
on the next connection the sender offers again under the same id and the receiver's accept
names the chunks it still needs, so the transfer resumes from its last verified chunk.

The machines call their core's L{SenderActions} or L{ReceiverActions}: the engines in
L{p2pnet_tx.files.sending} and L{p2pnet_tx.files.receiving} do the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from automat import TypeMachineBuilder

__all__ = [
    "Receiver",
    "ReceiverActions",
    "ReceiverCore",
    "Sender",
    "SenderActions",
    "SenderCore",
    "new_receiver",
    "new_sender",
]


class SenderActions(Protocol):
    """What the sender's machine asks its engine to do."""

    def show(self, state: str, reason: str | None) -> None:
        "The transfer is now in C{state} (as the API names it), for C{reason}."

    def send_offer(self) -> None:
        "Offer the file (again) to the peer."

    def start_sending(self, need: tuple[tuple[int, int], ...]) -> None:
        "Send the chunks C{need} names (replacing what was still to send)."

    def add_chunks(self, need: tuple[tuple[int, int], ...]) -> None:
        "Send the chunks C{need} names again, after what is still to send."

    def stop_sending(self) -> None:
        "Stop sending chunks."

    def send_cancel(self, reason: str) -> None:
        "Tell the peer the transfer is cancelled, if it is connected."

    def finished(self, state: str, reason: str | None) -> None:
        "The transfer ended in C{state}: forget what was kept for a resume."


class Sender(Protocol):
    """The inputs of a sending transfer."""

    def hashed(self) -> None:
        "The manifest is ready; the peer is not connected."

    def hashed_while_connected(self) -> None:
        "The manifest is ready and the peer is connected and trusted: offer at once."

    def connected(self) -> None:
        "The peer is connected and trusted."

    def disconnected(self, reason: str) -> None:
        "The peer's channel closed."

    def accepted(self, need: tuple[tuple[int, int], ...]) -> None:
        "The peer accepted the offer and needs these chunks."

    def requested(self, need: tuple[tuple[int, int], ...]) -> None:
        "The peer asks for chunks again (one failed to verify)."

    def refused(self, reason: str) -> None:
        "The peer refused the offer."

    def completed(self) -> None:
        "The peer verified the whole file."

    def cancel(self, reason: str) -> None:
        "Cancel here, telling the peer."

    def peer_cancelled(self, reason: str) -> None:
        "The peer cancelled."

    def fail(self, reason: str) -> None:
        "Something went wrong here (the file cannot be read): fail, telling the peer."


@dataclass
class SenderCore:
    """The sender machine's collaborator."""

    actions: SenderActions


_sender = TypeMachineBuilder(Sender, SenderCore)
s_hashing = _sender.state("hashing")
s_waiting = _sender.state("waiting")
s_offered = _sender.state("offered")
s_sending = _sender.state("sending")
s_done = _sender.state("done")
s_refused = _sender.state("refused")
s_failed = _sender.state("failed")
s_cancelled = _sender.state("cancelled")


@s_hashing.upon(Sender.hashed).to(s_waiting)
def _hashed(m: Sender, core: SenderCore) -> None:
    core.actions.show("paused", "waiting for the peer")


s_hashing.upon(Sender.connected).loop().returns(None)
s_hashing.upon(Sender.disconnected).loop().returns(None)


@s_waiting.upon(Sender.connected).to(s_offered)
@s_hashing.upon(Sender.hashed_while_connected).to(s_offered)
def _offer(m: Sender, core: SenderCore) -> None:
    core.actions.show("offered", None)
    core.actions.send_offer()


s_waiting.upon(Sender.disconnected).loop().returns(None)


@s_offered.upon(Sender.accepted).to(s_sending)
@s_sending.upon(Sender.accepted).loop()
def _accepted(m: Sender, core: SenderCore, need: tuple[tuple[int, int], ...]) -> None:
    core.actions.show("sending", None)
    core.actions.start_sending(need)


@s_sending.upon(Sender.requested).loop()
def _requested(m: Sender, core: SenderCore, need: tuple[tuple[int, int], ...]) -> None:
    core.actions.add_chunks(need)


@s_offered.upon(Sender.connected).loop()
@s_sending.upon(Sender.connected).loop()
def _reconnected(m: Sender, core: SenderCore) -> None:
    core.actions.stop_sending()
    core.actions.show("offered", None)
    core.actions.send_offer()


@s_offered.upon(Sender.disconnected).to(s_waiting)
@s_sending.upon(Sender.disconnected).to(s_waiting)
def _paused(m: Sender, core: SenderCore, reason: str) -> None:
    core.actions.stop_sending()
    core.actions.show("paused", reason)


@s_offered.upon(Sender.refused).to(s_refused)
def _refused(m: Sender, core: SenderCore, reason: str) -> None:
    core.actions.finished("refused", reason)


@s_sending.upon(Sender.completed).to(s_done)
@s_offered.upon(Sender.completed).to(s_done)
def _completed(m: Sender, core: SenderCore) -> None:
    core.actions.stop_sending()
    core.actions.finished("done", None)


_SENDER_LIVE = (s_hashing, s_waiting, s_offered, s_sending)
for _state in _SENDER_LIVE:

    @_state.upon(Sender.cancel).to(s_cancelled)
    def _cancel(m: Sender, core: SenderCore, reason: str) -> None:
        core.actions.stop_sending()
        core.actions.send_cancel(reason)
        core.actions.finished("cancelled", reason)

    @_state.upon(Sender.peer_cancelled).to(s_cancelled)
    def _peer_cancelled(m: Sender, core: SenderCore, reason: str) -> None:
        core.actions.stop_sending()
        core.actions.finished("cancelled", reason)

    @_state.upon(Sender.fail).to(s_failed)
    def _fail(m: Sender, core: SenderCore, reason: str) -> None:
        core.actions.stop_sending()
        core.actions.send_cancel(reason)
        core.actions.finished("failed", reason)


# Messages that come late or out of turn change nothing (a peer's accept after a cancel...).
for _state in (s_hashing, s_waiting):
    for _input in (Sender.accepted, Sender.requested):
        _state.upon(_input).loop().returns(None)
    _state.upon(Sender.refused).loop().returns(None)
    _state.upon(Sender.completed).loop().returns(None)
s_offered.upon(Sender.requested).loop().returns(None)
s_sending.upon(Sender.refused).loop().returns(None)
for _state in (s_done, s_refused, s_failed, s_cancelled):
    for _input in (Sender.hashed, Sender.connected, Sender.completed):
        _state.upon(_input).loop().returns(None)
    for _input in (Sender.disconnected, Sender.refused, Sender.cancel, Sender.peer_cancelled,
                   Sender.fail):
        _state.upon(_input).loop().returns(None)
    for _input in (Sender.accepted, Sender.requested):
        _state.upon(_input).loop().returns(None)

new_sender = _sender.build()
"""C{new_sender(SenderCore(actions)) -> Sender}: a sending transfer, hashing its file."""


class ReceiverActions(Protocol):
    """What the receiver's machine asks its engine to do."""

    def show(self, state: str, reason: str | None) -> None:
        "The transfer is now in C{state} (as the API names it), for C{reason}."

    def send_accept(self) -> None:
        "Open the partial file and tell the peer which chunks are still needed."

    def store_chunk(self, index: int, data: memoryview) -> None:
        "Verify and write a chunk; ask for it again if it does not verify."

    def verify_file(self) -> None:
        "Hash the whole file; then input C{verified} or C{mismatch}."

    def send_done(self) -> None:
        "Tell the peer the whole file verified (again, on a late offer)."

    def send_refuse(self, reason: str) -> None:
        "Refuse the offer, telling the peer why."

    def send_cancel(self, reason: str) -> None:
        "Tell the peer the transfer is cancelled or failed, if it is connected."

    def pause(self) -> None:
        "Save the partial file's state and close it."

    def finished(self, state: str, reason: str | None) -> None:
        "The transfer ended in C{state}: keep the file (done) or delete the partial one."


class Receiver(Protocol):
    """The inputs of a receiving transfer."""

    def offered(self) -> None:
        "The peer offers the file (again)."

    def refuse(self, reason: str) -> None:
        "Refuse the offer."

    def chunk(self, index: int, data: memoryview) -> None:
        "A chunk arrived."

    def all_verified(self) -> None:
        "Every chunk is verified."

    def verified(self) -> None:
        "The whole file's hash matches the manifest."

    def mismatch(self, reason: str) -> None:
        "The whole file's hash does not match the manifest."

    def disconnected(self, reason: str) -> None:
        "The peer's channel closed."

    def cancel(self, reason: str) -> None:
        "Cancel here, telling the peer."

    def peer_cancelled(self, reason: str) -> None:
        "The peer cancelled."

    def fail(self, reason: str) -> None:
        "Something went wrong (a chunk beyond the file, a disk error): fail, telling the peer."


@dataclass
class ReceiverCore:
    """The receiver machine's collaborator."""

    actions: ReceiverActions


_receiver = TypeMachineBuilder(Receiver, ReceiverCore)
r_waiting = _receiver.state("waiting")
r_receiving = _receiver.state("receiving")
r_verifying = _receiver.state("verifying")
r_done = _receiver.state("done")
r_refused = _receiver.state("refused")
r_failed = _receiver.state("failed")
r_cancelled = _receiver.state("cancelled")


@r_waiting.upon(Receiver.offered).to(r_receiving)
@r_receiving.upon(Receiver.offered).loop()
def _accept(m: Receiver, core: ReceiverCore) -> None:
    core.actions.show("receiving", None)
    core.actions.send_accept()


@r_waiting.upon(Receiver.refuse).to(r_refused)
def _refuse(m: Receiver, core: ReceiverCore, reason: str) -> None:
    core.actions.send_refuse(reason)
    core.actions.finished("refused", reason)


@r_receiving.upon(Receiver.chunk).loop()
def _chunk(m: Receiver, core: ReceiverCore, index: int, data: memoryview) -> None:
    core.actions.store_chunk(index, data)


@r_receiving.upon(Receiver.all_verified).to(r_verifying)
def _verify(m: Receiver, core: ReceiverCore) -> None:
    core.actions.verify_file()


@r_verifying.upon(Receiver.verified).to(r_done)
def _done(m: Receiver, core: ReceiverCore) -> None:
    core.actions.finished("done", None)
    core.actions.send_done()


@r_verifying.upon(Receiver.mismatch).to(r_failed)
def _mismatch(m: Receiver, core: ReceiverCore, reason: str) -> None:
    core.actions.send_cancel(reason)
    core.actions.finished("failed", reason)


@r_receiving.upon(Receiver.disconnected).to(r_waiting)
def _disconnected(m: Receiver, core: ReceiverCore, reason: str) -> None:
    core.actions.pause()
    core.actions.show("paused", reason)


r_done.upon(Receiver.offered).loop()(lambda m, core: core.actions.send_done())

for _state in (r_waiting, r_receiving, r_verifying):

    @_state.upon(Receiver.cancel).to(r_cancelled)
    def _r_cancel(m: Receiver, core: ReceiverCore, reason: str) -> None:
        core.actions.send_cancel(reason)
        core.actions.finished("cancelled", reason)

    @_state.upon(Receiver.peer_cancelled).to(r_cancelled)
    def _r_peer_cancelled(m: Receiver, core: ReceiverCore, reason: str) -> None:
        core.actions.finished("cancelled", reason)

    @_state.upon(Receiver.fail).to(r_failed)
    def _r_fail(m: Receiver, core: ReceiverCore, reason: str) -> None:
        core.actions.send_cancel(reason)
        core.actions.finished("failed", reason)


# Late or out-of-turn inputs change nothing: chunks still in flight after a pause or the end,
# an offer while the file is being hashed (the sender gets its answer once it is).
r_waiting.upon(Receiver.chunk).loop().returns(None)
r_waiting.upon(Receiver.disconnected).loop().returns(None)
r_verifying.upon(Receiver.chunk).loop().returns(None)
r_verifying.upon(Receiver.offered).loop().returns(None)
r_verifying.upon(Receiver.disconnected).loop().returns(None)
r_receiving.upon(Receiver.refuse).loop().returns(None)
r_verifying.upon(Receiver.refuse).loop().returns(None)
for _state in (r_done, r_refused, r_failed, r_cancelled):
    for _input in (Receiver.chunk,):
        _state.upon(_input).loop().returns(None)
    for _input in (Receiver.refuse, Receiver.mismatch, Receiver.disconnected, Receiver.cancel,
                   Receiver.peer_cancelled, Receiver.fail):
        _state.upon(_input).loop().returns(None)
    _state.upon(Receiver.all_verified).loop().returns(None)
    _state.upon(Receiver.verified).loop().returns(None)
for _state in (r_refused, r_failed, r_cancelled):
    _state.upon(Receiver.offered).loop().returns(None)
for _state in (r_waiting, r_receiving):
    _state.upon(Receiver.verified).loop().returns(None)
    _state.upon(Receiver.mismatch).loop().returns(None)
r_waiting.upon(Receiver.all_verified).loop().returns(None)
r_verifying.upon(Receiver.all_verified).loop().returns(None)

new_receiver = _receiver.build()
"""C{new_receiver(ReceiverCore(actions)) -> Receiver}: a receiving transfer, waiting for an
offer (a new one gets it at once; one loaded after a restart, on the sender's next offer)."""
