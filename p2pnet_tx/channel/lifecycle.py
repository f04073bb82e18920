# -*- test-case-name: tests.test_channel_lifecycle -*-
"""
The lifecycle of a channel, as one Automat machine (see C{docs/state-machines/channel.dot})::

    connecting -> untrusted -> awaiting_identity -> handshaking -> trusted
        -> closing | aborting -> closed

  - B{connecting}: no connection yet.
  - B{untrusted}: open and gated, with no handshake running (no trust protocol, or the
    application untrusted the peer).
  - B{awaiting_identity}: the peer's first packet must be its Identity; owns the handshake
    deadline.
  - B{handshaking}: the trust protocol runs; owns the handshake deadline and the protocol's
    Deferred.
  - B{trusted}: every packet type passes the gate.
  - B{closing}: a Disconnect was said (or heard) and the connection closes once the writes
    drain; owns the timer that aborts a close that does not drain.
  - B{aborting}: the connection was dropped at once (a peer that broke the rules, ran out of
    time or stopped reading); the transport reports the loss on its next turn.
  - B{closed}: the connection is gone.

The machine does no I/O: it calls the channel's C{_lifecycle_*} actions.  Each state that owns
a timer cancels it on every transition out of it, so no timer outlives its state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from automat import TypeMachineBuilder
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx.errors import HandshakeTimeout, TrustRefused

if TYPE_CHECKING:
    from p2pnet_tx.channel.protocol import PeerChannel

_log = Logger(namespace="p2pnet_tx.channel.lifecycle")


class ChannelLifecycle(Protocol):
    """The inputs of a channel's lifecycle."""

    def connected(self) -> None:
        "The connection is made."

    def expect_identity(self) -> None:
        "The peer's first packet must be its Identity."

    def start_handshake(self) -> None:
        "Run the trust protocol."

    def open(self) -> None:
        "The peer was identified and no trust protocol runs."

    def trust(self) -> None:
        "Trust the peer (the trust protocol said so, or the application)."

    def untrust(self) -> None:
        "Stop trusting the peer."

    def handshake_failed(self, error: TrustRefused) -> None:
        "The trust protocol refused the peer, failed, or ran out of time."

    def close(self, reason: str) -> None:
        "Say goodbye and close once the writes drain."

    def abort(self, reason: str) -> None:
        "Say goodbye and drop the connection at once."

    def peer_left(self, reason: str) -> None:
        "The peer said goodbye: close without answering."

    def connection_lost(self, reason: str) -> None:
        "The connection is gone."


@dataclass(slots=True)
class LifecycleCore:
    """
    What the lifecycle acts on.

    @ivar channel: the channel whose C{_lifecycle_*} actions the machine calls.
    @ivar clock: the clock of the timers.
    @ivar deadline: when the handshake must be over, on C{clock}.
    """

    channel: PeerChannel
    clock: IReactorTime
    deadline: float = 0.0


@dataclass(slots=True)
class Handshake:
    """
    The data of the awaiting-identity and handshaking states: the deadline, and the trust
    protocol's Deferred while it runs.
    """

    deadline: IDelayedCall | None
    decision: Deferred[Any] | None = None

    def cancel(self) -> None:
        """
        Cancel the deadline and a decision still pending, and let go of both: Automat keeps
        the last state data after a state without data is entered.
        """
        deadline, self.deadline = self.deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()
        decision, self.decision = self.decision, None
        if decision is not None and not decision.called:
            decision.cancel()


def _schedule_deadline(machine: ChannelLifecycle, core: LifecycleCore) -> IDelayedCall:
    timeout = core.channel.limits.handshake_timeout
    delay = max(core.deadline - core.clock.seconds(), 0.0)
    return core.clock.callLater(delay, lambda: machine.handshake_failed(HandshakeTimeout(timeout)))


def _await_identity(machine: ChannelLifecycle, core: LifecycleCore) -> Handshake:
    return Handshake(_schedule_deadline(machine, core))


