# -*- test-case-name: tests.test_bootstrap_server -*-
"""
The bootstrap server's logic, shared by its two APIs and its dashboard: registration,
heartbeats, expiry, blocking and disconnecting peers, and the tasks those queue.

The live state is the L{Registry}, in memory; every change is written to the
L{BootstrapStore}, and the state is read back from it when the server starts
(L{BootstrapServer.load}), so registered peers, their last heartbeat, queued tasks, blocks and
the audit log survive a restart.  A peer is forgotten C{ttl} seconds after its last heartbeat,
by one timer set for the next peer due (no polling).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pnet_tx.bootstrap.authority import Authority
from p2pnet_tx.bootstrap.registry import (
    API_DOTNET,
    API_V1,
    RegistrationRefused,
    Registry,
    address_text,
)
from p2pnet_tx.bootstrap.store import AuditEntry, BootstrapStore, PeerRecord, QueuedTask
from p2pnet_tx.logtext import peer_text
from p2pnet_tx.packets import TaskType
from p2pnet_tx.tasks import AuthorityTask

__all__ = [
    "AUDIT_KEPT",
    "TOUCH_INTERVAL",
    "BootstrapServer",
    "UnknownPeer",
]

AUDIT_KEPT = 100
"""Audit entries kept in memory for the dashboard (all of them stay in the store)."""

TOUCH_INTERVAL = 60.0
"""Seconds between two writes of one peer's last heartbeat to the store."""

# Builds what a peer of an API is delivered for a signed task: (task, signed JSON) -> body.
TaskBody = Callable[[AuthorityTask, dict[str, Any]], Any]


class UnknownPeer(Exception):
    """An admin action names a peer that is not registered."""


