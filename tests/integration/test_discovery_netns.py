"""
LAN discovery between real C{twistd -n p2pnet --discovery lan} processes, each in a network
namespace this test creates (see L{tests.integration.netns}): a bridge in its own namespace,
one veth per host, addresses 10.231.0.x/24 inside the namespaces only.  Broadcast and
multicast never leave them.  Skipped, with the reason, where namespaces cannot be made (not
root, no iproute2); CI runs as root, so there they run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from .netns import Host, NetnsLab, NodeInNamespace, Output, netns_unavailable

_UNAVAILABLE: list[str | None] = []

RAW_PORT = 9000
"""Where the raw TCP listener of a test host listens."""


def _skip_without_netns() -> None:
    if not _UNAVAILABLE:
        _UNAVAILABLE.append(netns_unavailable())
    if _UNAVAILABLE[0] is not None:
        pytest.skip(_UNAVAILABLE[0])


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Callable[[], NetnsLab]]:
    """Make labs for a test; whatever happens, their processes are killed and their
    namespaces deleted at the end."""
    _skip_without_netns()
    labs: list[NetnsLab] = []

    def make() -> NetnsLab:
        made = NetnsLab(f"{request.node.name[5:13]}{len(labs)}")
        labs.append(made)
        return made

    try:
        yield make
    finally:
        for each in labs:
            each.kill_processes()
            each.destroy()


async def until(check: Callable[[], Any], timeout: float, what: str,
                interval: float = 0.25) -> Any:
    """Await C{check()} (a coroutine function) until it returns a true value (bounded)."""
    last = None
    for _ in range(int(timeout / interval) + 1):
        last = await check()
        if last:
            return last
        await deferLater(reactor, interval, lambda: None)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


async def discovery(node: NodeInNamespace) -> dict[str, Any]:
    return (await node.get("/api/status"))["discovery"]


def accepted_lines(listener: Output) -> list[str]:
    return [line for line in listener.text().splitlines() if line.startswith("accepted")]


async def start(hosts_and_dirs: list[tuple[Host, Path, tuple[str, ...], int]]
                ) -> list[NodeInNamespace]:
    nodes = [host.node(directory, "--discovery", "lan", "--discovery-interval", "2", *extra,
                       listen=port)
             for host, directory, extra, port in hosts_and_dirs]
    for node in nodes:
        await node.ready()
    return nodes


@pytest_twisted.ensureDeferred
async def test_three_nodes_form_a_full_mesh_and_a_broadcast_reaches_each_once(
    lab: Callable[[], NetnsLab], tmp_path: Path
) -> None:
    """Three nodes on one LAN, no --peer: all trust each other within 30 s, and a message
    broadcast by one reaches each of the other two exactly once."""
    mesh = lab()
    hosts = [mesh.add_host() for _ in range(3)]
    try:
        nodes = await start([(h, tmp_path / str(i), (), 8051) for i, h in enumerate(hosts)])

        async def full_mesh() -> bool:
            statuses = [await node.get("/api/status") for node in nodes]
            return all(s["counts"]["trusted"] == 2 for s in statuses)

        await until(full_mesh, 30, "a full mesh of trusted peers")
        addresses = {p["address"] for p in (await nodes[0].get("/api/peers"))["connected"]}
        assert addresses == {hosts[1].address, hosts[2].address}

        text = f"hello from the first namespace {mesh.prefix}"
        assert (await nodes[0].post("/api/messages", {"message": text}))["sent"] == 2

        async def copies(node: NodeInNamespace) -> int:
            messages = (await node.get("/api/messages?since=0"))["messages"]
            return sum(1 for m in messages if m.get("message") == text)

        for node in nodes[1:]:
            await until(lambda node=node: copies(node), 10, "the broadcast message")
        await deferLater(reactor, 1.0, lambda: None)  # room for a duplicate to show up
        assert [await copies(node) for node in nodes] == [0, 1, 1]
        started = [(await discovery(node))["dials_started"] for node in nodes]
        assert sum(started) >= 2, started
    finally:
        await mesh.stop_processes()


@pytest_twisted.ensureDeferred
async def test_two_nodes_on_one_host_both_hear_an_announcement(
    lab: Callable[[], NetnsLab], tmp_path: Path
) -> None:
    """Port sharing: two nodes in one namespace both listen on UDP 8004 (SO_REUSEADDR and
    SO_REUSEPORT), and one broadcast announcement reaches both: both dial the announced
    listener."""
    shared = lab()
    home, other = shared.add_host(), shared.add_host()
    try:
        nodes = await start([(home, tmp_path / "a", (), 8051), (home, tmp_path / "b", (), 8052)])
        listener = other.tool("listen", str(RAW_PORT), "30")
        await until(lambda: _true(b"listening" in listener.output), 10, "the listener")
        before = [(await discovery(node))["accepted"] for node in nodes]
        sent = other.tool("announce", "255.255.255.255:8004", other.address, str(RAW_PORT))
        await sent.ended

        async def both_dialled() -> bool:
            return len(accepted_lines(listener)) >= 2

        await until(both_dialled, 10, "a dial from each node")
        after = [(await discovery(node))["accepted"] for node in nodes]
        assert all(a > b for a, b in zip(after, before)), (before, after)
        assert accepted_lines(listener) == [f"accepted {home.address}"] * 2
    finally:
        await shared.stop_processes()


async def _true(value: bool) -> bool:
    return value


@pytest_twisted.ensureDeferred
async def test_spoofed_announcement_is_not_dialled(
    lab: Callable[[], NetnsLab], tmp_path: Path
) -> None:
    """An announcement sent from one host that names another host's address is refused
    (source_mismatch) and never dialled; the same announcement sent by the named host itself
    is dialled, so the listener would have seen the spoofed one."""
    spoof = lab()
    home, attacker, victim = spoof.add_host(), spoof.add_host(), spoof.add_host()
    try:
        (node,) = await start([(home, tmp_path / "a", (), 8051)])
        listener = victim.tool("listen", str(RAW_PORT), "30")
        await until(lambda: _true(b"listening" in listener.output), 10, "the listener")
        target = f"{home.address}:8004"
        await attacker.tool("announce", target, victim.address, str(RAW_PORT)).ended

        async def refused() -> bool:
            return (await discovery(node))["rejected"].get("source_mismatch", 0) >= 1

        await until(refused, 10, "the spoofed announcement refused")
        await deferLater(reactor, 1.0, lambda: None)
        assert accepted_lines(listener) == []

        await victim.tool("announce", target, victim.address, str(RAW_PORT)).ended
        await until(lambda: _true(bool(accepted_lines(listener))), 10, "the genuine dial")
        status = await discovery(node)
        assert accepted_lines(listener) == [f"accepted {home.address}"]
        assert status["rejected"]["source_mismatch"] == 1
        assert status["dials_started"] == 1
    finally:
        await spoof.stop_processes()


@pytest_twisted.ensureDeferred
async def test_replayed_announcement_is_ignored(
    lab: Callable[[], NetnsLab], tmp_path: Path
) -> None:
    """The same signed announcement sent twice, 1.5 s apart: the first is dialled, the second
    is refused as replayed and dials nothing."""
    replay = lab()
    home, other = replay.add_host(), replay.add_host()
    try:
        (node,) = await start([(home, tmp_path / "a", (), 8051)])
        listener = other.tool("listen", str(RAW_PORT), "30")
        await until(lambda: _true(b"listening" in listener.output), 10, "the listener")
        await other.tool("announce", f"{home.address}:8004", other.address, str(RAW_PORT),
                         "2", "1.5").ended

        async def replayed() -> bool:
            return (await discovery(node))["rejected"].get("replayed", 0) >= 1

        await until(replayed, 10, "the replay refused")
        await deferLater(reactor, 1.0, lambda: None)
        status = await discovery(node)
        assert status["accepted"] == 1
        assert status["rejected"]["replayed"] == 1
        assert status["dials_started"] == 1
        assert accepted_lines(listener) == [f"accepted {home.address}"]
    finally:
        await replay.stop_processes()


@pytest_twisted.ensureDeferred
async def test_flood_of_ten_thousand_datagrams_leaves_the_node_responsive(
    lab: Callable[[], NetnsLab], tmp_path: Path
) -> None:
    """10,000 datagrams from one source: the node's control API still answers, the counters
    show the flood refused (rate limited), and a genuine announcement from another host is
    dialled right after."""
    flood = lab()
    home, attacker, other = flood.add_host(), flood.add_host(), flood.add_host()
    try:
        (node,) = await start([(home, tmp_path / "a", (), 8051)])
        listener = other.tool("listen", str(RAW_PORT), "40")
        await until(lambda: _true(b"listening" in listener.output), 10, "the listener")
        sender = attacker.tool("flood", f"{home.address}:8004", "10000")
        await sender.ended
        assert b"sent 10000" in sender.output, sender.text()
        started = reactor.seconds()
        status = await node.get("/api/status")
        assert reactor.seconds() - started < 5
        counted = status["discovery"]
        assert counted["rejected"].get("rate_limited", 0) > 0, counted
        assert counted["accepted"] == 0
        await other.tool("announce", f"{home.address}:8004", other.address, str(RAW_PORT)).ended
        await until(lambda: _true(bool(accepted_lines(listener))), 10, "the genuine dial")
    finally:
        await flood.stop_processes()


@pytest_twisted.ensureDeferred
async def test_dotnet_node_dials_the_sender_of_a_dotnet_datagram(
    lab: Callable[[], NetnsLab], tmp_path: Path
) -> None:
    """A --wire dotnet node answers a .NET discovery datagram (sent by broadcast to 8001 from
    another namespace, as .NET does) by dialling IP:Data; a raw TCP listener there sees it."""
    dotnet = lab()
    home, other = dotnet.add_host(), dotnet.add_host()
    try:
        (node,) = await start([(home, tmp_path / "a", ("--wire", "dotnet"), 8051)])
        assert (await discovery(node))["format"] == "dotnet"
        listener = other.tool("listen", str(RAW_PORT), "30")
        await until(lambda: _true(b"listening" in listener.output), 10, "the listener")
        await other.tool("dotnet", "255.255.255.255:8001", other.address, str(RAW_PORT)).ended
        await until(lambda: _true(bool(accepted_lines(listener))), 10, "the dial")
        assert accepted_lines(listener)[0] == f"accepted {home.address}"
        assert (await discovery(node))["dials_started"] == 1
    finally:
        await dotnet.stop_processes()
