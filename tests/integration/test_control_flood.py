"""
A real C{twistd -n p2pnet} with C{ulimit -n 1024} under a flood of idle connections to its
control port: its file descriptors stay bounded, C{p2pnet-ctl} still answers and a peer is still
accepted.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall, deferLater

from .support import eventually, free_port
from .test_twistd import NodeProcess, ctl, ctl_until, start_node

NODE_FD_LIMIT = 1024
FLOOD = 1100
BATCH = 25
REFILL = 64
"""Connections the attacker opens again each second, so that the control API's places are
always taken by fresh idle connections while the test looks."""

LIMITED_TWISTD = (
    "import resource; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({NODE_FD_LIMIT}, {NODE_FD_LIMIT})); "
    "from twisted.scripts.twistd import run; run()"
)


class Idle(Protocol):
    """A client that connects and says nothing."""

    def __init__(self) -> None:
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: object) -> None:
        self.lost.callback(None)


class Attacker:
    """Opens idle connections to a port and holds them until told to stop."""

    def __init__(self, port: int) -> None:
        self.endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10)
        self.held: list[Idle] = []
        self.reset = 0
        self.errors: list[str] = []

    async def open(self, count: int) -> None:
        attempts = [connectProtocol(self.endpoint, Idle()) for _ in range(count)]
        for ok, result in await DeferredList(attempts, consumeErrors=True):
            if ok:
                self.held.append(result)
            elif result.check(ConnectError) and result.value.osError == errno.ECONNRESET:
                self.reset += 1  # accepted, then dropped before this side saw the connect
            else:
                self.errors.append(str(result.value))

    def still_open(self) -> int:
        return sum(not idle.lost.called for idle in self.held)

    async def close(self) -> None:
        for idle in self.held:
            if not idle.lost.called:
                idle.transport.abortConnection()
        await DeferredList([idle.lost for idle in self.held])


def start_limited_node(data_dir: str, listen: int, control: int) -> NodeProcess:
    """Start a node whose process may open at most NODE_FD_LIMIT files."""
    node = NodeProcess()
    args = [sys.executable, "-c", LIMITED_TWISTD, "-n", "--pidfile=", "p2pnet",
            "--listen", f"tcp:{listen}:interface=127.0.0.1",
            "--control", f"tcp:{control}:interface=127.0.0.1", "--data-dir", data_dir]
    reactor.spawnProcess(node, sys.executable, args, env=dict(os.environ))
    return node


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def file_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        [line] = [line for line in f if line.startswith("Max open files")]
    return int(line.split()[3])


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def many_files():
    """Let this test process hold a few thousand sockets."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192
    hard = before[1] if before[1] == resource.RLIM_INFINITY else max(before[1], want)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError) as e:
        pytest.skip(f"cannot raise RLIMIT_NOFILE to {want}: {e}")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
@pytest_twisted.ensureDeferred
async def test_idle_control_connections_lock_out_nothing(tmp_path, many_files) -> None:
    """1,100 idle connections to the control port of a node limited to 1,024 files: the node
    keeps at most 64 of them (its file descriptors stay far from the limit), p2pnet-ctl
    still answers, and a second node (both with twistd's defaults) still connects and is
    trusted.  The node also starts although its known_peers.json is corrupt (moved aside)."""
    a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
    os.makedirs(a_dir)
    write(os.path.join(a_dir, "known_peers.json"), "5")  # a corrupt cache must not stop it
    a_port, a_control = free_port(), free_port()
    a = start_limited_node(a_dir, a_port, a_control)
    b = start_node(b_dir, free_port(), free_port())
    nodes = [a, b]
    attacker = Attacker(a_control)
    refill = LoopingCall(lambda: Deferred.fromCoroutine(attacker.open(REFILL)))
    refilling: Deferred[LoopingCall] | None = None
    try:
        # Each node writes its control URL once it listens.
        await eventually(lambda: all(os.path.exists(os.path.join(d, "control.url"))
                                     for d in (a_dir, b_dir)), timeout=30)
        assert file_limit(a.transport.pid) == NODE_FD_LIMIT
        assert any(".corrupt-" in name for name in os.listdir(a_dir))

        # In batches within the listen backlog (50), so that the kernel queues every one
        # for the node to accept, rather than dropping some (as it does past the backlog).
        for _ in range(FLOOD // BATCH):
            await attacker.open(BATCH)
            await deferLater(reactor, 0.01, lambda: None)
        assert attacker.errors == []  # no connection refused or timed out
        # The node dropped all but the 64 newest (and the client has seen it).
        await eventually(lambda: attacker.still_open() <= 64, timeout=10)
        assert open_files(a.transport.pid) < 200

        refilling = refill.start(1.0)  # keep every place taken by fresh idle connections
        code, output = await ctl(a_dir, "status", "--json")
        assert code == 0, output
        control = json.loads(output)["control"]
        assert control["max"] == 64
        # The API was full when ctl came, and is: its request took an idle one's place.
        assert control["open"] == 64, control
        assert control["evicted"] >= FLOOD - 64 + 1, control
        assert control["refused"] == 0

        code, output = await ctl(b_dir, "connect", f"127.0.0.1:{a_port}")
        assert code == 0, output
        status = await ctl_until(a_dir, lambda out: json.loads(out)["counts"]["trusted"] == 1,
                                 "status", "--json")
        assert json.loads(status)["control"]["open"] <= 64
        assert open_files(a.transport.pid) < 200
        assert refill.running, "the attack must last until the peer is in"
    finally:
        if refill.running:
            refill.stop()
        if refilling is not None:
            await refilling  # fires once a refill under way has ended
        await attacker.close()
        for node in nodes:
            if not node.ended.called:
                node.transport.signalProcess(signal.SIGTERM)
        for node in nodes:
            await node.ended
    output = a.output.decode()
    assert "Traceback" not in output, output
    assert "Too many open files" not in output, output
    assert "control API at its limit of 64 connections" in output
