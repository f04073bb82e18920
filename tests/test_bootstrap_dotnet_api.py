"""
The bootstrap server's .NET-compatible API (C{/api/Bootstrap/*}), with bodies built as
P2PNet's C{BootstrapChannel} builds them (tagged and untagged), and hostile ones.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2pnet_tx._json import write_task
from p2pnet_tx.identity import identifier_for_public_key
from p2pnet_tx.packets import (
    DataPayloadFormat,
    DataTransmissionPacket,
    IdentifierPacket,
    NetworkTask,
    PacketType,
    TaskType,
)
from p2pnet_tx.tasks import verify_task
from p2pnet_tx.wire import decode_packet_object, encode_packet_object, untag_payload

from .bootstrap_support import ADMIN_TOKEN, call, make_server


def dtp(payload: bytes, data_type: int, identifier: str = "", tagged: bool = True) -> bytes:
    """A DataTransmissionPacket's JSON, its payload wrapped in its tags or not."""
    packet = DataTransmissionPacket(payload, DataPayloadFormat(data_type),
                                    source_origin_identifier=identifier)
    return encode_packet_object(packet, tag_payload=tagged)


def register_body(identifier: str, port: int = 8001, tagged: bool = True,
                  claimed_ip: str = "6.6.6.6") -> bytes:
    identity = encode_packet_object(IdentifierPacket(
        "discovery", port, claimed_ip, source_origin_identifier=identifier))
    return dtp(identity, 2, identifier, tagged)


def heartbeat_body(identifier: str, tagged: bool = True) -> bytes:
    return dtp(write_task(TaskType.HEARTBEAT, {}), 1, identifier, tagged)


def unwrap(body: bytes) -> tuple[DataTransmissionPacket, Any]:
    """Read a DTP reply, and its payload as JSON (tags stripped)."""
    packet = decode_packet_object(PacketType.DATA_TRANSMIT, body)
    assert isinstance(packet, DataTransmissionPacket), body
    return packet, json.loads(untag_payload(packet.payload))


def message(answer: Any) -> str:
    assert answer.code == 200, answer.body
    return answer.json()["Message"]


@pytest.mark.parametrize("tagged", [True, False])
def test_trustless_register_returns_untagged_peers_including_the_caller(
        tmp_path: Path, tagged: bool) -> None:
    """A registration, its payload tagged or not, is recorded at the source IP (not the IP
    it claims); the reply is a DataType 2 DTP whose Data is the untagged CollectionShare JSON
    of $type GenericPeer entries, the caller included."""
    _, server, root = make_server(tmp_path)
    call(root, "PUT", "/api/Bootstrap/peers", register_body("dotnet-a", 7001), ip="10.7.0.1")
    answer = call(root, "PUT", "/api/Bootstrap/peers", register_body("dotnet-b", 7002, tagged),
                  ip="10.7.0.2")
    assert answer.code == 200 and answer.header("content-type").startswith("application/json")
    raw = json.loads(answer.body)
    assert raw["DataType"] == 2
    assert not base64.b64decode(raw["Data"]).startswith(b"<MiscData>"), "untagged, as .NET"
    _, share = unwrap(answer.body)
    assert sorted((p["$type"], p["Identifier"], p["Address"], p["Port"]) for p in share["peers"]) \
        == [("GenericPeer", "dotnet-a", "10.7.0.1", 7001), ("GenericPeer", "dotnet-b", "10.7.0.2", 7002)]
    assert server.registry.peers["dotnet-b"].ip == "10.7.0.2"