class BootstrapServer:
    """
    Registration, heartbeats, expiry and admin actions.

    @param clock: tells the time and keeps the expiry timer.
    @param store: where every change is written.
    @param registry: the live state.
    @param authority: the mode, and the key tasks are signed with.
    @param heartbeat_interval: the seconds between heartbeats the server asks for.
    @param task_bodies: for each API, how a signed task is delivered to its peers.

    @ivar counters: what happened, by name (C{registered}, C{refused.blocked}...).
    @ivar audit: the latest admin actions, oldest first.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, store: BootstrapStore, registry: Registry,
                 authority: Authority, heartbeat_interval: float,
                 task_bodies: dict[str, TaskBody]) -> None:
        self.clock = clock
        self.store = store
        self.registry = registry
        self.authority = authority
        self.heartbeat_interval = heartbeat_interval
        self._task_bodies = task_bodies
        self.counters: Counter[str] = Counter()
        self.audit: deque[AuditEntry] = deque(maxlen=AUDIT_KEPT)
        self.ready = False
        self._expiry: IDelayedCall | None = None
        self._persisted: dict[str, float] = {}

    def set_task_bodies(self, task_bodies: dict[str, TaskBody]) -> None:
        """Say how a signed task is delivered to the peers of each API."""
        self._task_bodies = dict(task_bodies)

    # -- Lifecycle --------------------------------------------------------------------------------

    def load(self) -> Deferred[None]:
        """
        Create the store's tables if needed, read the stored state back and start the expiry
        timer; peers whose heartbeat is too old are forgotten at once.

        @return: a Deferred firing once the server is ready.
        """
        def loaded(state: Any) -> None:
            now = self.clock.seconds()
            self.registry.load(state.peers, state.tasks, state.blocks, now)
            self.audit.extend(state.audit)
            self.ready = True
            self.log.info("bootstrap server loaded {peers} peers, {tasks} queued tasks, "
                          "{blocks} blocks", peers=len(self.registry.peers),
                          tasks=len(state.tasks), blocks=len(state.blocks))
            self._expire()
        d = self.store.create_schema()
        d.addCallback(lambda store: store.load(AUDIT_KEPT))
        return d.addCallback(loaded)

    def stop(self) -> None:
        """Cancel the expiry timer."""
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    def _schedule(self) -> None:
        due = self.registry.next_expiry()
        if due is None:
            return
        if self._expiry is not None and self._expiry.active():
            if self._expiry.getTime() <= due:
                return
            self._expiry.cancel()
        self._expiry = self.clock.callLater(max(0.0, due - self.clock.seconds()), self._expire)

    def _expire(self) -> None:
        self._expiry = None
        gone = self.registry.expire(self.clock.seconds())
        if gone:
            self.counters["expired"] += len(gone)
            self.log.info("forgot {count} peers with no heartbeat for {ttl} s",
                          count=len(gone), ttl=self.registry.ttl)
            for record in gone:
                self._persisted.pop(record.identifier, None)
            self._write(self.store.remove_peers([r.identifier for r in gone]))
        self._schedule()

    def _write(self, d: Deferred[Any]) -> Deferred[Any]:
        def failed(failure: Failure) -> None:
            self.counters["store_errors"] += 1
            self.log.failure("the bootstrap store could not save a change", failure)
        return d.addErrback(failed)

    # -- Registration and heartbeats --------------------------------------------------------------

    def register(self, record: PeerRecord) -> Deferred[PeerRecord | None]:
        """
        Register a peer (or register it again: its address and port are updated).

        @return: a Deferred firing the record it replaced (or C{None}) once stored, or
            failing with L{RegistrationRefused}.
        """
        try:
            self.registry.check(record.identifier, record.ip, record.api, record.port)
        except RegistrationRefused as e:
            self.counters[f"refused.{e.code}"] += 1
            return fail(e)
        old = self.registry.add(record)
        self.counters["registered" if old is None else "registered_again"] += 1
        if old is None:
            self.log.info("{api} peer {identifier} registered from {ip}:{port}", api=record.api,
                          identifier=peer_text(record.identifier), ip=record.ip,
                          port=record.port)
        self._persisted[record.identifier] = record.last_seen
        self._schedule()
        d = self._write(self.store.save_peer(record))
        return d.addCallback(lambda _: old)

    def heartbeat(self, identifier: str, ip: str) -> tuple[PeerRecord, list[Any]] | None:
        """
        Note a heartbeat of a registered peer and take the tasks queued for it.

        @param identifier: the peer.
        @param ip: the source address of the heartbeat.
        @return: the peer and the bodies of its tasks, or C{None} if it is not registered (or
            expired).
        @raise RegistrationRefused: 403 if the peer's identifier or this address is blocked.
        """
        now = self.clock.seconds()
        known = self.registry.peers.get(identifier)
        if self.registry.is_blocked(identifier, ip, None if known is None else known.port):
            self.counters["refused.403"] += 1
            raise RegistrationRefused(403, "blocked by the operator of this server")
        record = self.registry.seen(identifier, now)
        if record is None:
            self.counters["heartbeat_unknown"] += 1
            return None
        self.counters["heartbeats"] += 1
        if now - self._persisted.get(identifier, 0.0) >= TOUCH_INTERVAL:
            self._persisted[identifier] = now
            self._write(self.store.touch_peer(identifier, now))
        tasks, expired = self.registry.take_tasks(identifier, now)
        done = tasks + expired
        if done:
            self.counters["tasks_delivered"] += len(tasks)
            self._write(self.store.remove_tasks([task.id for task in done]))
        return record, [task.body for task in tasks]

    # -- Admin actions ----------------------------------------------------------------------------

    def block(self, identifier: str, actor: str) -> Deferred[AuditEntry]:
        """
        Block a registered peer: forget it, refuse its identifier and its address (its IP
        and port: other peers behind the same IP, a NAT, are not blocked) from now on, and, in
        authority mode, queue a signed C{BlockAndRemovePeer} task naming its identifier for
        every other registered peer.

        @return: a Deferred firing the audit entry, or failing with L{UnknownPeer}.
        """
        record = self.registry.peers.get(identifier)
        if record is None:
            return fail(UnknownPeer(identifier))
        self._forget(record)
        address = address_text(record.ip, record.port)
        self.registry.blocked_identifiers.add(identifier)
        self.registry.blocked_addresses.add(address)
        now = self.clock.seconds()
        self._write(self.store.add_block("identifier", identifier, now))
        self._write(self.store.add_block("address", address, now))
        queued = self._broadcast(TaskType.BLOCK_AND_REMOVE_PEER, {"Identifier": identifier},
                                 record)
        return self._audited(actor, "block", identifier,
                             f"address {address}; {queued} tasks queued")

    def disconnect(self, identifier: str, actor: str) -> Deferred[AuditEntry]:
        """
        Drop a registered peer from the table (it may register again) and, in authority mode,
        queue a signed C{DisconnectPeer} task for every other registered peer.

        @return: a Deferred firing the audit entry, or failing with L{UnknownPeer}.
        """
        record = self.registry.peers.get(identifier)
        if record is None:
            return fail(UnknownPeer(identifier))
        self._forget(record)
        queued = self._broadcast(TaskType.DISCONNECT_PEER, {"Identifier": identifier}, record)
        return self._audited(actor, "disconnect", identifier,
                             f"address {record.ip}; {queued} tasks queued")

    def unblock(self, value: str, actor: str) -> Deferred[AuditEntry]:
        """
        Lift the block of an identifier or an address.

        @return: a Deferred firing the audit entry, or failing with L{UnknownPeer} if
            C{value} is not blocked.
        """
        kinds = [kind for kind in ("identifier", "ip", "address")
                 if value in self.registry.blocks(kind)]
        if not kinds:
            return fail(UnknownPeer(value))
        for kind in kinds:
            self.registry.blocks(kind).discard(value)
            self._write(self.store.remove_block(kind, value))
        return self._audited(actor, "unblock", value, "")

    def note(self, actor: str, action: str, target: str, detail: str = "") -> Deferred[AuditEntry]:
        """Write an audit entry for an action taken elsewhere (a login...); a failure to
        store it is logged."""
        return self._write(self._audited(actor, action, target, detail))

    def _forget(self, record: PeerRecord) -> None:
        self.registry.remove(record.identifier, self.clock.seconds())
        self._persisted.pop(record.identifier, None)
        self._write(self.store.remove_peers([record.identifier]))

    def _broadcast(self, task_type: TaskType, data: dict[str, str], about: PeerRecord) -> int:
        """Queue one signed task for every registered peer (authority mode); return how many."""
        if not self.authority.signs:
            return 0
        now = self.clock.seconds()
        task, signed = self.authority.task(task_type, data, now=now)
        queued = []
        for record in list(self.registry.peers.values()):
            if record.identifier == about.identifier:
                continue
            body = self._task_bodies[record.api](task, signed)
            entry = QueuedTask(f"{task.id}/{record.identifier}", record.identifier, body,
                               now, task.expires)
            dropped = self.registry.queue(entry)
            if dropped is not None:
                self.counters["tasks_dropped"] += 1
                self.log.warn("dropped the oldest task queued for {identifier}: its queue is "
                              "full", identifier=peer_text(record.identifier))
                self._write(self.store.remove_tasks([dropped.id]))
            queued.append(entry)
        if queued:
            self.counters["tasks_queued"] += len(queued)
            self._write(self.store.add_tasks(queued))
        return len(queued)

    def _audited(self, actor: str, action: str, target: str,
                 detail: str) -> Deferred[AuditEntry]:
        now = self.clock.seconds()
        self.log.info("admin {action} {target} by {actor}: {detail}", action=action,
                      target=peer_text(target), actor=actor, detail=detail)

        def written(entry: AuditEntry) -> AuditEntry:
            self.audit.append(entry)
            return entry

        return self.store.add_audit(now, actor, action, target, detail).addCallback(written)

    # -- Reading ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the dashboard shows: peers, queued tasks, blocks, counts, audit."""
        registry = self.registry
        return {
            "mode": self.authority.mode,
            "authority_key": self.authority.public_key_text,
            "ttl": registry.ttl,
            "heartbeat_interval": self.heartbeat_interval,
            "server_time": self.clock.seconds(),
            "counts": {"v1": registry.count(API_V1), "dotnet": registry.count(API_DOTNET),
                       "tasks": len(registry.queued())},
            "peers": [{"identifier": r.identifier, "api": r.api, "ip": r.ip, "port": r.port,
                       "display_name": r.display_name, "registered": r.registered,
                       "last_seen": r.last_seen}
                      for r in reversed(registry.peers.values())],
            "tasks": [{"id": t.id, "recipient": t.recipient, "created": t.created,
                       "expires": t.expires, "task_type": _task_type(t.body)}
                      for t in registry.queued()],
            "blocked": {"identifiers": sorted(registry.blocked_identifiers),
                        "ips": sorted(registry.blocked_ips),
                        "addresses": sorted(registry.blocked_addresses)},
            "history": [list(point) for point in registry.history.points],
            "audit": [{"seq": e.seq, "time": e.time, "actor": e.actor, "action": e.action,
                       "target": e.target, "detail": e.detail} for e in reversed(self.audit)],
            "counters": dict(self.counters),
        }


def _task_type(body: Any) -> int | None:
    """The task type of a queued task's body, whichever API's shape it has."""
    if isinstance(body, dict):
        task = body.get("task")
        if isinstance(task, dict) and isinstance(task.get("task_type"), int):
            return task["task_type"]
        if isinstance(body.get("TaskType"), int):
            return body["TaskType"]
    return None
