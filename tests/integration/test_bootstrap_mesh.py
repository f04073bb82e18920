"""
A real bootstrap server (C{twistd -n p2pnet-bootstrap}, authority mode) and four real
C{twistd -n p2pnet --bootstrap URL} nodes with no C{--peer} on loopback: they form a full mesh
of trusted peers, survive a restart of the server, obey its signed block task within two
heartbeats, and ignore tasks signed by another key (a rogue server).
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
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool

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
    # No persistent connections: none may outlive the test in the global reactor.
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    response = await http.request(method, url, headers=headers, data=data, timeout=5)
    content = await response.content()
    try:
        return response.code, json.loads(content)
    except ValueError:
        return response.code, content


async def answered(url: str) -> Any:
    """The JSON of a 200 reply to GET C{url}, or None."""
    code, body = await get_json(url)
    return body if code == 200 else None


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


def obeyed_block(section: dict[str, Any]) -> bool:
    return section.get("tasks.executed.BLOCK_AND_REMOVE_PEER", 0) == 1


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
        authority = await until("the server answers", lambda: answered(
            f"{server_url}/v1/authority"), 30)
        await until("the rogue server answers", lambda: answered(f"{rogue_url}/v1/authority"),
                    30)
        key = authority["public_key"]
        assert authority["mode"] == "authority" and key
        token = (tmp_path / "server" / "admin.token").read_text().strip()
        rogue_token = (tmp_path / "rogue" / "admin.token").read_text().strip()
        common = ("--bootstrap", server_url, "--bootstrap-mode", "authority",
                  "--authority-key", key)
        # Nodes 0 and 1 also register with a rogue server, whose tasks another key signs.
        nodes = [Node(tmp_path, i, *common, "--bootstrap", rogue_url) for i in (0, 1)]
        nodes += [Node(tmp_path, i, *common) for i in (2, 3)]
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
        code, reply = await get_json(f"{rogue_url}/api/disconnect", rogue_token, "POST",
                                     {"identifier": ids[1]})
        assert code == 200, reply

        async def forged_refused() -> bool:
            section = (await nodes[0].status())["bootstrap"]
            return section.get("tasks.rejected.forged", 0) >= 1

        await until("node 0 refuses the rogue's task", forged_refused, 10)
        assert ids[1] in await nodes[0].trusted()
        assert "tasks.executed" not in (await nodes[0].status())["bootstrap"]

        # 3. Node 1 pauses; the authority queues a task for it (disconnect node 3); the
        # server restarts; node 1 resumes and gets the task: nothing was lost.
        nodes[1].process.transport.signalProcess(signal.SIGSTOP)
        try:
            code, reply = await get_json(f"{server_url}/api/disconnect", token, "POST",
                                         {"identifier": ids[3]})
            assert code == 200, reply
            stop(server)
            await server.ended
            server = start_server(tmp_path / "server", server_port)
            processes.append(server)
            await until("the server answers again", lambda: answered(
                f"{server_url}/v1/authority"), 30)
        finally:
            nodes[1].process.transport.signalProcess(signal.SIGCONT)

        async def obeyed(node: Node, kind: str) -> bool:
            return (await node.status())["bootstrap"].get(f"tasks.executed.{kind}", 0) == 1

        for node in nodes[:3]:
            await until("the disconnect task reaches every node, node 1 after the restart",
                        lambda node=node: obeyed(node, "DISCONNECT_PEER"), 15)
            server_status = (await node.status())["bootstrap"]["servers"][0]
            # Registrations survived: heartbeats after the restart were answered, not 404.
            assert server_status.get("reregistrations", 0) == 0, server_status
            assert server_status["registrations"] == 1, server_status
        await until("the mesh heals", full_mesh, MESH_DEADLINE)

        # 4. The authority blocks node 3: every other node obeys within 2 heartbeats.
        before = [(await node.status())["bootstrap"]["servers"][0]["heartbeats"]
                  for node in nodes[:3]]
        code, reply = await get_json(f"{server_url}/api/block", token, "POST",
                                     {"identifier": ids[3]})
        assert code == 200, reply
        for node, beats in zip(nodes[:3], before):
            async def executed(node: Node = node) -> Any:
                section = (await node.status())["bootstrap"]
                return section if obeyed_block(section) else None

            section = await until("a node blocks node 3", executed, 10, interval=0.1)
            assert section["servers"][0]["heartbeats"] <= beats + 2, (section, beats)
            assert ids[3] not in await node.trusted()
    finally:
        for process in processes:
            stop(process)
        for process in processes:
            await process.ended
    for node in nodes:
        assert b"Traceback" not in node.process.output, node.process.output.decode()