def test_authority_register_returns_the_bootstrap_initialization_task(tmp_path: Path) -> None:
    """In authority mode the reply is a <Task>-tagged DTP (DataType 1) of TaskType 14 with
    our public key and the CollectionShare JSON as strings."""
    key = Ed25519PrivateKey.generate()
    _, _, root = make_server(tmp_path, mode="authority", key=key)
    answer = call(root, "PUT", "/api/Bootstrap/peers", register_body("dotnet-a"))
    raw = json.loads(answer.body)
    assert raw["DataType"] == 1
    assert base64.b64decode(raw["Data"]).startswith(b"<Task>{")
    assert raw["SourceOriginIdentifier"] == identifier_for_public_key(key)
    _, task = unwrap(answer.body)
    assert task["TaskType"] == 14
    assert base64.b64decode(task["TaskData"]["PublicKey"]) == key.public_key().public_bytes_raw()
    peers = json.loads(task["TaskData"]["Peers"])["peers"]
    assert [p["Identifier"] for p in peers] == ["dotnet-a"]


def test_heartbeat_returns_tasks_as_dotnet_network_tasks(tmp_path: Path) -> None:
    """A heartbeat (tagged or not) of a registered .NET client, from its address, gets a
    TaskType 16 whose Task_N values are NetworkTask JSON carrying our signed task, plus a
    Signature; verifyhash knows the hash .NET computes of each task."""
    key = Ed25519PrivateKey.generate()
    reactor, _, root = make_server(tmp_path, mode="authority", key=key)
    for name, ip in (("dotnet-a", "10.8.0.1"), ("dotnet-b", "10.8.0.2")):
        call(root, "PUT", "/api/Bootstrap/peers", register_body(name), ip=ip)
    blocked = call(root, "POST", "/api/block", {"identifier": "dotnet-b"},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert blocked.code == 200
    answer = call(root, "PUT", "/api/Bootstrap/heartbeat", heartbeat_body("dotnet-a", False),
                  ip="10.8.0.1")
    packet, response = unwrap(answer.body)
    assert packet.data_type is DataPayloadFormat.TASK and response["TaskType"] == 16
    assert set(response["TaskData"]) == {"Task_0", "Signature"}
    task = json.loads(response["TaskData"]["Task_0"])
    assert task["TaskType"] == 0
    data = task["TaskData"]
    assert (data["Identifier"], data["TargetPeer"]) == ("dotnet-b", "dotnet-b")
    verified = verify_task({"task": json.loads(base64.b64decode(data["SignedTask"])), "signature": data["Signature"]},
                           key.public_key())
    assert verified.data == {"Identifier": "dotnet-b"}
    unsigned = {k: v for k, v in data.items() if k != "Signature"}
    digest = base64.b64encode(hashlib.md5(write_task(0, unsigned)).digest()).decode()
    ask = dtp(write_task(TaskType.REQUEST_VERIFY_HASH_RECORD, {"Hash": digest}), 1)
    assert message(call(root, "PUT", "/api/Bootstrap/verifyhash", ask)) == f"True:{digest}"
    other = dtp(write_task(TaskType.REQUEST_VERIFY_HASH_RECORD, {"Hash": "AAAA"}), 1)
    assert message(call(root, "PUT", "/api/Bootstrap/verifyhash", other)) == "False:AAAA"
    again = call(root, "PUT", "/api/Bootstrap/heartbeat", heartbeat_body("dotnet-a"), ip="10.8.0.1")
    assert unwrap(again.body)[1]["TaskData"] == {"Signature": unwrap(again.body)[1]["TaskData"]["Signature"]}
    assert reactor.seconds() > 0


def test_errors_come_back_as_200_pure_messages(tmp_path: Path) -> None:
    """Every refusal is status 200 and a PureMessage whose Message is neither empty nor
    "Pinging" (what .NET's client takes as an error), and registers nothing."""
    _, server, root = make_server(tmp_path)
    call(root, "PUT", "/api/Bootstrap/peers", register_body("known"), ip="10.9.0.1")
    cases = [
        ("peers", b"{"), ("peers", b"[]"), ("peers", b'{"Data": 5, "DataType": 2}'),
        ("peers", b'{"Data": "%%%", "DataType": 2}'), ("peers", b'{"Data": "", "DataType": 9}'),
        ("peers", dtp(b"not json", 2)), ("peers", dtp(b"[1]", 2)),
        ("peers", register_body("")), ("peers", register_body("x" * 300)),
        ("peers", register_body("bad\nname")), ("peers", register_body("p", port=0)),
        ("peers", dtp(b'{"Data": "8001", "SourceOriginIdentifier": "x"}', 2)),
        ("heartbeat", heartbeat_body("nobody")),
        ("heartbeat", heartbeat_body("known")),  # from another address than its registration
        ("heartbeat", dtp(write_task(TaskType.PING_PEER, {}), 1, "known")),
        ("heartbeat", dtp(b"garbage", 1, "known")), ("heartbeat", b"null"),
        ("peers", b" " * (16 * 1024 + 1)),
    ]
    for endpoint, body in cases:
        answer = call(root, "PUT", f"/api/Bootstrap/{endpoint}", body, ip="10.9.0.2")
        text = message(answer)
        assert text not in ("", "Pinging"), (endpoint, body[:60])
    assert set(server.registry.peers) == {"known"}
    assert server.counters["dotnet.refused"] == len(cases)
    trustless = call(root, "PUT", "/api/Bootstrap/verifyhash", b"{}")
    assert message(trustless).startswith("Trustless policy in effect")


def test_a_dotnet_client_cannot_take_a_v1_identifier(tmp_path: Path) -> None:
    """An identifier a /v1 node registered with its key cannot be claimed through the .NET
    API (which proves nothing); .NET and /v1 peer lists stay apart."""
    from p2pnet_tx.bootstrap.v1 import build_register

    reactor, server, root = make_server(tmp_path)
    key = Ed25519PrivateKey.generate()
    identifier = identifier_for_public_key(key)
    assert call(root, "POST", "/v1/register", build_register(key, 8001, now=reactor.seconds()),
                ip="10.10.0.1").code == 200
    refused = call(root, "PUT", "/api/Bootstrap/peers", register_body(identifier), ip="10.10.0.9")
    assert "Registration refused" in message(refused)
    assert server.registry.peers[identifier].ip == "10.10.0.1"
    call(root, "PUT", "/api/Bootstrap/peers", register_body("dotnet-only"), ip="10.10.0.2")
    assert [p["identifier"] for p in call(root, "GET", "/v1/peers").json()["peers"]] == [identifier]


def test_public_ip_methods_and_paths(tmp_path: Path) -> None:
    """publicip answers the source IP as text and ignores X-Forwarded-For; a wrong method is
    405, an unknown endpoint 404, both as PureMessages."""
    _, _, root = make_server(tmp_path)
    answer = call(root, "GET", "/api/Bootstrap/publicip", ip="2001:db8::7",
                  headers={"X-Forwarded-For": "1.2.3.4"})
    assert (answer.code, answer.body) == (200, b"2001:db8::7")
    assert answer.header("content-type").startswith("text/plain")
    assert call(root, "GET", "/api/bootstrap/PublicIP", ip="10.0.0.3").body == b"10.0.0.3"
    wrong = call(root, "GET", "/api/Bootstrap/peers")
    assert wrong.code == 405 and wrong.header("allow") == "PUT" and wrong.json()["Message"]
    assert call(root, "PUT", "/api/Bootstrap/nothing").code == 404


def test_network_task_payload_round_trip() -> None:
    """The tags .NET leaves in place are stripped, once or twice, and nothing else is."""
    task = NetworkTask(TaskType.HEARTBEAT, {}).to_packet().payload
    assert untag_payload(b"<Task>" + task + b"</Task>") == task
    assert untag_payload(b"<MiscData><Task>{}</Task></MiscData>") == b"{}"
    assert untag_payload(b"<Task>") == b"<Task>"
    assert untag_payload(b"{}") == b"{}"
