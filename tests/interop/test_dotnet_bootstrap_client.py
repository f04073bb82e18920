"""
A .NET-style client (L{tests.interop.dotnet_bootstrap_client}, a model of P2PNet's
C{BootstrapChannel}) registers with our bootstrap server and parses the peer list as .NET
would; heartbeats bring it the tasks queued for it, in a form its parser takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bootstrap_support import ADMIN_TOKEN, call, make_server

from .dotnet_bootstrap_client import DotNetBootstrapClient, DotNetParseError


def transport(root, ip):  # type: ignore[no-untyped-def]
    return lambda path, body: call(root, "PUT", path, body, ip=ip).body


def test_dotnet_client_registers_and_parses_the_peer_list(tmp_path: Path) -> None:
    """Three .NET clients register (claiming an IP they do not have); each parses a peer list
    of GenericPeers at their real source addresses, itself included, as .NET's client does."""
    _, server, root = make_server(tmp_path)
    clients = [DotNetBootstrapClient(transport(root, f"10.50.{n}.1"), f"dotnet-{n}", 7000 + n)
               for n in range(3)]
    for client in clients:
        client.register()
        assert client.errors == []
    assert sorted(clients[2].peers) == [("10.50.0.1", 7000, "dotnet-0"),
                                        ("10.50.1.1", 7001, "dotnet-1"),
                                        ("10.50.2.1", 7002, "dotnet-2")]
    assert ("10.50.0.1", 7000, "dotnet-0") in clients[0].peers
    assert all(client.heartbeat() for client in clients)
    assert clients[0].failures == 0 and server.counters["heartbeats"] == 3


def test_dotnet_client_in_authority_mode_keeps_dotnet_quirks(tmp_path: Path) -> None:
    """Authority mode: .NET's client cannot parse the <Task>-tagged BootstrapInitialization
    that .NET's own server (and ours, faithfully) sends, so it throws, as it would in .NET;
    its heartbeats still parse, and a block queued from the dashboard reaches it as a
    NetworkTask with the target and our signature."""
    _, server, root = make_server(tmp_path, mode="authority")
    client = DotNetBootstrapClient(transport(root, "10.51.0.1"), "dotnet-a", 7000,
                                   authority_mode=True)
    with pytest.raises(DotNetParseError):
        client.register()
    assert "dotnet-a" in server.registry.peers, "registered all the same"
    other = DotNetBootstrapClient(transport(root, "10.51.1.1"), "dotnet-b", 7001,
                                  authority_mode=True)
    with pytest.raises(DotNetParseError):
        other.register()
    assert set(server.registry.peers) == {"dotnet-a", "dotnet-b"}
    blocked = call(root, "POST", "/api/block", {"identifier": "dotnet-b"},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert blocked.code == 200
    assert client.heartbeat() is True and client.failures == 0
    [task] = client.tasks
    assert task["TaskType"] == 0
    assert task["TaskData"]["TargetPeer"] == "dotnet-b"
    assert task["TaskData"]["Signature"] and task["TaskData"]["SignedTask"]


def test_dotnet_client_stops_after_five_failures(tmp_path: Path) -> None:
    """A server whose heartbeat replies cannot be parsed counts as failing; after 5 the
    client stops (BootstrapChannelBase.MaxFailureTimeout)."""
    client = DotNetBootstrapClient(lambda path, body: b"<html>", "dotnet-x", 7000)
    results = [client.heartbeat() for _ in range(6)]
    assert results == [True, True, True, True, False, False] and client.failures == 5
    errors: list[str] = []
    erring = DotNetBootstrapClient(lambda path, body: json.dumps({"Message": "nope"}).encode(),
                                   "dotnet-y", 7000)
    erring.register()
    errors.extend(erring.errors)
    assert errors and erring.peers == []
