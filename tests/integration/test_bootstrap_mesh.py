"""
A real bootstrap server (C{twistd -n p2pnet-bootstrap}, authority mode) and four real
C{twistd -n p2pnet --bootstrap URL} nodes with no C{--peer} on loopback: they form a full mesh
of trusted peers, survive a restart of the server, obey its signed block task within two
heartbeats, and ignore a task signed by another key (a rogue server).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater

from .support import free_port
from .test_twistd import TWISTD, NodeProcess, start_node

pytest.importorskip("p2pnet_tx.bootstrap.tap", reason="the p2pnet-bootstrap plugin (issue 11)")

HEARTBEAT = 1.0
"""The server's heartbeat interval in this test, in seconds."""

MESH_DEADLINE = 30.0


def start_server(data_dir: Path, port: int) -> NodeProcess:
    server = NodeProcess()
    args = [sys.executable, *TWISTD, "-n", "--pidfile=", "p2pnet-bootstrap",
            "--listen", f"tcp:{port}:interface=127.0.0.1", "--mode", "authority",
            "--data-dir", str(data_dir), "--heartbeat-interval", str(HEARTBEAT)]
    reactor.spawnProcess(server, sys.executable, args, env=dict(os.environ))
    return server


async def get_json(url: str, token: str | None = None, method: str = "GET",
                   body: Any = None) -> tuple[int, Any]:
    headers = {b"Authorization": [f"Bearer {token}".encode()]} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers[b"Content-Type"] = [b"application/json"]
    response = await treq.request(method, url, headers=headers, data=data, timeout=5)
    content = await response.content()
    try:
        return response.code, json.loads(content)
    except ValueError:
        return response.code, content


async def until(what: str, check: Any, timeout: float, interval: float = 0.2) -> Any:
    """Call the async C{check} until it returns something true; bounded by C{timeout}."""
    last: Any = None
    for _ in range(int(timeout / interval) + 1):
        try:
            last = await check()
        except Exception as e:  # a process still starting refuses connections
            last = e
        if last and not isinstance(last, Exception):
            return last
        await deferLater(reactor, interval, lambda: None)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


class Node:
    """One node process and its control API."""

    def __init__(self, root: Path, index: int, *extra: str) -> None:
        self.dir = root / f"node{index}"
        self.control = free_port()
        self.process = start_node(str(self.dir), free_port(), self.control, *extra)

    async def api(self, path: str) -> Any:
        token = (self.dir / "control.token").read_text().strip()
        code, body = await get_json(f"http://127.0.0.1:{self.control}/api/{path}", token)
        assert code == 200, (code, body)
        return body

    async def status(self) -> dict[str, Any]:
        return await self.api("status")

    async def trusted(self) -> set[str]:
        peers = await self.api("peers")
        return {p["identifier"] for p in peers["connected"] if p["trusted"]}


def stop(process: NodeProcess) -> None:
    if not process.ended.called:
        process.transport.signalProcess(signal.SIGTERM)


@pytest_twisted.ensureDeferred
async def test_bootstrap_mesh(tmp_path: Path) -> None:
    server_port, rogue_port = free_port(), free_port()
    server_url, rogue_url = f"http://127.0.0.1:{server_port}", f"http://127.0.0.1:{rogue_port}"
    server = start_server(tmp_path / "server", server_port)
    rogue = start_server(tmp_path / "rogue", rogue_port)
    processes = [server, rogue]
    nodes: list[Node] = []
    try:
        _, authority = await until("the server answers", lambda: get_json(
            f"{server_url}/v1/authority"), 30)
        await until("the rogue server answers", lambda: get_json(f"{rogue_url}/v1/authority"),
                    30)
        key = authority["public_key"]
        assert authority["mode"] == "authority" and key
        token = (tmp_path / "server" / "admin.token").read_text().strip()
        rogue_token = (tmp_path / "rogue" / "admin.token").read_text().strip()
        common = ("--bootstrap", server_url, "--bootstrap-mode", "authority",
                  "--authority-key", key)
        # Node 0 also registers with a rogue server, whose tasks are signed by another key.
        nodes = [Node(tmp_path, 0, *common, "--bootstrap", rogue_url)]
        nodes += [Node(tmp_path, i, *common) for i in (1, 2, 3)]
        processes += [node.process for node in nodes]

        # 1. A full mesh of trusted peers, from the bootstrap server alone (no --peer).
        ids = [(await until("node started", node.status, 30))["identifier"] for node in nodes]

        async def full_mesh() -> bool:
            for node, me in zip(nodes, ids):
                if await node.trusted() != set(ids) - {me}:
                    return False
            return True

        await until("the 4 nodes form a full mesh", full_mesh, MESH_DEADLINE)

        # 2. A task from the rogue server (signed by its own key) does nothing.
        code, reply = await get_json(f"{rogue_url}/api/block", rogue_token, "POST",
                                     {"identifier": ids[1]})
        assert code == 200, reply

        async def forged_refused() -> bool:
            status = (await nodes[0].status())["bootstrap"]
            return status.get("tasks.rejected.forged", 0) >= 1

        await until("node 0 refuses the rogue's task", forged_refused, 10)
        assert ids[1] in await nodes[0].trusted()
        assert "tasks.executed" not in (await nodes[0].status())["bootstrap"]

        # 3. Node 1 pauses; the authority blocks node 3: the others obey within 2 heartbeats.
        nodes[1].process.transport.signalProcess(signal.SIGSTOP)
        try:
            before = [(await nodes[i].status())["bootstrap"]["servers"][0]["heartbeats"]
                      for i in (0, 2)]
            code, reply = await get_json(f"{server_url}/api/block", token, "POST",
                                         {"identifier": ids[3]})
            assert code == 200, reply
            for i, beats in zip((0, 2), before):
                async def executed(node: Node = nodes[i]) -> Any:
                    section = (await node.status())["bootstrap"]
                    return section if section.get("tasks.executed", 0) >= 1 else None

                section = await until(f"node {i} blocks node 3", executed, 10, interval=0.1)
                assert section["servers"][0]["heartbeats"] <= beats + 2, (section, beats)
                assert ids[3] not in await nodes[i].trusted()

            # 4. The server restarts: registrations and the task queued for node 1 survive.
            stop(server)
            await server.ended
            server = start_server(tmp_path / "server", server_port)
            processes.append(server)
            await until("the server answers again", lambda: get_json(
                f"{server_url}/v1/authority"), 30)
        finally:
            nodes[1].process.transport.signalProcess(signal.SIGCONT)

        async def node1_obeyed() -> bool:
            section = (await nodes[1].status())["bootstrap"]
            return section.get("tasks.executed.BLOCK_AND_REMOVE_PEER", 0) == 1

        await until("node 1 gets the task queued before the restart", node1_obeyed, 15)
        assert ids[3] not in await nodes[1].trusted()
        for node in nodes[:3]:
            section = (await node.status())["bootstrap"]
            server_status = section["servers"][0]
            # Registrations survived: heartbeats after the restart were answered, not 404.
            assert server_status["reregistrations"] == 0, section
            assert server_status["registrations"] == 1, section
        # The mesh of the three that remain is intact.
        for node, me in zip(nodes[:3], ids[:3]):
            assert await node.trusted() == set(ids[:3]) - {me}
    finally:
        for process in processes:
            stop(process)
        for process in processes:
            await process.ended
    for node in nodes:
        assert b"Traceback" not in node.process.output, node.process.output.decode()
