"""
Tests for L{p2pnet_tx.files.transfers}: two whole networks joined in memory (TLS and all) on
one L{MemoryReactorClock}, each with a L{Distribution} and a L{FileTransfers}.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.distribution import Distribution
from p2pnet_tx.files.manifest import manifest_of
from p2pnet_tx.files.protocol import FileMessage, encode_chunk, encode_message, parse
from p2pnet_tx.files.store import FileStore
from p2pnet_tx.files.transfers import (
    FileTransfers,
    NotARegularFile,
    Transfer,
    TransferEvent,
)
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.testing import CLIENT_ADDRESS, MemoryPump, complete_tcp_connection

KiB = 1024


def run_now(iterator: Iterator[Any]) -> Deferred[Any]:
    """A cooperate() that runs the whole iterator at once."""
    for _ in iterator:
        pass
    return succeed(None)


class Node:
    """A network with its distribution and file part, its files in C{root}."""

    def __init__(self, reactor: MemoryReactorClock, root: Path,
                 key: Ed25519PrivateKey | None = None, port: int = 8051, **kwargs: Any) -> None:
        self.root = root
        self.key = key or Ed25519PrivateKey.generate()
        self.port = port
        self.network = PeerNetwork(reactor, private_key=self.key)
        self.distribution = Distribution(self.network)
        self.store = FileStore(root / "files", min_free=0, quota=kwargs.pop("quota", None))
        self.files = FileTransfers(self.network, self.distribution, self.store,
                                   cooperate=run_now, **kwargs)
        self.events: list[tuple[str, str]] = []
        self.files.events.add(lambda e: self.events.append((e.kind, e.transfer.state)))
        self.files.startService()

    @property
    def identifier(self) -> str:
        return self.network.identifier


def _blocked(signum: int, frame: Any) -> None:
    raise AssertionError("send_file blocked: it opened or read what is not a regular file")


class TwoNodes(SynchronousTestCase):
    """Two nodes, A and B, joined in memory; A sends."""

    def setUp(self) -> None:
        self.tmp = Path(self.mktemp())
        self.tmp.mkdir()
        self.reactor = MemoryReactorClock()
        self.a = Node(self.reactor, self.tmp / "a")
        self.b = Node(self.reactor, self.tmp / "b")
        self.pump: MemoryPump | None = None

    def connect(self) -> None:
        """A dials B; both trust each other."""
        if not self.b.network.listening_port:
            self.b.network.listen(f"tcp:{self.b.port}")
        self.a.network.connect(GenericPeer("127.0.0.1", self.b.port))
        self.pump = complete_tcp_connection(self.reactor, CLIENT_ADDRESS)
        assert self.pump is not None
        self.pump.flush()
        self.assertEqual(len(self.a.network.trusted_peer_channels), 1)
        self.assertEqual(len(self.b.network.trusted_peer_channels), 1)

    def flush(self, turns: int = 500) -> None:
        for _ in range(turns):
            assert self.pump is not None
            self.pump.flush()
            self.reactor.advance(0)
            if not self.reactor.getDelayedCalls():
                return

    def source(self, size: int, name: str = "data.bin") -> tuple[str, str]:
        path = self.tmp / name
        data = os.urandom(size)
        path.write_bytes(data)
        return str(path), hashlib.sha256(data).hexdigest()

    def drop_connection(self) -> None:
        [channel] = self.a.network.trusted_peer_channels
        channel.abort("test")
        self.flush()

    def hostile_send(self, payload: bytes) -> None:
        """Send a File payload from A as it is, as a hostile sender would."""
        [channel] = self.a.network.trusted_peer_channels
        channel.send(DataTransmissionPacket(payload, DataPayloadFormat.FILE))
        self.flush()


class FileTransfersTests(TwoNodes):
    """A file sent from A to B arrives verified; every refusal and fault is handled."""

    # -- The happy path -------------------------------------------------------------------------

    def test_send_and_receive(self) -> None:
        """The file arrives in B's files/ with the same SHA-256; both sides say so."""
        self.connect()
        path, sha = self.source(700 * KiB + 3)
        [sent] = self.a.files.send_file(path)
        self.assertEqual((sent.direction, sent.peer, sent.size), ("send", self.b.identifier,
                                                                  700 * KiB + 3))
        self.flush()
        [received] = self.b.files.transfers()
        self.assertEqual((received.state, received.sha256, received.done),
                         ("done", sha, 700 * KiB + 3))
        self.assertEqual(received.path, str(self.b.root / "files" / "data.bin"))
        self.assertEqual(hashlib.sha256(Path(received.path).read_bytes()).hexdigest(), sha)
        self.assertEqual((sent.state, sent.done, sent.sha256), ("done", 700 * KiB + 3, sha))
        self.assertEqual(self.b.events, [("offered", "offered"), ("received", "done")])
        self.assertEqual(self.a.events, [("sent", "done")])
        self.assertEqual(os.listdir(self.b.root / "files" / ".partial"), [])
        self.assertEqual(os.listdir(self.a.root / "files" / ".outgoing"), [])
        self.assertEqual(self.a.files.counters["chunks_sent"], 3)

    def test_transfer_json_and_progress(self) -> None:
        """to_json has every field of the API and the rate; changed observers see progress."""
        self.connect()
        path, _ = self.source(600 * KiB)
        [sent] = self.a.files.send_file(path)
        seen: list[int] = []
        sent.changed.add(lambda t: seen.append(t.done))
        self.flush()
        self.assertEqual(set(sent.to_json()), {
            "id", "direction", "peer", "name", "size", "sha256", "done", "state", "reason",
            "started", "finished", "path", "rate"})
        self.assertEqual(len(sent.id), 12)
        self.assertEqual(seen[-1], 600 * KiB)
        self.assertIs(self.a.files.get(sent.id), sent)
        self.assertIsNone(self.a.files.get("000000000000"))

    def test_empty_file(self) -> None:
        """An empty file is offered, accepted with nothing needed, and placed."""
        self.connect()
        path, sha = self.source(0, "empty.txt")
        self.a.files.send_file(path)
        self.flush()
        [received] = self.b.files.transfers()
        self.assertEqual((received.state, received.sha256), ("done", sha))
        self.assertEqual(Path(received.path).read_bytes(), b"")

    def test_name_taken(self) -> None:
        """A second file of the same name is stored beside the first, never over it."""
        self.connect()
        (self.b.root / "files" / "data.bin").write_bytes(b"mine")
        path, _ = self.source(10)
        self.a.files.send_file(path)
        self.flush()
        self.assertEqual((self.b.root / "files" / "data.bin").read_bytes(), b"mine")
        self.assertEqual(self.b.files.transfers()[0].name, "data (1).bin")

    # -- API errors ------------------------------------------------------------------------------

    def test_send_errors(self) -> None:
        """send_file says clearly what is wrong with the path or the recipients."""
        path, _ = self.source(10)
        with self.assertRaises(ValueError) as no_peer:
            self.a.files.send_file(path)
        self.assertIn("no trusted peer", str(no_peer.exception))
        self.connect()
        with self.assertRaises(FileNotFoundError) as missing:
            self.a.files.send_file(str(self.tmp / "nope"))
        self.assertIn(str(self.tmp / "nope"), str(missing.exception))
        self.assertRaises(IsADirectoryError, self.a.files.send_file, str(self.tmp))
        with self.assertRaises(ValueError) as unknown:
            self.a.files.send_file(path, to=["someone"])
        self.assertIn("someone", str(unknown.exception))
        [transfer] = self.a.files.send_file(path, to=[self.b.identifier])
        self.assertEqual(transfer.peer, self.b.identifier)
        self.assertRaises(KeyError, self.a.files.cancel, "ffffffffffff")

    def test_send_refuses_what_is_not_a_regular_file(self) -> None:
        """send_file refuses a FIFO, a device or a directory before opening it: opening a FIFO
        with no writer, or reading a device, would block the reactor."""
        self.connect()
        fifo = str(self.tmp / "fifo")
        os.mkfifo(fifo)
        # A regression would block on the FIFO: the alarm turns that into a failure.
        previous = signal.signal(signal.SIGALRM, _blocked)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.alarm, 0)
        signal.alarm(10)
        for path in (fifo, "/dev/null"):
            with self.assertRaises(NotARegularFile) as refused:
                self.a.files.send_file(path)
            self.assertIn(f"{path} is not a regular file", str(refused.exception))
            self.assertIsInstance(refused.exception, OSError)
        with self.assertRaises(IsADirectoryError):
            self.a.files.send_file(str(self.tmp))
        self.assertEqual(self.a.files.transfers(), [])
        self.assertEqual(self.b.files.transfers(), [])

    # -- Refusals --------------------------------------------------------------------------------

    def refused_with(self, reason: str) -> None:
        [sent] = [t for t in self.a.files.transfers() if t.direction == "send"]
        self.assertEqual(sent.state, "refused")
        self.assertIn(reason, sent.reason)
        [received] = self.b.files.transfers()
        self.assertEqual(received.state, "refused")
        self.assertEqual(os.listdir(self.b.root / "files" / ".partial"), [])
        self.assertIn(("refused", "refused"), self.a.events)

    def test_refused_by_size(self) -> None:
        """A file over B's max_file_size is refused, with the reason, at the sender."""
        self.b = Node(self.reactor, self.tmp / "b2", max_file_size=1000)
        self.connect()
        self.a.files.send_file(self.source(1001)[0])
        self.flush()
        self.refused_with("too large: 1001 bytes offered, at most 1000")

    def test_refused_by_sender(self) -> None:
        """accept_from decides which peers may send files."""
        self.b = Node(self.reactor, self.tmp / "b2", accept_from=lambda peer: False)
        self.connect()
        self.a.files.send_file(self.source(10)[0])
        self.flush()
        self.refused_with("accepts no files from you")

    def test_refused_by_quota(self) -> None:
        """An offer that would take files/ past the quota is refused."""
        self.b = Node(self.reactor, self.tmp / "b2", quota=100 * KiB)
        self.connect()
        self.a.files.send_file(self.source(101 * KiB)[0])
        self.flush()
        self.refused_with("over quota")

    def test_refused_by_free_disk(self) -> None:
        """An offer that would leave less than min_free free on the disk is refused."""
        self.connect()
        self.b.store.min_free = 2**62
        self.a.files.send_file(self.source(10)[0])
        self.flush()
        self.refused_with("not enough free disk")

    # -- Cancel ----------------------------------------------------------------------------------

    def test_cancel_by_sender(self) -> None:
        """Cancelling a transfer tells the receiver, which deletes the partial file."""
        self.connect()
        [sent] = self.a.files.send_file(self.source(2048 * KiB)[0])
        assert self.pump is not None
        self.pump.pump()  # the offer, not the whole file
        self.pump.pump()
        self.a.files.cancel(sent.id)
        self.flush()
        self.assertEqual(sent.state, "cancelled")
        [received] = self.b.files.transfers()
        self.assertEqual(received.state, "cancelled")
        self.assertIn("cancelled by the sender", received.reason)
        self.assertEqual(os.listdir(self.b.root / "files" / ".partial"), [])
        self.assertIs(self.a.files.cancel(sent.id), sent)  # finished: left as it is

    def test_cancel_by_receiver(self) -> None:
        """The receiver's cancel reaches the sender."""
        self.connect()
        [sent] = self.a.files.send_file(self.source(2048 * KiB)[0])
        assert self.pump is not None
        self.pump.pump()
        self.pump.pump()
        [received] = self.b.files.transfers()
        self.b.files.cancel(received.id)
        self.flush()
        self.assertEqual(sent.state, "cancelled")
        self.assertIn("cancelled by the receiver", sent.reason)

    # -- Resume ----------------------------------------------------------------------------------

    def half_sent(self, size: int) -> Transfer:
        self.connect()
        [sent] = self.a.files.send_file(self.source(size)[0])
        assert self.pump is not None
        for _ in range(200):
            self.pump.pump()
            self.reactor.advance(0)
            if self.b.files.transfers() and self.b.files.transfers()[0].done >= size // 2:
                break
        self.assertLess(self.b.files.transfers()[0].done, size)
        return sent

    def test_resume_after_disconnect(self) -> None:
        """
        A disconnect pauses both sides; on reconnection the sender offers again and the
        receiver asks only for what it has not verified.
        """
        size = 64 * 256 * KiB  # 64 chunks, 2 checkpoints
        sent = self.half_sent(size)
        self.drop_connection()
        [received] = self.b.files.transfers()
        self.assertEqual((sent.state, received.state), ("paused", "paused"))
        before = self.a.files.counters["chunk_bytes_sent"]
        self.connect()
        self.flush()
        self.assertEqual((sent.state, received.state), ("done", "done"))
        again = self.a.files.counters["chunk_bytes_sent"] - before
        self.assertLess(again, size // 2 + 256 * KiB)
        self.assertEqual(received.sha256, sent.sha256)

    def test_resume_after_receiver_restart(self) -> None:
        """
        A receiver that stops (its state saved) and starts again with a new FileTransfers on
        the same directory resumes from its last checkpoint.
        """
        size = 64 * 256 * KiB
        sent = self.half_sent(size)
        self.b.files.stopService()
        self.drop_connection()
        self.b.network.close()
        reborn = Node(self.reactor, self.b.root, self.b.key, port=8052)
        [loaded] = reborn.files.transfers()
        self.assertEqual((loaded.state, loaded.size), ("paused", size))
        self.assertGreaterEqual(loaded.done, 32 * 256 * KiB)
        self.b = reborn
        before = self.a.files.counters["chunk_bytes_sent"]
        self.connect()
        self.flush()
        self.assertEqual((sent.state, loaded.state), ("done", "done"))
        again = self.a.files.counters["chunk_bytes_sent"] - before
        self.assertLessEqual(again, size - 32 * 256 * KiB)
        self.assertEqual(hashlib.sha256(Path(loaded.path).read_bytes()).hexdigest(), sent.sha256)

    def test_resume_after_sender_restart(self) -> None:
        """A sender that restarts loads its unfinished transfer and offers it again."""
        size = 64 * 256 * KiB
        sent = self.half_sent(size)
        self.a.files.stopService()
        self.drop_connection()
        self.a.network.close()
        self.a = Node(self.reactor, self.a.root, self.a.key)
        [loaded] = self.a.files.transfers()
        self.assertEqual((loaded.id, loaded.state, loaded.sha256),
                         (sent.id, "paused", sent.sha256))
        self.connect()
        self.flush()
        self.assertEqual(loaded.state, "done")
        self.assertEqual(self.b.files.transfers()[0].state, "done")
        self.assertLess(self.a.files.counters["chunk_bytes_sent"], size // 2 + 256 * KiB)

    def test_source_swapped_for_a_fifo_across_a_restart(self) -> None:
        """A sender that restarts and finds its file replaced by a FIFO fails the transfer
        with a reason, and never blocks on opening it."""
        sent = self.half_sent(64 * 256 * KiB)
        self.a.files.stopService()
        self.drop_connection()
        self.a.network.close()
        assert sent.path is not None
        os.unlink(sent.path)
        os.mkfifo(sent.path)
        self.a = Node(self.reactor, self.a.root, self.a.key)
        [loaded] = self.a.files.transfers()
        self.connect()
        self.flush()
        self.assertEqual(loaded.state, "failed")
        self.assertIn("not a regular file", loaded.reason or "")

    # -- Hostile input ---------------------------------------------------------------------------

    def test_wrong_chunk_hash_is_fetched_again(self) -> None:
        """A chunk that fails its hash is dropped, counted, and asked for again."""
        self.connect()
        answers: list[Any] = []
        self.a.files.distribution.set_handler(
            DataPayloadFormat.FILE, lambda channel, packet: answers.append(parse(packet.payload)))
        manifest = manifest_of(self.source(3 * KiB)[0], chunk_size=KiB)
        self.hostile_send(encode_message(FileMessage("offer", "00000000000a", manifest=manifest)))
        self.hostile_send(encode_chunk("00000000000a", 1, b"\0" * KiB))
        self.assertEqual(self.b.files.counters["chunks_bad_hash"], 1)
        self.assertEqual([a.op for a in answers], ["accept", "request"])
        self.assertEqual(answers[1].need, ((1, 2),))
        self.assertEqual(self.b.files.transfers()[0].state, "receiving")

    def test_chunk_for_unknown_transfer_is_counted(self) -> None:
        """A chunk of no transfer is counted and dropped; the peer stays."""
        self.connect()
        self.hostile_send(encode_chunk("0000000000bb", 0, b"x"))
        self.assertEqual(self.b.files.counters["chunks_unknown"], 1)
        self.assertEqual(len(self.b.network.trusted_peer_channels), 1)

    def test_out_of_range_chunk_drops_the_sender(self) -> None:
        """A chunk index past the file, or a chunk of the wrong length, drops the sender."""
        for index, data in ((3, b"x" * KiB), (1, b"x" * 10)):
            self.setUp()
            self.connect()
            manifest = manifest_of(self.source(3 * KiB)[0], chunk_size=KiB)
            self.hostile_send(encode_message(FileMessage("offer", "00000000000c",
                                                         manifest=manifest)))
            self.hostile_send(encode_chunk("00000000000c", index, data))
            self.assertEqual(self.b.files.counters["chunks_invalid"], 1)
            self.assertEqual(self.b.network.trusted_peer_channels, [])
            self.assertEqual(self.b.files.transfers()[0].state, "failed")
            self.assertEqual(os.listdir(self.b.root / "files" / ".partial"), [])

    def test_bad_manifest_is_refused(self) -> None:
        """An offer whose manifest does not parse is refused with the reason; no drop."""
        self.connect()
        answers: list[Any] = []
        self.a.files.distribution.set_handler(
            DataPayloadFormat.FILE, lambda channel, packet: answers.append(parse(packet.payload)))
        self.hostile_send(b'{"op":"offer","id":"00000000000d","manifest":{"name":"x",'
                          b'"size":-1,"sha256":"","chunk_size":1024,"chunks":""}}')
        [refusal] = answers
        self.assertEqual((refusal.op, refusal.transfer_id), ("refuse", "00000000000d"))
        self.assertIn("size", refusal.reason)
        self.assertEqual(self.b.files.counters["offers_invalid"], 1)
        self.assertEqual(len(self.b.network.trusted_peer_channels), 1)

    def test_garbage_drops_the_sender(self) -> None:
        """A File payload that is neither a message nor a chunk drops the sender."""
        self.connect()
        self.hostile_send(b"not a file message")
        self.assertEqual(self.b.files.counters["messages_invalid"], 1)
        self.assertEqual(self.b.network.trusted_peer_channels, [])

    def test_messages_for_unknown_transfers_are_ignored(self) -> None:
        """An accept or an ack for no transfer of ours is counted, nothing else."""
        self.connect()
        self.hostile_send(encode_message(FileMessage("accept", "0000000000ee", need=((0, 1),))))
        self.hostile_send(encode_message(FileMessage("ack", "0000000000ee", done=5)))
        self.assertEqual(self.b.files.counters["messages_unknown"], 2)
        self.assertEqual(len(self.b.network.trusted_peer_channels), 1)

    def test_event_type(self) -> None:
        """Events are TransferEvents holding the transfer."""
        self.connect()
        events: list[TransferEvent] = []
        self.b.files.events.add(events.append)
        self.a.files.send_file(self.source(10)[0])
        self.flush()
        self.assertEqual([e.kind for e in events], ["offered", "received"])
        self.assertIs(events[1].transfer, self.b.files.transfers()[0])


class DotNetFileTests(SynchronousTestCase):
    """In dotnet mode a file travels whole, in one DataTransmit of DataType File."""

    def setUp(self) -> None:
        self.tmp = Path(self.mktemp())
        self.tmp.mkdir()
        self.reactor = MemoryReactorClock()
        self.nodes = []
        for name in ("a", "b"):
            network = PeerNetwork(self.reactor, wire="dotnet")
            distribution = Distribution(network)
            files = FileTransfers(network, distribution,
                                  FileStore(self.tmp / name / "files", min_free=0),
                                  cooperate=run_now)
            files.startService()
            self.nodes.append((network, files))
        (a, self.a), (b, self.b) = self.nodes
        b.listen("tcp:8051")
        a.connect(GenericPeer("127.0.0.1", 8051))
        self.pump = complete_tcp_connection(self.reactor, CLIENT_ADDRESS)
        assert self.pump is not None
        for _ in range(100):
            self.pump.flush()
            self.reactor.advance(0.5)
            if a.trusted_peer_channels and b.trusted_peer_channels:
                break
        self.assertTrue(a.trusted_peer_channels and b.trusted_peer_channels)

    def flush(self) -> None:
        for _ in range(50):
            self.pump.flush()
            self.reactor.advance(0.5)

    def test_whole_file(self) -> None:
        """The .NET form carries the bytes; the receiver stores them under a made-up name."""
        data = os.urandom(100 * KiB)
        (self.tmp / "f.bin").write_bytes(data)
        [sent] = self.a.send_file(str(self.tmp / "f.bin"))
        self.flush()
        self.assertEqual(sent.state, "done")
        [received] = self.b.transfers()
        sha = hashlib.sha256(data).hexdigest()
        self.assertEqual((received.state, received.sha256), ("done", sha))
        self.assertEqual(received.name, f"dotnet-{sha[:16]}.bin")
        self.assertEqual(Path(received.path).read_bytes(), data)

    def test_refused_over_cap(self) -> None:
        """A file larger than the .NET packet can carry is refused before anything is sent."""
        from p2pnet_tx.files.dotnet import DOTNET_MAX_FILE

        with open(self.tmp / "big.bin", "wb") as file:
            file.truncate(DOTNET_MAX_FILE + 1)
        with self.assertRaises(ValueError) as caught:
            self.a.send_file(str(self.tmp / "big.bin"))
        self.assertIn(".NET", str(caught.exception))


class RepeatedOfferTests(TwoNodes):
    """What a receiver does with an offer it already answered."""

    def test_offer_of_a_received_file(self) -> None:
        """A sender that missed the receiver's done and offers again is told it is done."""
        self.connect()
        manifest = manifest_of(self.source(3 * KiB)[0], chunk_size=KiB)
        answers: list[Any] = []
        self.a.files.distribution.set_handler(
            DataPayloadFormat.FILE, lambda channel, packet: answers.append(parse(packet.payload)))
        self.hostile_send(encode_message(FileMessage("offer", "00000000001a", manifest=manifest)))
        for index in range(3):
            data = Path(self.tmp / "data.bin").read_bytes()[index * KiB:(index + 1) * KiB]
            self.hostile_send(encode_chunk("00000000001a", index, data))
        self.hostile_send(encode_message(FileMessage("offer", "00000000001a", manifest=manifest)))
        self.assertEqual([a.op for a in answers], ["accept", "ack", "done", "done"])
        self.assertEqual(len(self.b.files.transfers()), 1)
        self.assertEqual(sorted(os.listdir(self.b.root / "files")),
                         [".outgoing", ".partial", "data.bin"])

    def test_free_disk_counts_files_being_received(self) -> None:
        """The disk a partial file will take counts against the next offer's room."""
        import shutil

        self.connect()
        one, two = self.source(2 * 1024 * KiB, "one.bin")[0], self.source(2 * 1024 * KiB,
                                                                         "two.bin")[0]
        free = shutil.disk_usage(self.b.root).free
        self.b.store.min_free = free - 3 * 1024 * KiB
        self.a.files.send_file(one)
        assert self.pump is not None
        self.pump.pump()
        self.pump.pump()
        self.assertEqual(self.b.files.transfers()[0].state, "receiving")
        self.a.files.send_file(two)
        self.flush()
        states = sorted(t.state for t in self.b.files.transfers())
        self.assertEqual(states, ["done", "refused"])


class NodeOptionsTests(SynchronousTestCase):
    """twistd p2pnet's file options, and the node's file part."""

    def test_parse_size(self) -> None:
        """Sizes in bytes or with K, M, G, T suffixes; anything else is refused."""
        from p2pnet_tx.files.node import parse_size

        self.assertEqual(parse_size("500M"), 500 * 1024**2)
        self.assertEqual(parse_size("10GiB"), 10 * 1024**3)
        self.assertEqual(parse_size(4096), 4096)
        for bad in ("", "ten", "1.5G", "-1"):
            self.assertRaises(ValueError, parse_size, bad)

    def test_options(self) -> None:
        """The options are parsed to bytes; a bad one is a usage error naming it."""
        from twisted.python import usage

        from p2pnet_tx.tap import Options

        data_dir = self.mktemp()
        options = Options()
        options.parseOptions(["--data-dir", data_dir, "--files-quota", "1G",
                              "--control", "none"])
        self.assertEqual((options["files-quota"], options["files-max-size"],
                          options["files-min-free"]), (1024**3, 8 * 1024**3, 256 * 1024**2))
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--data-dir", data_dir, "--files-max-size", "big"])
        self.assertIn("--files-max-size", str(caught.exception))

    def test_node_has_the_file_part(self) -> None:
        """makeService gives the node a 'files' part storing in <data-dir>/files."""
        from p2pnet_tx.tap import Options, makeService

        data_dir = self.mktemp()
        options = Options()
        options.parseOptions(["--data-dir", data_dir, "--control", "none"])
        node = makeService(options)
        files = node.getServiceNamed("files")
        self.assertIsInstance(files, FileTransfers)
        self.assertEqual(files.store.root, Path(data_dir) / "files")
        self.assertEqual(files.status(), {"active": 0, "counters": {}})
