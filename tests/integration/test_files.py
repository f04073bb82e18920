"""
File transfer between two real C{twistd -n p2pnet} nodes on loopback (issue 12): a large file
arrives whole, a receiver killed with SIGKILL resumes, a chunk corrupted in transit is asked
for again, and a hostile sender writes nothing outside C{files/} nor past the quota.

The transfers are started and watched through the control API (C{POST /api/files},
C{GET /api/transfers}, C{GET /api/status}) with treq.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.web.client import HTTPConnectionPool

from p2pnet_tx.datadir import NodeDataDir
from p2pnet_tx.files.manifest import manifest_of
from p2pnet_tx.files.protocol import FileMessage, encode_chunk, encode_message, parse
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket, PacketType
from p2pnet_tx.peer import GenericPeer

from .support import free_port
from .test_twistd import NodeProcess, start_node

MiB = 1024 * 1024


def write_random_file(path: str, size: int) -> str:
    """Write C{size} pseudo-random bytes (fast: a repeated random block with a counter)."""
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        for i in range(0, size, MiB):
            piece = (i.to_bytes(8, "big") + block)[: min(MiB, size - i)]
            file.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for piece in iter(lambda: file.read(MiB), b""):
            digest.update(piece)
    return digest.hexdigest()


class Api:
    """The control API of a node, read from its data directory."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        # Not persistent: a kept-alive connection would leave its timer to later tests.
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    async def call(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        data = NodeDataDir(self.data_dir, reactor)
        url, token = data.control_url(), data.read_control_token()
        assert url and token, "the node has not written its control URL yet"
        response = await treq.request(
            method, url.rstrip("/") + path, headers={"Authorization": ["Bearer " + token]},
            data=None if body is None else json.dumps(body).encode(), pool=self.pool,
        )
        return response.code, json.loads(await response.content())

    async def until(self, method: str, path: str, accept, timeout: float = 30.0,
                    interval: float = 0.2) -> dict:
        last: object = None
        for _ in range(int(timeout / interval)):
            try:
                code, body = await self.call(method, path)
                last = body
                if code == 200 and accept(body):
                    return body
            except Exception as e:  # noqa: BLE001 - not up yet: try again
                last = e
            await deferLater(reactor, interval, lambda: None)
        raise AssertionError(f"{method} {path} never satisfied; last: {last}")


def trusted(count: int):
    return lambda status: status["counts"]["trusted"] == count


async def stop(*nodes: NodeProcess) -> None:
    for node in nodes:
        if not node.ended.called:
            node.transport.signalProcess(signal.SIGTERM)
    for node in nodes:
        await node.ended


async def two_nodes(tmp_path, *extra_b: str, transport: tuple[str, ...] = (),
                    b_port: int | None = None, a_peer_port: int | None = None):
    """Node A (the sender) dials node B (the receiver), or C{a_peer_port}; both trusted."""
    a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
    b_port = b_port or free_port()
    b = start_node(b_dir, b_port, free_port(), *transport, *extra_b)
    a = start_node(a_dir, free_port(), free_port(), *transport,
                   "--peer", f"127.0.0.1:{a_peer_port or b_port}")
    api_a, api_b = Api(a_dir), Api(b_dir)
    await api_a.until("GET", "/api/status", trusted(1))
    await api_b.until("GET", "/api/status", trusted(1))
    return a, b, api_a, api_b, b_port


def only_transfer(direction: str, state: str | None = None):
    def accept(body: dict) -> bool:
        found = [t for t in body["transfers"] if t["direction"] == direction]
        return bool(found) and (state is None or found[0]["state"] == state)
    return accept


@pytest_twisted.ensureDeferred
async def test_large_file_arrives_with_the_same_sha256(tmp_path) -> None:
    """A 200 MiB file sent with POST /api/files arrives whole in B's files/, same SHA-256."""
    source = str(tmp_path / "big.bin")
    expected = write_random_file(source, 200 * MiB)
    a, b, api_a, api_b, _ = await two_nodes(tmp_path)
    try:
        code, body = await api_a.call("POST", "/api/files", {"path": source, "to": None})
        assert code == 200, body
        [sent] = body["transfers"]
        assert sent["size"] == 200 * MiB and sent["direction"] == "send"
        done = await api_b.until("GET", "/api/transfers", only_transfer("receive", "done"),
                                 timeout=60)
        [received] = [t for t in done["transfers"] if t["direction"] == "receive"]
        assert received["sha256"] == expected
        assert received["path"] == str(tmp_path / "b" / "files" / "big.bin")
        assert sha256_of(received["path"]) == expected
        await api_a.until("GET", "/api/transfers", only_transfer("send", "done"))
        assert os.listdir(tmp_path / "b" / "files" / ".partial") == []
    finally:
        await stop(a, b)
    assert b"Traceback" not in a.output + b.output, (a.output + b.output).decode()


@pytest_twisted.ensureDeferred
async def test_receiver_killed_midway_resumes(tmp_path) -> None:
    """
    B is SIGKILLed while it receives a 200 MiB file (past its middle), then restarted: A
    offers the file again, B asks only for what it had verified and saved, and the file
    completes with less than half of it sent again.
    """
    source = str(tmp_path / "big.bin")
    expected = write_random_file(source, 200 * MiB)
    a, b, api_a, api_b, b_port = await two_nodes(tmp_path)
    b_dir = str(tmp_path / "b")
    try:
        code, body = await api_a.call("POST", "/api/files", {"path": source, "to": None})
        assert code == 200, body
        await api_b.until("GET", "/api/transfers", lambda body: any(
            t["direction"] == "receive" and t["done"] >= 110 * MiB for t in body["transfers"]),
            timeout=60, interval=0.02)
        b.transport.signalProcess(signal.SIGKILL)
        await b.ended
        status = await api_a.until("GET", "/api/status", trusted(0))
        sent_before = status["files"]["counters"]["chunk_bytes_sent"]
        assert sent_before < 200 * MiB
        b = start_node(b_dir, b_port, free_port())
        await api_b.until("GET", "/api/transfers", only_transfer("receive", "done"),
                          timeout=60)
        status = await api_a.until("GET", "/api/transfers", only_transfer("send", "done"))
        status = (await api_a.call("GET", "/api/status"))[1]
        sent_again = status["files"]["counters"]["chunk_bytes_sent"] - sent_before
        assert sent_again < 100 * MiB, (sent_before, sent_again)
        assert sha256_of(str(tmp_path / "b" / "files" / "big.bin")) == expected
    finally:
        await stop(a, b)


class _FlipOnce(Protocol):
    """One side of the proxy: passes bytes on; the client side flips one bit of its stream
    C{flip_at} bytes in, while its proxy is still armed."""

    def __init__(self, proxy: FlipProxy | None) -> None:
        self.peer: _FlipOnce | None = None
        self.proxy = proxy
        self.seen = 0
        self.pending: list[bytes] = []

    def connectionMade(self) -> None:
        if self.peer is not None:  # what the other side received before this one connected
            for data in self.peer.pending:
                self.transport.write(data)
            self.peer.pending = []

    def dataReceived(self, data: bytes) -> None:
        proxy = self.proxy
        if proxy is not None and proxy.armed and (
                self.seen <= proxy.flip_at < self.seen + len(data)):
            spot = proxy.flip_at - self.seen
            data = data[:spot] + bytes([data[spot] ^ 0x01]) + data[spot + 1:]
            proxy.armed = False
        self.seen += len(data)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason: object) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.loseConnection()


