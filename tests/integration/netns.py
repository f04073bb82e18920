"""
Network namespaces for the LAN discovery tests: each test's hosts live in namespaces it
creates, joined by a bridge that lives in a namespace of its own, so no broadcast or multicast
ever touches the machine's own interfaces.

    lab = NetnsLab("mesh")                      # names carry the pid: parallel runs never meet
    a, b = lab.add_host(), lab.add_host()       # 10.231.0.1/24, 10.231.0.2/24, on one bridge
    ...
    lab.destroy()                               # processes first, then every namespace

Each host has C{lo} up, one veth (C{lan0}) to the bridge and a default route through it (a
LAN host has one; without it the kernel has no route for 255.255.255.255 or a multicast
group).  The veth pairs are created inside their namespaces directly, never in the host's.
Nodes are C{twistd -n p2pnet} processes run with C{ip netns exec}; their control API listens on
a UNIX socket (the file system is shared, the network is not), which L{NodeInNamespace.get}
and L{NodeInNamespace.post} call with the node's token.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

SUBNET = "10.231.0"
"""The first three bytes of the hosts' addresses (a /24 inside the namespaces only)."""

TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]
TOOL = str(Path(__file__).with_name("netns_tool.py"))


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here, or C{None} if they can (tried for real)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs these tests as root)"
    if shutil.which("ip") is None:
        return "no 'ip' command (iproute2) to make network namespaces"
    probe = f"p2pd-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"'ip netns add' fails here: {made.stderr.strip()}"
    try:
        for args in (["link", "add", "br0", "type", "bridge"],
                     ["link", "add", "a0", "type", "veth", "peer", "name", "b0"]):
            done = subprocess.run(["ip", "-n", probe, *args], capture_output=True, text=True)
            if done.returncode != 0:
                return f"'ip {' '.join(args)}' fails in a namespace here: {done.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Output(ProcessProtocol):
    """Keeps a process's output, and fires C{ended} with its exit status."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: Deferred[int | None] = Deferred()
        self.pid: int | None = None

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(getattr(reason.value, "exitCode", None))

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


@implementer(IAgentEndpointFactory)
class _UnixSocket:
    def __init__(self, path: str) -> None:
        self.path = path

    def endpointForURI(self, uri: Any) -> UNIXClientEndpoint:
        return UNIXClientEndpoint(reactor, self.path, timeout=5)


class Host:
    """A namespace on the lab's bridge, with its address."""

    def __init__(self, lab: NetnsLab, name: str, address: str) -> None:
        self.lab = lab
        self.name = name
        self.address = address

    def spawn(self, argv: list[str]) -> Output:
        """Run C{argv} in this namespace; the lab kills it at the end."""
        process = Output()
        reactor.spawnProcess(process, "ip", ["ip", "netns", "exec", self.name, *argv],
                             env=dict(os.environ))
        self.lab.processes.append(process)
        return process

    def tool(self, *args: str) -> Output:
        """Run C{tests/integration/netns_tool.py} with C{args} in this namespace."""
        return self.spawn([sys.executable, TOOL, *args])

    def node(self, directory: Path, *options: str, listen: int = 8051) -> NodeInNamespace:
        """Start C{twistd -n p2pnet} here, its control API on a UNIX socket in C{directory}."""
        directory.mkdir(parents=True, exist_ok=True)
        socket_path = directory / "control.sock"
        process = self.spawn([
            sys.executable, *TWISTD, "-n", "--pidfile=", "p2pnet",
            "--listen", f"tcp:{listen}", "--control", f"unix:{socket_path}:lockfile=0",
            "--data-dir", str(directory / "data"), "--log-level", "debug", *options,
        ])
        return NodeInNamespace(self, process, directory / "data", str(socket_path), listen)


class NodeInNamespace:
    """A node process in a namespace, and calls to its control API."""

    def __init__(self, host: Host, process: Output, data_dir: Path, socket_path: str,
                 port: int) -> None:
        self.host = host
        self.process = process
        self.data_dir = data_dir
        self.port = port
        self._client = treq.client.HTTPClient(
            Agent.usingEndpointFactory(reactor, _UnixSocket(socket_path)))

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        token = (self.data_dir / "control.token").read_text().strip()
        headers = {"Authorization": [f"Bearer {token}"], "Host": ["127.0.0.1"]}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = ["application/json"]
        response = await self._client.request(method, f"http://127.0.0.1{path}",
                                              headers=headers, data=data, timeout=10)
        text = await response.text()
        if response.code != 200:
            raise AssertionError(f"{method} {path}: {response.code} {text}")
        return json.loads(text)

    async def get(self, path: str) -> Any:
        """C{GET /api/...} and return the JSON answer."""
        return await self._request("GET", path)

    async def post(self, path: str, body: Any) -> Any:
        """C{POST /api/...} with a JSON body and return the JSON answer."""
        return await self._request("POST", path, body)

    async def ready(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the control API answers; return its status."""
        for _ in range(int(timeout / 0.25)):
            if self.process.ended.called:
                raise AssertionError(f"node in {self.host.name} ended:\n{self.process.text()}")
            try:
                return await self.get("/api/status")
            except Exception:  # noqa: BLE001 - not up yet: the socket or token is not there
                await deferLater(reactor, 0.25, lambda: None)
        raise AssertionError(f"node in {self.host.name} never answered:\n{self.process.text()}")


class NetnsLab:
    """
    A bridge in its own namespace and hosts on it; L{destroy} removes it all.

    @param tag: a short name for the test; with the pid it names the namespaces.
    """

    def __init__(self, tag: str) -> None:
        self.prefix = f"p2pd-{os.getpid()}-{tag}"
        self.bridge = f"{self.prefix}-br"
        self.hosts: list[Host] = []
        self.processes: list[Output] = []
        self._namespaces: list[str] = []
        self._add_namespace(self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self) -> Host:
        """Add a namespace on the bridge, with the next address of L{SUBNET}."""
        number = len(self.hosts) + 1
        name = f"{self.prefix}-{number}"
        self._add_namespace(name)
        _ip("link", "add", "lan0", "netns", name, "type", "veth",
            "peer", "name", f"h{number}", "netns", self.bridge)
        _ip("-n", self.bridge, "link", "set", f"h{number}", "master", "br0")
        _ip("-n", self.bridge, "link", "set", f"h{number}", "up")
        address = f"{SUBNET}.{number}"
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "lan0")
        _ip("-n", name, "link", "set", "lan0", "up")
        _ip("-n", name, "route", "add", "default", "dev", "lan0")
        host = Host(self, name, address)
        self.hosts.append(host)
        return host

    async def stop_processes(self, timeout: float = 10.0) -> None:
        """End every process started here: SIGTERM, then SIGKILL after C{timeout} s."""
        running = [p for p in self.processes if not p.ended.called and p.pid is not None]
        for process in running:
            try:
                os.kill(process.pid, signal.SIGTERM)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass
        for _ in range(int(timeout / 0.1)):
            if all(p.ended.called for p in running):
                return
            await deferLater(reactor, 0.1, lambda: None)
        for process in running:
            if not process.ended.called:
                try:
                    os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
                except ProcessLookupError:
                    pass

    def kill_processes(self) -> None:
        """SIGKILL whatever still runs (a finalizer's last resort; the reactor reaps them)."""
        for process in self.processes:
            if not process.ended.called and process.pid is not None:
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def destroy(self) -> None:
        """Delete every namespace (and with them their links and the bridge)."""
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        self._namespaces = []
