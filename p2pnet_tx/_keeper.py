# -*- test-case-name: tests.test_service -*-
"""
The machine behind L{p2pnet_tx.service.PeerConnectionService}: keep one configured peer
connected, redialling with backoff.

It has the contract of Twisted's L{ClientService <twisted.application.internet.ClientService>}
(C{start}, C{stop() -> Deferred}, C{when_connected()}, an injected clock and retry policy) and
its shape (an Automat C{TypeMachineBuilder} with a dataclass core, each state holding its own
data: C{Waiting} its L{IDelayedCall}, C{Connecting} its attempt, C{Connected} its channel), but
it is not a C{ClientService}, because our dial does not fit ClientService's:

  - ClientService dials an C{IStreamClientEndpoint} with a factory, and learns that a
    connection closed by wrapping the protocol that factory builds.  Our dial is
    C{network.connect(peer) -> Deferred[PeerChannel]}: the network builds the channel, dedupes
    dials, and may hand back a channel that already exists (the peer dialled us first, or
    gossip dialled it), a channel ClientService never built and so could never watch.  We
    watch it through C{channel.when_closed()} instead, and stop with C{channel.close()} (a
    Disconnect packet) rather than ClientService's C{transport.loseConnection()}.
  - ClientService retries every failure.  A peer that is this node (L{SelfConnection}) or is
    blocked (L{PeerBlocked}) must be given up on for good, with an error logged.
  - ClientService resets its backoff as soon as a connection is made.  Ours resets only once
    the peer trusts us (C{channel.when_trusted()}): a peer that accepts and then refuses every
    handshake is redialled ever more slowly, not every second.
  - A .NET peer (a network of the dotnet wire) that closes L{DOTNET_REFUSALS} connections in
    a row as soon as they are made, never trusting us, is refusing our IP until it restarts
    (its KnownPeers is never pruned): it is dialled only at the policy's longest wait from
    then on, and a warning says why, once, until it trusts us again.

The states and their transitions are drawn in C{docs/state-machines/keeper.dot}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from automat import TypeMachineBuilder
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.errors import PeerBlocked, SelfConnection
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.logtext import REASON_TEXT_LIMIT, peer_text

GIVE_UP_ON = (SelfConnection, PeerBlocked)
"""Dial failures after which a kept peer is not dialled again until the service restarts."""

DOTNET_REFUSALS = 3
"""Refusals in a row (connections a .NET peer closed at once, never trusting us) after which
its keeper waits its longest between dials (see L{REFUSAL_WINDOW})."""

REFUSAL_WINDOW = 2.0
"""Seconds: a connection closed this soon after it was made, never trusted, is a refusal."""

LONGEST_WAIT_AFTER = 64
"""The failure count at which a retry policy is asked for its longest wait."""

DOTNET_REFUSAL_EXPLANATION = (
    "{peer} closed {count} connections in a row as soon as they were made, never trusting "
    "us: an unmodified .NET P2PNet node refuses, until it is restarted, every IP it was ever "
    "connected to (its KnownPeers is never pruned); dialling it only every {delay} s from "
    "now on (restart the .NET node to connect again; see docs/dotnet.md)"
)


def doubling_backoff(
    initial_delay: float = 1.0, max_delay: float = 60.0
) -> Callable[[int], float]:
    """
    The default retry policy of a kept peer: wait C{initial_delay} after the first failure,
    then twice as long after each further one, up to C{max_delay}.

    @param initial_delay: seconds to wait after the first failure.
    @param max_delay: the longest wait.
    @return: a policy as L{ClientService <twisted.application.internet.ClientService>} takes:
        a callable from the number of failures in a row (1 or more) to seconds.
    """

    def policy(attempt: int) -> float:
        return min(initial_delay * 2.0 ** min(attempt - 1, 64), max_delay)

    return policy


@runtime_checkable
class KeptChannel(Protocol):
    """What a kept peer needs of a channel (a L{PeerChannel} has it)."""

    def when_trusted(self) -> Deferred[PeerChannel]:
        """Fires once the peer trusts us; fails if it never does."""

    def when_closed(self) -> Deferred[str]:
        """Fires with the close reason once the connection is gone."""

    def close(self, reason: str) -> Deferred[str]:
        """Say goodbye and close."""


class Dialer(Protocol):
    """What a kept peer needs of the network: a dial that dedupes (L{PeerNetwork.connect})."""

    def connect(self, peer: IPeer) -> Deferred[PeerChannel]:
        """Connect to C{peer}, or return the channel already open to it."""


class _Keeper(Protocol):
    """The inputs of the machine."""

    def start(self) -> None:
        """Start keeping the peer connected."""

    def stop(self) -> Deferred[None]:
        """Stop: cancel a pending dial or retry, close the kept channel; fire once it is gone."""

    def when_connected(self) -> Deferred[PeerChannel]:
        """The kept channel, now or once connected."""

    def _connected(self, channel: PeerChannel) -> None:
        """The dial gave us a channel."""

    def _failed(self, failure: Failure) -> None:
        """The dial failed in a way worth retrying."""

    def _refused(self, failure: Failure) -> None:
        """The dial failed for good (L{GIVE_UP_ON})."""

    def _retry(self) -> None:
        """The wait before the next dial is over."""

    def _trusted(self, channel: PeerChannel) -> None:
        """A channel we kept became trusted."""

    def _closed(self, reason: str) -> None:
        """The kept channel is gone."""


@dataclass
class _Core:
    """What every state shares: the collaborators, the failure count and the waiters."""

    network: Dialer
    peer: IPeer
    clock: IReactorTime
    retry_policy: Callable[[int], float]
    log: Logger
    failed_attempts: int = 0
    channel: PeerChannel | None = None
    refusal_limit: int | None = None
    refusals: int = 0
    refusal_logged: bool = False
    connected_at: float = 0.0
    kept_trusted: bool = False
    stop_waiters: list[Deferred[None]] = field(default_factory=list)
    connect_waiters: list[Deferred[PeerChannel]] = field(default_factory=list)

    def note_close(self) -> None:
        """The kept channel closed: count it as a refusal if it closed at once, untrusted."""
        if not self.kept_trusted and (
            self.clock.seconds() - self.connected_at <= REFUSAL_WINDOW
        ):
            self.refusals += 1
        else:
            self.refusals = 0

    def retry_delay(self) -> float:
        """The wait before the next dial: the policy's, or its longest for a refusing peer."""
        delay = self.retry_policy(self.failed_attempts)
        if self.refusal_limit is None or self.refusals < self.refusal_limit:
            return delay
        delay = max(delay, self.retry_policy(LONGEST_WAIT_AFTER))
        if not self.refusal_logged:
            self.refusal_logged = True
            self.log.warn(DOTNET_REFUSAL_EXPLANATION, peer=self.peer, count=self.refusals,
                          delay=delay)
        return delay

    def wait_for_stop(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self.stop_waiters.append(waiter)
        return waiter

    def finish_stopping(self) -> None:
        waiting, self.stop_waiters = self.stop_waiters, []
        for waiter in waiting:
            waiter.callback(None)

    def wait_for_connection(self) -> Deferred[PeerChannel]:
        waiter: Deferred[PeerChannel] = Deferred()
        self.connect_waiters.append(waiter)
        return waiter

    def fire_connect_waiters(self, result: PeerChannel | Failure) -> None:
        waiting, self.connect_waiters = self.connect_waiters, []
        for waiter in waiting:
            waiter.callback(result)


def _build() -> Callable[[_Core], _Keeper]:
    machine = TypeMachineBuilder(_Keeper, _Core)

    # -- State data: what each state holds, made on entry --------------------------------------

    def dial(keeper: _Keeper, core: _Core, *ignored: object) -> Deferred[PeerChannel]:
        attempt = core.network.connect(core.peer)

        def failed(failure: Failure) -> None:
            if failure.check(*GIVE_UP_ON):
                keeper._refused(failure)
            else:
                keeper._failed(failure)

        attempt.addCallbacks(keeper._connected, failed)
        return attempt

    def watch(keeper: _Keeper, core: _Core, channel: KeptChannel) -> KeptChannel:
        core.channel = channel
        core.connected_at = core.clock.seconds()
        core.kept_trusted = False
        core.log.info("keeping {peer} connected on {channel}", peer=core.peer, channel=channel)
        channel.when_trusted().addCallbacks(lambda _: keeper._trusted(channel), lambda _: None)

        def closed(reason: object) -> None:
            core.note_close()
            keeper._closed(reason if isinstance(reason, str) else "closed")

        channel.when_closed().addBoth(closed)
        core.fire_connect_waiters(channel)
        return channel

    def wait_for_retry(keeper: _Keeper, core: _Core, why: Failure | str) -> IDelayedCall:
        core.channel = None
        core.failed_attempts += 1
        delay = core.retry_delay()
        core.log.info(
            "{peer}: {why}; dialling again in {delay} s (attempt {attempt})",
            peer=core.peer,
            why=peer_text(why.getErrorMessage() if isinstance(why, Failure) else why,
                          REASON_TEXT_LIMIT),
            delay=delay, attempt=core.failed_attempts + 1,
        )
        return core.clock.callLater(delay, keeper._retry)

    def give_up(keeper: _Keeper, core: _Core, failure: Failure) -> Failure:
        core.log.error("not keeping {peer} connected: {why}", peer=core.peer,
                       why=peer_text(failure.getErrorMessage(), REASON_TEXT_LIMIT))
        core.fire_connect_waiters(failure)
        return failure

    idle = machine.state("Idle")
    connecting = machine.state("Connecting", dial)
    connected = machine.state("Connected", watch)
    waiting = machine.state("Waiting", wait_for_retry)
    gave_up = machine.state("GaveUp", give_up)
    disconnecting = machine.state("Disconnecting")
    restarting = machine.state("Restarting")

    # -- Starting -------------------------------------------------------------------------------

    @idle.upon(_Keeper.start).to(connecting)
    def begin(keeper: _Keeper, core: _Core) -> None:
        core.failed_attempts = 0

    connecting.upon(_Keeper.start).loop().returns(None)
    connected.upon(_Keeper.start).loop().returns(None)
    waiting.upon(_Keeper.start).loop().returns(None)
    gave_up.upon(_Keeper.start).loop().returns(None)
    disconnecting.upon(_Keeper.start).to(restarting).returns(None)
    restarting.upon(_Keeper.start).loop().returns(None)

    # -- Dialling, waiting, giving up -----------------------------------------------------------

    connecting.upon(_Keeper._connected).to(connected).returns(None)
    connecting.upon(_Keeper._failed).to(waiting).returns(None)
    connecting.upon(_Keeper._refused).to(gave_up).returns(None)
    waiting.upon(_Keeper._retry).to(connecting).returns(None)
    connected.upon(_Keeper._closed).to(waiting).returns(None)

    @connected.upon(_Keeper._trusted).loop()
    def trusted(keeper: _Keeper, core: _Core, kept: KeptChannel, channel: PeerChannel) -> None:
        if channel is kept:
            # Only a peer that trusts us resets the backoff: one that accepts and then refuses
            # every handshake must not be redialled every second.
            core.failed_attempts = 0
            core.kept_trusted = True
            core.refusals = 0
            core.refusal_logged = False

    # A trust event of a channel no longer kept (it may be delivered late) changes nothing.
    for state in (idle, connecting, waiting, gave_up, disconnecting, restarting):
        state.upon(_Keeper._trusted).loop().returns(None)

    # -- Stopping -------------------------------------------------------------------------------

    @idle.upon(_Keeper.stop).to(idle)
    def stopped_already(keeper: _Keeper, core: _Core) -> Deferred[None]:
        core.fire_connect_waiters(Failure(CancelledError()))
        return succeed(None)

    @gave_up.upon(_Keeper.stop).to(idle)
    def stop_given_up(keeper: _Keeper, core: _Core, failure: Failure) -> Deferred[None]:
        return succeed(None)

    @waiting.upon(_Keeper.stop).to(idle)
    def stop_waiting(keeper: _Keeper, core: _Core, retry: IDelayedCall) -> Deferred[None]:
        retry.cancel()
        core.fire_connect_waiters(Failure(CancelledError()))
        return succeed(None)

    @connecting.upon(_Keeper.stop).to(disconnecting)
    def stop_connecting(
        keeper: _Keeper, core: _Core, attempt: Deferred[PeerChannel]
    ) -> Deferred[None]:
        stopped = core.wait_for_stop()
        attempt.cancel()  # its failure (or arrival) ends Disconnecting
        return stopped

    @connected.upon(_Keeper.stop).to(disconnecting)
    def stop_connected(keeper: _Keeper, core: _Core, channel: KeptChannel) -> Deferred[None]:
        stopped = core.wait_for_stop()
        channel.close("no longer kept")  # its when_closed() ends Disconnecting
        return stopped

    @disconnecting.upon(_Keeper.stop).loop()
    @restarting.upon(_Keeper.stop).to(disconnecting)
    def stop_again(keeper: _Keeper, core: _Core) -> Deferred[None]:
        return core.wait_for_stop()

    @disconnecting.upon(_Keeper._closed).to(idle)
    @disconnecting.upon(_Keeper._failed).to(idle)
    @disconnecting.upon(_Keeper._refused).to(idle)
    def gone(keeper: _Keeper, core: _Core, why: object) -> None:
        core.channel = None
        core.fire_connect_waiters(Failure(CancelledError()))
        core.finish_stopping()

    @disconnecting.upon(_Keeper._connected).loop()
    @restarting.upon(_Keeper._connected).loop()
    def arrived_while_stopping(keeper: _Keeper, core: _Core, channel: KeptChannel) -> None:
        # A dial whose cancel still delivered a channel: close it, and finish on its close.
        channel.when_closed().addBoth(lambda _: keeper._closed("no longer kept"))
        channel.close("no longer kept")

    @restarting.upon(_Keeper._closed).to(connecting)
    @restarting.upon(_Keeper._failed).to(connecting)
    @restarting.upon(_Keeper._refused).to(connecting)
    def gone_then_restart(keeper: _Keeper, core: _Core, why: object) -> None:
        core.channel = None
        core.failed_attempts = 0
        core.finish_stopping()

    # -- Waiting for a connection ---------------------------------------------------------------

    @idle.upon(_Keeper.when_connected).loop()
    @connecting.upon(_Keeper.when_connected, nodata=True).loop()
    @waiting.upon(_Keeper.when_connected, nodata=True).loop()
    @disconnecting.upon(_Keeper.when_connected).loop()
    @restarting.upon(_Keeper.when_connected).loop()
    def await_connection(keeper: _Keeper, core: _Core) -> Deferred[PeerChannel]:
        return core.wait_for_connection()

    @connected.upon(_Keeper.when_connected).loop()
    def connected_now(
        keeper: _Keeper, core: _Core, channel: KeptChannel
    ) -> Deferred[PeerChannel]:
        return succeed(channel)  # type: ignore[arg-type]

    @gave_up.upon(_Keeper.when_connected).loop()
    def never(keeper: _Keeper, core: _Core, failure: Failure) -> Deferred[PeerChannel]:
        return fail(failure)

    return machine.build()


KeeperMachine = _build()