class _ToServer(ClientFactory):
    """Connects the proxy's server side; if it cannot, the client's connection is closed."""

    def __init__(self, inbound: _FlipOnce, outbound: _FlipOnce) -> None:
        self.inbound, self.outbound = inbound, outbound

    def buildProtocol(self, addr):
        return self.outbound

    def clientConnectionFailed(self, connector, reason) -> None:
        if self.inbound.transport is not None:
            self.inbound.transport.loseConnection()


class FlipProxy(Factory):
    """A TCP proxy to C{port} that flips one bit, C{flip_at} bytes into a client-to-server
    stream: the first that gets that far (a connection made while the server was not yet
    listening, which the client then dials again, flips nothing)."""

    def __init__(self, port: int, flip_at: int) -> None:
        self.port, self.flip_at = port, flip_at
        self.armed = True

    def buildProtocol(self, addr):
        inbound, outbound = _FlipOnce(self), _FlipOnce(None)
        inbound.peer, outbound.peer = outbound, inbound
        reactor.connectTCP("127.0.0.1", self.port, _ToServer(inbound, outbound))
        return inbound


@pytest_twisted.ensureDeferred
async def test_corrupted_chunk_is_detected_and_fetched_again(tmp_path) -> None:
    """
    Over plaintext TCP (--transport tcp --trust ping: TLS would catch the flip itself), a
    proxy flips one bit of A's stream 4 MiB in, inside a chunk: B's chunk hash fails, B asks
    for that chunk again, and the file arrives with the right SHA-256.
    """
    source = str(tmp_path / "f.bin")
    expected = write_random_file(source, 16 * MiB)
    b_port = free_port()
    proxy = FlipProxy(b_port, 4 * MiB)
    proxy_port = reactor.listenTCP(0, proxy, interface="127.0.0.1")
    try:
        a, b, api_a, api_b, _ = await two_nodes(
            tmp_path, transport=("--transport", "tcp", "--trust", "ping"), b_port=b_port,
            a_peer_port=proxy_port.getHost().port)
        try:
            code, body = await api_a.call("POST", "/api/files", {"path": source})
            assert code == 200, body
            await api_b.until("GET", "/api/transfers", only_transfer("receive", "done"),
                              timeout=60)
            assert not proxy.armed, "the file did not go through the proxy"
            status = (await api_b.call("GET", "/api/status"))[1]
            assert status["files"]["counters"].get("chunks_bad_hash") == 1, status
            assert sha256_of(str(tmp_path / "b" / "files" / "f.bin")) == expected
            sent = (await api_a.call("GET", "/api/status"))[1]["files"]["counters"]
            assert sent["chunks_sent"] == 64 + 1  # every chunk once, the bad one twice
        finally:
            await stop(a, b)
    finally:
        await proxy_port.stopListening()