def _run_trust_protocol(machine: ChannelLifecycle, core: LifecycleCore) -> Handshake:
    handshake = Handshake(_schedule_deadline(machine, core))
    decision = maybeDeferred(core.channel._trust_protocol, core.channel)  # type: ignore[arg-type]
    if not decision.called:
        handshake.decision = decision

    def decided(result: object) -> None:
        handshake.decision = None
        if result is True:
            machine.trust()
        elif result is False:
            machine.handshake_failed(TrustRefused(f"trust protocol refused {core.channel.peer}"))
        else:
            _log.error("trust protocol {protocol!r} returned {result!r}, not a bool",
                       protocol=core.channel._trust_protocol, result=result)
            machine.handshake_failed(TrustRefused(f"trust protocol returned {result!r}, not a bool"))

    def failed(failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # We cancelled it: the state it belonged to is over.
        handshake.decision = None
        if not failure.check(TrustRefused):
            _log.failure("trust protocol failed for {peer}", failure, peer=core.channel.peer)
        error = failure.value if failure.check(TrustRefused) else TrustRefused(str(failure.value))
        machine.handshake_failed(error)  # type: ignore[arg-type]

    decision.addCallbacks(decided, failed)
    return handshake


def _close_timer(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> IDelayedCall:
    return core.clock.callLater(core.channel.limits.close_timeout, core.channel._lifecycle_stuck)


_builder = TypeMachineBuilder(ChannelLifecycle, LifecycleCore)
connecting = _builder.state("connecting")
untrusted = _builder.state("untrusted")
awaiting_identity = _builder.state("awaiting_identity", _await_identity)
handshaking = _builder.state("handshaking", _run_trust_protocol)
trusted = _builder.state("trusted")
closing = _builder.state("closing", _close_timer)
aborting = _builder.state("aborting")
closed = _builder.state("closed")

_OPEN_STATES = (untrusted, trusted)
_HANDSHAKE_STATES = (awaiting_identity, handshaking)


# -- Opening -------------------------------------------------------------------------------------



@connecting.upon(ChannelLifecycle.connected).to(untrusted)
def _connected(machine: ChannelLifecycle, core: LifecycleCore) -> None:
    core.deadline = core.clock.seconds() + core.channel.limits.handshake_timeout
    core.channel._lifecycle_opened()


for _ignored in (ChannelLifecycle.trust, ChannelLifecycle.untrust):
    connecting.upon(_ignored).loop().returns(None)


@connecting.upon(ChannelLifecycle.close).loop()
@connecting.upon(ChannelLifecycle.abort).loop()
def _not_connected(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> None:
    pass


@connecting.upon(ChannelLifecycle.connection_lost).to(closed)
def _never_connected(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> None:
    core.channel._lifecycle_closed(reason)




@untrusted.upon(ChannelLifecycle.expect_identity).to(awaiting_identity)
def _expect_identity(machine: ChannelLifecycle, core: LifecycleCore) -> None:
    core.channel._lifecycle_awaiting_identity()


untrusted.upon(ChannelLifecycle.start_handshake).to(handshaking).returns(None)
untrusted.upon(ChannelLifecycle.untrust).loop().returns(None)
trusted.upon(ChannelLifecycle.trust).loop().returns(None)
trusted.upon(ChannelLifecycle.start_handshake).loop().returns(None)
trusted.upon(ChannelLifecycle.handshake_failed).loop().returns(None)
# Inputs that cannot change anything in these states (the owner may trust or close a channel
# while it is being told of the connection, before the channel says what comes next).
for _input in (ChannelLifecycle.expect_identity, ChannelLifecycle.open):
    trusted.upon(_input).loop().returns(None)
untrusted.upon(ChannelLifecycle.open).loop().returns(None)
untrusted.upon(ChannelLifecycle.handshake_failed).loop().returns(None)


@awaiting_identity.upon(ChannelLifecycle.start_handshake).to(handshaking)
def _identified(machine: ChannelLifecycle, core: LifecycleCore, data: Handshake) -> None:
    data.cancel()  # handshaking has its own deadline, at the same time


@awaiting_identity.upon(ChannelLifecycle.open).to(untrusted)
def _identified_untrusted(machine: ChannelLifecycle, core: LifecycleCore, data: Handshake) -> None:
    data.cancel()


for _state in _HANDSHAKE_STATES:
    _state.upon(ChannelLifecycle.untrust).loop().returns(None)

# The peer's identity comes first: trusting it before is meaningless, and ignored.
awaiting_identity.upon(ChannelLifecycle.trust).loop().returns(None)


# -- Trust ---------------------------------------------------------------------------------------


@untrusted.upon(ChannelLifecycle.trust).to(trusted)
def _trusted(machine: ChannelLifecycle, core: LifecycleCore) -> None:
    core.channel._lifecycle_trusted()


@handshaking.upon(ChannelLifecycle.trust).to(trusted)
def _handshake_succeeded(machine: ChannelLifecycle, core: LifecycleCore, data: Handshake) -> None:
    data.cancel()
    core.channel._lifecycle_trusted()


@trusted.upon(ChannelLifecycle.untrust).to(untrusted)
def _untrusted(machine: ChannelLifecycle, core: LifecycleCore) -> None:
    core.channel._lifecycle_untrusted()


@awaiting_identity.upon(ChannelLifecycle.handshake_failed).loop()
@handshaking.upon(ChannelLifecycle.handshake_failed).loop()
def _handshake_failed(
    machine: ChannelLifecycle, core: LifecycleCore, data: Handshake, error: TrustRefused
) -> None:
    core.channel._lifecycle_handshake_failed(error)
    machine.abort(f"trust refused: {error}" if not isinstance(error, HandshakeTimeout)
                  else "handshake timeout")


# -- Closing -------------------------------------------------------------------------------------
# The same four ways out of every open state; a state that holds a handshake cancels it first.


def _close(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> None:
    core.channel._lifecycle_goodbye(reason, graceful=True)


def _abort(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> None:
    core.channel._lifecycle_goodbye(reason, graceful=False)


def _peer_left(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> None:
    core.channel._lifecycle_peer_left(reason)


def _lost(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> None:
    core.channel._lifecycle_closing(reason)
    core.channel._lifecycle_closed(reason)


def _cancelling_handshake(
    action: Callable[[ChannelLifecycle, LifecycleCore, str], None],
) -> Callable[[ChannelLifecycle, LifecycleCore, Handshake, str], None]:
    def leave(machine: ChannelLifecycle, core: LifecycleCore, data: Handshake, reason: str) -> None:
        data.cancel()
        action(machine, core, reason)

    return leave


for _input, _target, _action in (
    (ChannelLifecycle.close, closing, _close),
    (ChannelLifecycle.abort, aborting, _abort),
    (ChannelLifecycle.peer_left, closing, _peer_left),
    (ChannelLifecycle.connection_lost, closed, _lost),
):
    for _state in _OPEN_STATES:
        _state.upon(_input).to(_target)(_action)
    for _state in _HANDSHAKE_STATES:
        _state.upon(_input).to(_target)(_cancelling_handshake(_action))


@closing.upon(ChannelLifecycle.connection_lost).to(closed)
def _closed(machine: ChannelLifecycle, core: LifecycleCore, data: IDelayedCall,
            reason: str) -> None:
    if data.active():
        data.cancel()
    core.channel._lifecycle_closed(reason)


@aborting.upon(ChannelLifecycle.connection_lost).to(closed)
def _aborted(machine: ChannelLifecycle, core: LifecycleCore, reason: str) -> None:
    core.channel._lifecycle_closed(reason)


for _input in (
    ChannelLifecycle.trust, ChannelLifecycle.untrust, ChannelLifecycle.close,
    ChannelLifecycle.abort, ChannelLifecycle.peer_left, ChannelLifecycle.handshake_failed,
    ChannelLifecycle.start_handshake, ChannelLifecycle.open, ChannelLifecycle.expect_identity,
):
    closing.upon(_input, nodata=True).loop().returns(None)
    aborting.upon(_input).loop().returns(None)
    closed.upon(_input).loop().returns(None)
closed.upon(ChannelLifecycle.connection_lost).loop().returns(None)

# Every other input leaves its state as it is, so that no public method of a channel can raise
# NoTransition whatever its state.  Only "connected" is left out where it cannot come again: a
# second connectionMade is a bug to be told about.
for _input in (
    ChannelLifecycle.expect_identity, ChannelLifecycle.handshake_failed, ChannelLifecycle.open,
    ChannelLifecycle.peer_left, ChannelLifecycle.start_handshake,
):
    connecting.upon(_input).loop().returns(None)
for _input in (
    ChannelLifecycle.expect_identity, ChannelLifecycle.open, ChannelLifecycle.start_handshake,
):
    handshaking.upon(_input).loop().returns(None)
awaiting_identity.upon(ChannelLifecycle.expect_identity).loop().returns(None)

new_lifecycle = _builder.build()
"""C{new_lifecycle(LifecycleCore(channel, clock)) -> ChannelLifecycle}: a fresh lifecycle."""
