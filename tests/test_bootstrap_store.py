"""
The bootstrap server's SQLite store, against a real file through adbapi's real thread, on the
running reactor (pytest-twisted): what is written is read back after the store is closed and
opened again, as after a restart.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from p2pnet_tx.bootstrap.store import (
    DB_FILE,
    AuditEntry,
    BootstrapStore,
    PeerRecord,
    QueuedTask,
)


def _peer(identifier: str, last_seen: float = 10.0, api: str = "v1") -> PeerRecord:
    return PeerRecord(identifier, api, "a2V5" if api == "v1" else None, "10.0.0.1", 8001,
                      "name", 1.0, last_seen)


@pytest_twisted.ensureDeferred
async def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    """Peers, heartbeats, tasks, blocks and audit entries written before close are there
    after the file is opened again; removals too."""
    path = tmp_path / DB_FILE
    store = await BootstrapStore.open(path, reactor)
    try:
        await store.save_peer(_peer("alpha", 10.0))
        await store.save_peer(_peer("beta", 5.0, api="dotnet"))
        await store.save_peer(_peer("gamma", 7.0))
        await store.touch_peer("alpha", 99.5)
        await store.add_tasks([QueuedTask("t1", "alpha", {"task": {"id": "t1"}}, 1.0, 100.0),
                               QueuedTask("t2", "gamma", {"TaskType": 4}, 2.0, 100.0),
                               QueuedTask("t3", "beta", {"TaskType": 0}, 3.0, 100.0)])
        await store.remove_tasks(["t2"])
        await store.remove_peers(["beta"])  # its queued task goes with it
        await store.add_block("ip", "10.9.9.9", 3.0)
        await store.add_block("identifier", "bad", 4.0)
        await store.add_block("ip", "10.8.8.8", 5.0)
        await store.remove_block("ip", "10.8.8.8")
        first = await store.add_audit(6.0, "dashboard", "block", "bad", "from 127.0.0.1")
        second = await store.add_audit(7.0, "dashboard", "disconnect", "gamma")
    finally:
        store.close()
    assert second.seq == first.seq + 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    store = await BootstrapStore.open(path, reactor)
    try:
        state = await store.load()
        latest = await store.audit(limit=1)
    finally:
        store.close()
    assert [(p.identifier, p.api, p.last_seen) for p in state.peers] == [
        ("gamma", "v1", 7.0), ("alpha", "v1", 99.5)]
    assert state.peers[1] == _peer("alpha", 99.5)
    assert [(t.id, t.recipient, t.body) for t in state.tasks] == [
        ("t1", "alpha", {"task": {"id": "t1"}})]
    assert state.blocks == [("ip", "10.9.9.9"), ("identifier", "bad")]
    assert state.audit == [first, second]
    assert latest == [AuditEntry(second.seq, 7.0, "dashboard", "disconnect", "gamma", "")]


@pytest_twisted.ensureDeferred
async def test_a_file_that_is_not_sqlite_is_an_error(tmp_path: Path) -> None:
    """A data file that is not a database fails the open with SQLite's error (the pool is
    closed, no thread is left running)."""
    path = tmp_path / DB_FILE
    path.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(sqlite3.DatabaseError):
        await BootstrapStore.open(path, reactor)


@pytest_twisted.ensureDeferred
async def test_hostile_text_is_stored_as_data(tmp_path: Path) -> None:
    """Identifiers, names and audit details holding SQL, quotes, NULs and non-BMP text are
    values, never statements."""
    hostile = "x'); DROP TABLE peers; --\x00\U0001f600\u202e"
    store = await BootstrapStore.open(tmp_path / DB_FILE, reactor)
    try:
        await store.save_peer(PeerRecord(hostile, "dotnet", None, "::1", 1, hostile, 1.0, 2.0))
        await store.add_audit(1.0, "dashboard", "block", hostile, hostile)
        state = await store.load()
    finally:
        store.close()
    assert [p.identifier for p in state.peers] == [hostile]
    assert state.audit[0].detail == hostile