@pytest_twisted.ensureDeferred
async def test_hostile_sender_cannot_escape_files_or_pass_the_quota(tmp_path) -> None:
    """
    A trusted but hostile sender (a network in the test process, speaking the file protocol
    by hand) offers files named to escape files/ and one past B's quota (--files-quota 1M),
    then sends a chunk outside the file: the names are neutralised inside files/, the
    oversized offer is refused with the reason, the out-of-range chunk gets the sender
    dropped, and B stays up.
    """
    b_dir = tmp_path / "b"
    b_port = free_port()
    b = start_node(str(b_dir), b_port, free_port(), "--files-quota", "1M")
    api_b = Api(str(b_dir))
    hostile = PeerNetwork(reactor)
    answers: list[FileMessage] = []
    hostile.handlers.set_handler(
        PacketType.DATA_TRANSMIT, lambda channel, packet: answers.append(parse(packet.payload)))
    try:
        await api_b.until("GET", "/api/status", lambda status: True)
        channel = await hostile.connect(GenericPeer("127.0.0.1", b_port))
        await channel.when_trusted()
        await api_b.until("GET", "/api/status", trusted(1))

        def send(payload: bytes) -> None:
            channel.send(DataTransmissionPacket(payload, DataPayloadFormat.FILE))

        content = tmp_path / "content.bin"
        content.write_bytes(b"x" * 3000)
        names = ["../../escape.txt", "/etc/passwd", "..\\..\\win.ini", "NUL", "a\x1b[31mb"]
        for number, name in enumerate(names):
            manifest = manifest_of(str(content), name=name, chunk_size=1024)
            transfer_id = f"{number:012x}"
            send(encode_message(FileMessage("offer", transfer_id, manifest=manifest)))
            for index in range(manifest.count):
                send(encode_chunk(transfer_id, index, b"x" * manifest.chunk_length(index)))
            # One at a time: B takes at most 4 files at once from one peer.
            body = await api_b.until("GET", "/api/transfers", lambda body, n=number: sum(
                t["state"] == "done" for t in body["transfers"]) == n + 1)
        stored = sorted(os.listdir(b_dir / "files"))
        assert stored == sorted([".outgoing", ".partial", "escape.txt", "passwd", "win.ini",
                                 "_NUL", "a[31mb"]), stored
        assert not (tmp_path / "escape.txt").exists() and not (b_dir / "escape.txt").exists()
        assert all(t["path"].startswith(str(b_dir / "files") + "/") for t in body["transfers"])

        big = tmp_path / "big.bin"
        big.write_bytes(b"y" * (2 * MiB))
        send(encode_message(FileMessage("offer", "0000000000ff", manifest=manifest_of(str(big)))))
        for _ in range(100):
            if any(a.op == "refuse" for a in answers):
                break
            await deferLater(reactor, 0.05, lambda: None)
        [refusal] = [a for a in answers if a.op == "refuse"]
        assert refusal.transfer_id == "0000000000ff" and "over quota" in refusal.reason

        manifest = manifest_of(str(content), name="c.bin", chunk_size=1024)
        send(encode_message(FileMessage("offer", "0000000000aa", manifest=manifest)))
        send(encode_chunk("0000000000aa", 7, b"z" * 1024))  # the file has 3 chunks
        await channel.when_closed()
        status = await api_b.until("GET", "/api/status", trusted(0))
        assert status["files"]["counters"]["chunks_invalid"] == 1
        assert not any(name.startswith("c") for name in os.listdir(b_dir / "files"))
        assert os.listdir(b_dir / "files" / ".partial") == []
    finally:
        await hostile.close()
        await stop(b)
    assert b"Traceback" not in b.output, b.output.decode()
