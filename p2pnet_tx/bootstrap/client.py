# -*- test-case-name: tests.test_bootstrap_client -*-
"""
The node's bootstrap client: registers with a bootstrap server, heartbeats, dials the peers
it learns and hands authority tasks to the L{TaskRunner<p2pnet_tx.task_runner.TaskRunner>}.

L{BootstrapClient} is one service per server URL; L{BootstrapService} holds them all, and the
task runner, as the node's C{bootstrap} part.  HTTP goes through an injected treq-style client
(C{treq}, an C{HTTPClient}, or C{treq.testing.StubTreq} in tests); time through the injected
clock.  The server's API is C{/v1} (L{p2pnet_tx.bootstrap.v1}) or, with C{api="dotnet"}, the
.NET P2PBootstrap API (L{p2pnet_tx.bootstrap.dotnet_client}), whose heartbeats may also carry
tasks that cannot be verified (C{unverifiable}): those are refused, never run.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx.bootstrap.http import NotRegistered
from p2pnet_tx.packets import CollectionSharePacket
from p2pnet_tx.peer import GenericPeer

if TYPE_CHECKING:
    from p2pnet_tx.bootstrap.v1 import PeerEntry
    from p2pnet_tx.network import PeerNetwork
    from p2pnet_tx.packets import NetworkTask
    from p2pnet_tx.task_runner import TaskRunner

__all__ = ["API_CHOICES", "MODE_CHOICES", "Backoff", "BootstrapClient", "BootstrapService"]

API_CHOICES = ("v1", "dotnet")
"""The values of C{--bootstrap-api}."""

MODE_CHOICES = ("trustless", "authority")
"""The values of C{--bootstrap-mode}."""

MAX_PEERS_TAKEN = 32
"""The most peers taken from one reply (RELIABILITY.md: 32 per seed, as Bitcoin Core)."""

DOTNET_MAX_FAILURES = 5
"""The .NET client stops after this many failures in total."""

MIN_INTERVAL = 1.0
MAX_INTERVAL = 600.0


class Backoff:
    """
    Exponential backoff with jitter: the n-th failure in a row waits
    C{min(maximum, initial * 2 ** (n - 1))}, times a factor drawn from [0.5, 1).

    @param random: returns a float in [0, 1); injected so tests are exact.
    """

    def __init__(
        self, initial: float = 1.0, maximum: float = 300.0,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._random = random

    def delay(self, failures: int) -> float:
        """The seconds to wait after C{failures} failures in a row (1 or more)."""
        base = min(self.maximum, self.initial * 2 ** min(failures - 1, 32))
        return base * (0.5 + self._random() / 2)


class BootstrapClient(Service):
    """
    Registers with one bootstrap server, then heartbeats it every interval it names.

    A heartbeat answered 404 registers again at once; any other failure (connection, timeout,
    non-2xx, a reply of the wrong shape) retries the same step after a L{Backoff} delay (or the
    server's C{Retry-After}, if longer).  With C{api="dotnet"} the client stops after
    L{DOTNET_MAX_FAILURES} failures in total, as the .NET client does.

    The peers learnt (at most L{MAX_PEERS_TAKEN} a reply, never this node) go to the network's
    peer-list entry point, L{PeerNetwork.process_peer_list
    <p2pnet_tx.network.PeerNetwork.process_peer_list>}, so they are remembered and dialled
    under the gossip rate and the dial budget, as peers learnt from a trusted peer are.

    @param network: the node's network.
    @param api: the server's API: an object with C{register(port) -> Deferred[reply]} and
        C{heartbeat() -> Deferred[reply]} (L{V1Api<p2pnet_tx.bootstrap.http.V1Api>}, ...).
    @param clock: the clock of the heartbeats and backoff.
    @param port: returns a Deferred firing with the port this node listens on.
    @param runner: runs the tasks the server delivers (authority mode); C{None} ignores them.
    @param backoff: the delays after failures.
    @param max_failures: stop after this many failures in total (C{None}: never).
    @ivar counters: C{registrations}, C{reregistrations}, C{heartbeats}, C{failures},
        C{peers_learnt}, C{peers_skipped}, C{tasks_received}, C{tasks_ignored}.
    """

    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        api: Any,
        clock: IReactorTime,
        *,
        url: str,
        port: Callable[[], Deferred[int]] | None = None,
        runner: TaskRunner | None = None,
        backoff: Backoff | None = None,
        max_failures: int | None = None,
    ) -> None:
        self.url = url
        self._network = network
        self._api = api
        self._clock = clock
        self._port = port or (lambda: succeed(network.listening_port))
        self._runner = runner
        self._backoff = Backoff() if backoff is None else backoff
        self._max_failures = max_failures
        self.counters: Counter[str] = Counter()
        self.state = "stopped"
        self.interval: float | None = None
        self.last_error: str | None = None
        self._in_row = 0
        self._listen_port: int | None = None
        self._call: IDelayedCall | None = None
        self._pending: Deferred[Any] | None = None

    def status(self) -> dict[str, Any]:
        """What C{/api/status} shows of this server."""
        return {
            "url": self.url, "state": self.state, "heartbeat_interval": self.interval,
            "last_error": self.last_error, **dict(sorted(self.counters.items())),
        }

    def startService(self) -> None:
        """Register once the node listens (its port is what the server records)."""
        super().startService()
        self.state = "starting"
        waiting = self._pending = self._port()
        waiting.addCallbacks(self._listening, self._not_listening)

    def stopService(self) -> None:
        """Cancel the request under way and the timer."""
        super().stopService()
        self.state = "stopped"
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()

    def _listening(self, port: int) -> None:
        self._listen_port = port
        self._step("register")

    def _not_listening(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self.log.failure("bootstrap {url}: the node is not listening", failure, url=self.url)

    # -- The steps -----------------------------------------------------------------------------

    def _step(self, step: str) -> None:
        self._call = None
        if not self.running:
            return
        self.state = "registering" if step == "register" else "registered"
        assert self._listen_port is not None
        d = self._api.register(self._listen_port) if step == "register" else self._api.heartbeat()
        self._pending = d
        d.addBoth(self._settled, d)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(step,), errbackArgs=(step,))
        d.addErrback(lambda f: self.log.failure("bootstrap {url}: {step} step failed", f,
                                                url=self.url, step=step))

    def _settled(self, result: Any, d: Deferred[Any]) -> Any:
        if self._pending is d:
            self._pending = None
        return result

    def _answered(self, reply: Any, step: str) -> None:
        self._in_row = 0
        self.last_error = None
        if step == "register":
            self.counters["registrations"] += 1
            self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, reply.heartbeat_interval))
            self.log.info("bootstrap {url}: registered ({mode} server), {count} peers, "
                          "heartbeat every {interval} s", url=self.url, mode=reply.mode,
                          count=len(reply.peers), interval=self.interval)
            self._check_mode(reply)
        else:
            self.counters["heartbeats"] += 1
            self._tasks(reply.tasks, getattr(reply, "unverifiable", []))
        self.counters["peers_skipped"] += reply.skipped
        self._learn(reply.peers)
        self._later(self.interval or MIN_INTERVAL, "heartbeat")

    def _failed(self, failure: Failure, step: str) -> None:
        if failure.check(CancelledError) and not self.running:
            return
        if failure.check(NotRegistered):
            self.counters["reregistrations"] += 1
            self.log.info("bootstrap {url}: not registered any more: registering again",
                          url=self.url)
            self._later(0, "register")
            return
        self.counters["failures"] += 1
        self._in_row += 1
        self.last_error = failure.getErrorMessage()
        if self._max_failures is not None and self.counters["failures"] >= self._max_failures:
            self.state = "given up"
            self.log.error("bootstrap {url}: {step} failed ({why}); {count} failures in all: "
                           "giving up", url=self.url, step=step, why=self.last_error,
                           count=self.counters["failures"])
            return
        delay = self._backoff.delay(self._in_row)
        retry_after = getattr(failure.value, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._backoff.maximum))
        self.state = "backing off"
        self.log.warn("bootstrap {url}: {step} failed ({why}); again in {delay:.1f} s",
                      url=self.url, step=step, why=self.last_error, delay=delay)
        self._later(delay, step)

    def _later(self, delay: float, step: str) -> None:
        if self.running:
            self._call = self._clock.callLater(delay, self._step, step)

    def _check_mode(self, reply: Any) -> None:
        if self._runner is not None and reply.mode != "authority":
            self.log.warn("bootstrap {url}: this node expects an authority, the server is "
                          "{mode}: no task will run", url=self.url, mode=reply.mode)

    def _tasks(self, tasks: list[Any], unverifiable: list[NetworkTask]) -> None:
        count = len(tasks) + len(unverifiable)
        self.counters["tasks_received"] += count
        if self._runner is None:
            if count:
                self.counters["tasks_ignored"] += count
                self.log.info("bootstrap {url}: {count} tasks ignored (trustless mode)",
                              url=self.url, count=count)
            return
        for signed in tasks:
            self._runner.run_signed_task(signed)
        for task in unverifiable:
            self._runner.reject_unverifiable(
                task, "signed with PGP by a .NET authority, which this node cannot check")

    def _learn(self, peers: list[PeerEntry]) -> None:
        learned = []
        for entry in peers[:MAX_PEERS_TAKEN]:
            if entry.identifier == self._network.identifier:
                continue
            learned.append(GenericPeer(entry.ip, entry.port, entry.identifier))
        self.counters["peers_skipped"] += max(0, len(peers) - MAX_PEERS_TAKEN)
        if learned:
            self.counters["peers_learnt"] += len(learned)
            self._network.process_peer_list(CollectionSharePacket(peers=learned))


class BootstrapService(MultiService):
    """
    The node's C{bootstrap} part: one L{BootstrapClient} per server, and the task runner.

    @ivar clients: the clients, in the order of the URLs.
    @ivar runner: the task runner (authority mode), or C{None}.
    """

    def __init__(self, clients: list[BootstrapClient], runner: TaskRunner | None) -> None:
        super().__init__()
        self.clients = clients
        self.runner = runner
        for client in clients:
            client.setServiceParent(self)

    def status(self) -> dict[str, Any]:
        """What C{/api/status} shows under C{bootstrap}."""
        result: dict[str, Any] = {
            "mode": "authority" if self.runner is not None else "trustless",
            "servers": [client.status() for client in self.clients],
        }
        if self.runner is not None:
            result.update(self.runner.status())
        return result

    def run_signed_task(self, signed: Any) -> str:
        """Run a signed task that arrived another way (see L{TaskRunner.run_signed_task})."""
        if self.runner is None:
            return "rejected: forged: this node trusts no authority (trustless mode)"
        return self.runner.run_signed_task(signed)
