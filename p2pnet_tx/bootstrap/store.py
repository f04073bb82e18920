# -*- test-case-name: tests.test_bootstrap_store -*-
"""
What a bootstrap server keeps on disk: registered peers with their last heartbeat, queued
tasks, blocked addresses and identifiers, and the audit log of admin actions.

One SQLite file, reached through L{twisted.enterprise.adbapi} with one connection
(C{cp_min=cp_max=1}): every call returns a L{Deferred}, and the statements run one after the
other in the order they were made, on the pool's one thread, never on the reactor's.  The
schema is created when the store is opened, so a new file and an old one are used alike.

The server keeps its live state in memory (L{p2pnet_tx.bootstrap.registry}) and writes every
change here; it reads the file back once, when it starts.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import attrs
from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore

__all__ = [
    "DB_FILE",
    "AuditEntry",
    "BootstrapStore",
    "PeerRecord",
    "QueuedTask",
    "StoredState",
]

DB_FILE = "bootstrap.sqlite3"
"""The name of the database file in the server's data directory."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS peers (
        identifier TEXT PRIMARY KEY,
        api TEXT NOT NULL,
        public_key TEXT,
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        display_name TEXT,
        registered REAL NOT NULL,
        last_seen REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        recipient TEXT NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS tasks_by_recipient ON tasks (recipient)",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS blocks (
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        time REAL NOT NULL,
        PRIMARY KEY (kind, value))""",
)


@attrs.define
class PeerRecord:
    """
    One registered peer.

    @ivar identifier: its identifier (derived from C{public_key} for the C{v1} API; whatever
        the client said for the C{dotnet} API, which proves nothing).
    @ivar api: C{"v1"} or C{"dotnet"}: the API it registered through, and so the wire it
        speaks; each API's peer lists hold only its own peers.
    @ivar public_key: the base64 of its raw Ed25519 public key (C{v1}), or C{None}.
    @ivar ip: the source address of its registration (never an address it claimed).
    @ivar port: the TCP port it listens on.
    @ivar display_name: the name it gave (C{v1}), shown to operators only, or C{None}.
    @ivar registered: when it first registered, in unix seconds.
    @ivar last_seen: when it last registered or sent a heartbeat.
    """

    identifier: str
    api: str
    public_key: str | None
    ip: str
    port: int
    display_name: str | None
    registered: float
    last_seen: float


@attrs.frozen
class QueuedTask:
    """
    A task waiting for its recipient's next heartbeat.

    @ivar id: the task's id.
    @ivar recipient: the identifier of the peer it goes to.
    @ivar body: what is delivered, as JSON-able data (a signed task for C{v1} peers, a .NET
        C{NetworkTask} object for C{dotnet} peers).
    @ivar created: when it was queued.
    @ivar expires: when it is dropped undelivered.
    """

    id: str
    recipient: str
    body: Any
    created: float
    expires: float


@attrs.frozen
class AuditEntry:
    """
    One admin action.

    @ivar seq: its number, in the order the actions were taken.
    @ivar time: when, in unix seconds.
    @ivar actor: who (C{"dashboard"}, C{"expiry"}...).
    @ivar action: what (C{"block"}, C{"disconnect"}, C{"login"}...).
    @ivar target: on what (an identifier, an address).
    @ivar detail: anything else worth knowing.
    """

    seq: int
    time: float
    actor: str
    action: str
    target: str
    detail: str


@attrs.frozen
class StoredState:
    """
    Everything the store holds, read when the server starts.

    @ivar peers: the registered peers.
    @ivar tasks: the queued tasks, oldest first.
    @ivar blocks: C{(kind, value)} pairs, C{kind} C{"identifier"}, C{"ip"} or C{"address"} (C{ip:port}).
    @ivar audit: the most recent audit entries, oldest first.
    """

    peers: list[PeerRecord]
    tasks: list[QueuedTask]
    blocks: list[tuple[str, str]]
    audit: list[AuditEntry]


def _create_schema(transaction: Any) -> None:
    for statement in _SCHEMA:
        transaction.execute(statement)


class BootstrapStore:
    """
    The bootstrap server's SQLite file, behind an adbapi pool of one connection.

    Use L{BootstrapStore.open}; the constructor takes a pool made elsewhere (the tests give
    one whose "thread" runs at once).

    @param pool: the connection pool.
    """

    def __init__(self, pool: adbapi.ConnectionPool) -> None:
        self._pool = pool

    @classmethod
    def at(cls, path: str | os.PathLike[str], reactor: IReactorCore) -> BootstrapStore:
        """
        A store of the database file at C{path} (nothing is opened until the first call, on
        the pool's thread, once the reactor runs).

        @param path: the file.
        @param reactor: the reactor the pool reports results on.
        """
        pool = adbapi.ConnectionPool(
            "sqlite3", str(Path(path)), cp_min=1, cp_max=1, check_same_thread=False,
            cp_reactor=reactor, cp_openfun=_private_file(Path(path)),
        )
        return cls(pool)

    @classmethod
    def open(cls, path: str | os.PathLike[str], reactor: IReactorCore) -> Deferred[BootstrapStore]:
        """
        Open (creating it if needed) the database file at C{path}, and its schema.

        @param path: the file.
        @param reactor: the reactor the pool reports results on.
        @return: a Deferred firing the store, or failing with C{sqlite3.Error} when the file
            cannot be used (the pool is closed then).
        """
        return cls.at(path, reactor).create_schema()

    def create_schema(self) -> Deferred[BootstrapStore]:
        """
        Create the tables that do not exist yet.

        @return: a Deferred firing this store; on failure the pool is closed.
        """
        def failed(failure: Any) -> Any:
            self.close()
            return failure

        d = self._pool.runInteraction(_create_schema)
        d.addCallbacks(lambda _: self, failed)
        return d

    def close(self) -> None:
        """Close the connection (the statements already queued are run first)."""
        self._pool.close()

    # -- Reading ----------------------------------------------------------------------------------

    def load(self, audit_limit: int = 100) -> Deferred[StoredState]:
        """
        Read everything back.

        @param audit_limit: how many of the latest audit entries to read.
        @return: a Deferred firing a L{StoredState}.
        """
        return self._pool.runInteraction(_load, audit_limit)

    def audit(self, limit: int = 100) -> Deferred[list[AuditEntry]]:
        """
        @return: a Deferred firing the latest C{limit} audit entries, oldest first.
        """
        return self._pool.runInteraction(_audit, limit)

    # -- Writing ----------------------------------------------------------------------------------

    def save_peer(self, peer: PeerRecord) -> Deferred[None]:
        """Add or replace a peer."""
        return self._pool.runOperation(
            "INSERT OR REPLACE INTO peers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (peer.identifier, peer.api, peer.public_key, peer.ip, peer.port, peer.display_name,
             peer.registered, peer.last_seen),
        )

    def touch_peer(self, identifier: str, last_seen: float) -> Deferred[None]:
        """Record a peer's latest heartbeat."""
        return self._pool.runOperation(
            "UPDATE peers SET last_seen = ? WHERE identifier = ?", (last_seen, identifier))

    def remove_peers(self, identifiers: list[str]) -> Deferred[None]:
        """Forget peers (and the tasks queued for them)."""
        return self._pool.runInteraction(_remove_peers, list(identifiers))

    def add_tasks(self, tasks: list[QueuedTask]) -> Deferred[None]:
        """Queue tasks."""
        return self._pool.runInteraction(_add_tasks, list(tasks))

    def remove_tasks(self, ids: list[str]) -> Deferred[None]:
        """Drop tasks (delivered or expired)."""
        return self._pool.runInteraction(
            lambda t: t.executemany("DELETE FROM tasks WHERE id = ?", [(i,) for i in ids]))

    def add_block(self, kind: str, value: str, time: float) -> Deferred[None]:
        """Remember a blocked C{"identifier"}, C{"ip"} or C{"address"} (C{ip:port})."""
        return self._pool.runOperation(
            "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)", (kind, value, time))

    def remove_block(self, kind: str, value: str) -> Deferred[None]:
        """Forget a block."""
        return self._pool.runOperation(
            "DELETE FROM blocks WHERE kind = ? AND value = ?", (kind, value))

    def add_audit(self, time: float, actor: str, action: str, target: str,
                  detail: str = "") -> Deferred[AuditEntry]:
        """
        Write an audit entry.

        @return: a Deferred firing the entry, with its number.
        """
        return self._pool.runInteraction(_add_audit, time, actor, action, target, detail)


def _private_file(path: Path) -> Any:
    """A C{cp_openfun} that makes the database file readable by its owner only."""
    def opened(connection: sqlite3.Connection) -> None:
        try:
            os.chmod(path, 0o600)
        except OSError:
            pass  # not ours to change (a shared file): SQLite still works
    return opened


def _load(transaction: Any, audit_limit: int) -> StoredState:
    transaction.execute("SELECT identifier, api, public_key, ip, port, display_name, "
                        "registered, last_seen FROM peers ORDER BY last_seen")
    peers = [PeerRecord(*row) for row in transaction.fetchall()]
    transaction.execute("SELECT id, recipient, body, created, expires FROM tasks "
                        "ORDER BY created, rowid")
    tasks = []
    for task_id, recipient, body, created, expires in transaction.fetchall():
        try:
            tasks.append(QueuedTask(task_id, recipient, json.loads(body), created, expires))
        except ValueError:
            continue  # not written by us: nothing to deliver
    transaction.execute("SELECT kind, value FROM blocks ORDER BY time")
    blocks = [(kind, value) for kind, value in transaction.fetchall()]
    return StoredState(peers, tasks, blocks, _audit(transaction, audit_limit))


def _audit(transaction: Any, limit: int) -> list[AuditEntry]:
    transaction.execute("SELECT seq, time, actor, action, target, detail FROM audit "
                        "ORDER BY seq DESC LIMIT ?", (limit,))
    return [AuditEntry(*row) for row in reversed(transaction.fetchall())]


def _remove_peers(transaction: Any, identifiers: list[str]) -> None:
    rows = [(identifier,) for identifier in identifiers]
    transaction.executemany("DELETE FROM peers WHERE identifier = ?", rows)
    transaction.executemany("DELETE FROM tasks WHERE recipient = ?", rows)


def _add_tasks(transaction: Any, tasks: list[QueuedTask]) -> None:
    transaction.executemany(
        "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?)",
        [(t.id, t.recipient, json.dumps(t.body, sort_keys=True), t.created, t.expires)
         for t in tasks],
    )


def _add_audit(transaction: Any, time: float, actor: str, action: str, target: str,
               detail: str) -> AuditEntry:
    transaction.execute("INSERT INTO audit (time, actor, action, target, detail) "
                        "VALUES (?, ?, ?, ?, ?)", (time, actor, action, target, detail))
    return AuditEntry(transaction.lastrowid, time, actor, action, target, detail)
