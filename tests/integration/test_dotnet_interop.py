"""
Real C{twistd -n p2pnet --wire dotnet --trust ping} nodes against the model of an unmodified
.NET P2PNet node (tests/interop/dotnet_peer.py) over real sockets on 127.0.0.1, in both
directions (issue 9): the model runs in this process on the real reactor, the node is a
subprocess driven only through C{p2pnet-ctl}.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.interop.dotnet_peer import HELLO, DotnetChannel, DotnetNode

from .support import eventually, free_port
from .test_twistd import NodeProcess, ctl, start_node

TRUST_WITHIN = 45.0  # .NET answers our pings only from its 7th read: about 18 s at worst


def dotnet_args(*extra: str) -> tuple[str, ...]:
    return ("--wire", "dotnet", "--trust", "ping", *extra)


async def status(data_dir: str) -> dict:
    code, output = await ctl(data_dir, "status", "--json")
    assert code == 0, output
    return json.loads(output)


async def until_status(data_dir: str, accept: Callable[[dict], bool],
                       timeout: float = TRUST_WITHIN) -> dict:
    """Poll the node's status until C{accept} holds (bounded)."""
    seen: list[dict] = []
    for _ in range(int(timeout / 0.5)):
        code, output = await ctl(data_dir, "status", "--json")
        if code == 0:
            seen.append(json.loads(output))
            if accept(seen[-1]):
                return seen[-1]
        await deferLater(reactor, 0.5, lambda: None)
    raise AssertionError(f"status never satisfied: {seen[-1:] or 'no answer'}")


def trusted_one(state: dict) -> bool:
    return state["counts"]["trusted"] == 1


async def stop(node: NodeProcess) -> None:
    if node.transport is not None and not node.ended.called:
        node.transport.signalProcess(signal.SIGTERM)
    await node.ended


def the_channel(model: DotnetNode) -> DotnetChannel:
    [channel] = model.channels
    return channel


async def exchange_messages(data_dir: str, channel: DotnetChannel, model: DotnetNode) -> None:
    """Two sends back to back reach .NET both, intact; .NET's message reaches the node."""
    first, second = "first <>&'+\"` é 中 \U0001F600", "second, at once"
    before = len(channel.messages)
    code, output = await ctl(data_dir, "send", first)
    assert (code, output.strip()) == (0, "sent to 1 peer(s)"), output
    code, output = await ctl(data_dir, "send", second)
    assert (code, output.strip()) == (0, "sent to 1 peer(s)"), output
    await eventually(lambda: len(channel.messages) >= before + 2, timeout=10)
    assert channel.messages[before:] == [first, second]
    assert channel.handler_error is None

    model.send_message("from .NET <>&'+\"` é 中")
    for _ in range(40):
        code, output = await ctl(data_dir, "messages")
        if "from .NET <>&'+\"` é 中" in output:
            break
        await deferLater(reactor, 0.25, lambda: None)
    assert "from .NET <>&'+\"` é 中" in output, output
    assert HELLO in output


@pytest_twisted.ensureDeferred
async def test_node_dials_dotnet(tmp_path) -> None:
    """The node dials a .NET node: trust both ways, two messages sent back to back, text
    intact both ways, and a 2 MiB file from .NET received without dropping the peer."""
    model = DotnetNode(reactor, local_ip="127.0.0.1")
    port = reactor.listenTCP(0, model, interface="127.0.0.1")
    data_dir = str(tmp_path / "node")
    node = start_node(data_dir, free_port(), free_port(),
                      *dotnet_args("--peer", f"127.0.0.1:{port.getHost().port}"))
    try:
        await eventually(lambda: len(model.channels) == 1, timeout=20)
        channel = the_channel(model)
        await eventually(lambda: channel.trusted, timeout=TRUST_WITHIN)
        await until_status(data_dir, trusted_one)

        await exchange_messages(data_dir, channel, model)

        data = os.urandom(2 * 1024 * 1024)
        model.distribute_file(data)
        state = await until_status(
            data_dir, lambda s: s["counters"].get("packets_in.DataTransmit", 0) == 1, timeout=20)
        assert trusted_one(state), state
        assert state["traffic"]["bytes_in"] > len(data) * 4 // 3
        assert state["counters"]["malformed"] == 0 and state["counters"]["framing_errors"] == 0
        assert not channel.closed and channel.handler_error is None
        assert model.refused == 0  # never closed, so never redialled into KnownPeers' refusal
    finally:
        await stop(node)
        await port.stopListening()
    assert b"Traceback" not in node.output, node.output.decode()[-3000:]


@pytest.mark.long
@pytest_twisted.ensureDeferred
async def test_dotnet_dials_node_and_stays_up_two_minutes_idle(tmp_path) -> None:
    """.NET dials the node: trust both ways; then two minutes with nothing to say (a trusted
    .NET peer never speaks again), and the channel is still up and trusted both ways, and
    messages still pass both ways, two of them back to back."""
    data_dir = str(tmp_path / "node")
    listen = free_port()
    node = start_node(data_dir, listen, free_port(), *dotnet_args())
    model = DotnetNode(reactor, local_ip="127.0.0.1")
    try:
        await until_status(data_dir, lambda s: s["listening_port"] == listen, timeout=20)
        dialer = model.dialer("127.0.0.1")
        assert dialer is not None
        connector = reactor.connectTCP("127.0.0.1", listen, dialer, timeout=5)
        await eventually(lambda: len(model.channels) == 1, timeout=10)
        channel = the_channel(model)
        await eventually(lambda: channel.trusted, timeout=TRUST_WITHIN)
        await until_status(data_dir, trusted_one)
        reads = len(channel.reads)

        await deferLater(reactor, 120.0, lambda: None)

        state = await status(data_dir)
        assert trusted_one(state), state
        assert not channel.closed and channel.trusted and channel.handler_error is None
        # What the node sent while idle (its keep-alives) reached .NET one frame per read.
        assert all(read.count("<Message>") <= 1 for read in channel.reads[reads:])
        await exchange_messages(data_dir, channel, model)
        connector.disconnect()
    finally:
        await stop(node)
    assert b"Traceback" not in node.output, node.output.decode()[-3000:]
