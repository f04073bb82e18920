"""
Two real C{twistd -n p2pnet} processes on loopback, driven only through C{p2pnet-ctl}.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from .support import free_port

TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]


class NodeProcess(ProcessProtocol):
    """A twistd node whose output is kept for the test's failure message."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: object) -> None:
        self.ended.callback(None)


def start_node(data_dir: str, listen: int, control: int, *extra: str) -> NodeProcess:
    node = NodeProcess()
    args = [sys.executable, *TWISTD, "-n", "--pidfile=", "p2pnet",
            "--listen", f"tcp:{listen}:interface=127.0.0.1",
            "--control", f"tcp:{control}:interface=127.0.0.1",
            "--data-dir", data_dir, *extra]
    reactor.spawnProcess(node, sys.executable, args, env=dict(os.environ))
    return node


async def ctl(data_dir: str, *args: str) -> tuple[int, str]:
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "p2pnet_tx.ctl", "--data-dir", data_dir, *args],
        env=dict(os.environ),
    )
    return code, (out + err).decode()


async def ctl_until(data_dir: str, accept, *args: str, timeout: float = 20.0) -> str:
    """Run a p2pnet-ctl command until its output satisfies C{accept} (bounded)."""
    seen: list[str] = []

    async def attempt() -> bool:
        code, output = await ctl(data_dir, *args)
        seen.append(output)
        return code == 0 and accept(output)

    for _ in range(int(timeout / 0.5)):
        if await attempt():
            return seen[-1]
        await deferLater(reactor, 0.5, lambda: None)
    raise AssertionError(f"p2pnet-ctl {' '.join(args)} never satisfied: {seen[-3:]}")


@pytest_twisted.ensureDeferred
async def test_two_twistd_nodes_exchange_a_message(tmp_path) -> None:
    """The README's scenario: node B peers with node A, they trust each other with the key
    handshake, and a message sent with p2pnet-ctl on B shows up in p2pnet-ctl on A."""
    a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
    a_port, b_port = free_port(), free_port()
    a = start_node(a_dir, a_port, free_port())
    b = start_node(b_dir, b_port, free_port(), "--peer", f"127.0.0.1:{a_port}")
    try:
        status = await ctl_until(
            a_dir, lambda out: json.loads(out)["counts"]["trusted"] == 1, "status", "--json")
        assert json.loads(status)["listening_port"] == a_port
        await ctl_until(b_dir, lambda out: json.loads(out)["counts"]["trusted"] == 1,
                        "status", "--json")
        code, output = await ctl(b_dir, "send", "hello", "from", "b")
        assert (code, output.strip()) == (0, "sent to 1 peer(s)")
        output = await ctl_until(a_dir, lambda out: "hello from b" in out, "messages")
        assert output.count("hello from b") == 1
        code, output = await ctl(a_dir, "peers", "--json")
        [peer] = json.loads(output)["connected"]
        assert peer["port"] == b_port and peer["trusted"] is True

        code, output = await ctl(a_dir, "connect", "nonsense")
        assert code == 1 and "is not HOST:PORT" in output
    finally:
        for node in (a, b):
            if not node.ended.called:
                node.transport.signalProcess(signal.SIGTERM)
        await a.ended
        await b.ended
    code, output = await ctl(a_dir, "status")
    assert code == 1 and "running" in output, output
    assert b"Traceback" not in a.output, a.output.decode()


def trusted(count: int):
    return lambda out: json.loads(out)["counts"]["trusted"] == count


@pytest_twisted.ensureDeferred
async def test_hostname_peer_removed_stays_removed_and_follow(tmp_path) -> None:
    """Node B keeps node A by host name (--peer localhost:PORT); once B removes A, A is not
    redialled until B connects it again, by name; messages --follow --json on A prints B's
    message as it arrives; A, run with --log-level warn, logs no info line."""
    a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
    a_port = free_port()
    a = start_node(a_dir, a_port, free_port(), "--log-level", "warn")
    b = start_node(b_dir, free_port(), free_port(), "--peer", f"localhost:{a_port}")
    follow = NodeProcess()
    try:
        status = json.loads(await ctl_until(a_dir, trusted(1), "status", "--json"))
        a_id = status["identifier"]
        await ctl_until(b_dir, trusted(1), "status", "--json")
        peers = json.loads((await ctl(b_dir, "peers", "--json"))[1])
        assert [p["address"] for p in peers["connected"]] == ["127.0.0.1"]  # not the name

        code, output = await ctl(b_dir, "remove", a_id)
        assert code == 0 and "no longer redialled" in output, output
        await deferLater(reactor, 3.5, lambda: None)  # the keeper would redial at 1 s and 3 s
        code, output = await ctl(b_dir, "status", "--json")
        assert json.loads(output)["counts"]["active"] == 0, output
        code, output = await ctl(b_dir, "connect", f"localhost:{a_port}")
        assert code == 0 and output.startswith(f"connected to {a_id}"), output
        await ctl_until(b_dir, trusted(1), "status", "--json")

        args = [sys.executable, "-m", "p2pnet_tx.ctl", "--data-dir", a_dir, "messages",
                "--follow", "--json"]
        reactor.spawnProcess(follow, sys.executable, args, env=dict(os.environ))
        await deferLater(reactor, 1.0, lambda: None)  # the first long poll is waiting
        code, output = await ctl(b_dir, "send", "hello by name")
        assert code == 0, output
        for _ in range(40):
            if b"hello by name" in follow.output:
                break
            await deferLater(reactor, 0.25, lambda: None)
        [line] = follow.output.decode().splitlines()
        assert json.loads(line)["message"] == "hello by name"
    finally:
        for node in (a, b, follow):
            if node.transport is not None and not node.ended.called:
                node.transport.signalProcess(signal.SIGTERM)
        await a.ended
        await b.ended
        if follow.transport is not None:
            await follow.ended
    assert b"#info]" not in a.output, a.output.decode()
    assert b"#info]" in b.output
    assert b"Traceback" not in a.output, a.output.decode()[-3000:]
    # B closed a TLS channel with 'remove': TLS's own close, never a half-closed TCP socket
    # beneath it (which once made twisted.protocols.tls log an unhandled AttributeError).
    assert b"Traceback" not in b.output, b.output.decode()[-3000:]
