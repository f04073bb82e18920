#!/usr/bin/env python
"""
Issue 7's end-to-end figures and issue 8's TLS figures over real sockets on loopback, our node
over TLS (the default) and over plain TCP in the same run, each beside plain-Twisted baselines
measured in the same run, printed as ratios against their targets.

    python benchmarks/bench_network.py                  # about 10 minutes on 2 loaded cores
    python benchmarks/bench_network.py --quick          # a smoke test, about 75 s
    python benchmarks/bench_network.py --transport tls  # ours over TLS only (or: tcp; both)
    python benchmarks/bench_network.py --messages 100000 --rounds 3
    python benchmarks/bench_network.py --only streams   # figures 1, 2, 3, 5 (or: memory)
    python benchmarks/bench_network.py --only handshakes [--hold]   # handshakes per second
    python benchmarks/bench_network.py --only memory --tls-buffers keep  # without
                                                        # MODE_RELEASE_BUFFERS, to compare
    python benchmarks/bench_network.py --only breakdown # what an idle trusted channel holds
    python benchmarks/bench_network.py --only streams --profile plain   # cProfile both ends
    python benchmarks/bench_network.py --profile handshakes  # cProfile the TLS server
    python benchmarks/bench_network.py --only handshakes --tls-group X25519  # without the
                                                        # post-quantum hybrid, to compare

Flavors (L{_netbench.FLAVORS}): C{ours-tls}, our node as it runs by default (TLS 1.3, mutual,
key trust); C{ours-tcp}, our node over plaintext TCP (C{transport="tcp"}, C{always_trust});
C{plain-tcp}, the baseline: a plain Twisted L{Int32StringReceiver} over TCP; C{plain-tls}, the
same plain protocol over Twisted's TLS (L{TLSMemoryBIOFactory} with a L{NodeTLS}'s contexts:
TLS 1.3, mutual, Ed25519 certificates, as our node's).  C{--transport tls|tcp|both} (default
both) picks ours; the plain TCP baseline always runs, the plain TLS one with ours over TLS.

Streams: three processes.  This script only drives; a receiver child listens (a PeerNetwork per
transport of ours, and a plain Twisted server per baseline) and a sender child connects to each
(ours: a PeerNetwork of the same transport; the measured traffic starts once both sides trust
each other, and over TLS once the TLS handshake is done).  Both children are told what to do
over their stdin and answer on their stdout.  Time is C{time.monotonic()}, which is
CLOCK_MONOTONIC on Linux: one clock for every process of the host, so the sender's "first send"
and the receiver's "last packet" are comparable.

1. plain: N PureMessages (C{--messages}, default 200,000; ~180 B frames, ~36 MB) sent one way
   with a plain loop, C{for text in texts: channel.send_message(text)}, no pacing.  The baseline
   sender does, in the same kind of loop, C{proto.sendString(json.dumps({"type": "Message",
   "packet": {...the same three fields...}}).encode())} with a fresh
   C{datetime.now(timezone.utc).isoformat()} per message.  The receivers count in their Message
   handler; ours is the PeerNetwork's handler registry, the baseline an L{Int32StringReceiver}
   that does C{json.loads}, C{datetime.fromisoformat} on the time and a dict dispatch on the
   type to a handler.  Time runs from just before the sender's first send to the receiver's
   last packet.  Each message carries its sequence number: the receiver checks that N arrived
   and that the last is N-1 (TCP keeps order; a short count means a dropped connection).
   CPU seconds of each process (C{getrusage}) from just before the first send to the last
   packet (receiver) or until asked after it (sender, idle by then): per message.
   Issue 8's figure is ours over TLS against ours over TCP, round by round (target >= 0.7x).
2. paced: the same messages, but the sender writes while C{is_writable} and then waits for
   C{when_writable()} (ours), or, for the baseline, registers as a streaming producer with the
   transport and waits for C{resumeProducing}.  Same receivers.
3. RTT: one PureMessage in flight, echoed by the receiver's handler; p50 and p99 of all rounds.
4. memory: 10,000 idle trusted channels to one server in a fresh process, RSS delta divided by
   channels, per flavor (see L{_netbench}).
5. 1 MiB: DataTransmits with a 1 MiB payload (C{--big}, default 32 per round) sent with a plain
   loop, end to end as in 1; the baseline adds C{base64} of the payload to its JSON and decodes
   it on receipt.  MB/s of payload.
6. handshakes: light clients (over TLS each connection with its own Ed25519 key and
   certificate) against a fresh server; completed trusts per second on the server and its CPU
   per handshake: "handshakes per second on one core" is one over it (target >= 500/s over
   TLS).  Beside it ours over TCP and a plain Twisted TLS accept loop (see L{_netbench}),
   C{--handshake-rounds} rounds (default 3, 2 with C{--quick}), flavors rotating: medians.

Rounds (C{--rounds}, default 5) rotate which flavor goes first; rates and CPU are medians of
rounds, a ratio is the median of the per-round ratios.  Each run has a deadline; a run that
loses messages or whose connection aborts is reported, and makes the exit status 1.

C{--max-queued-bytes} sets C{ChannelLimits.max_queued_bytes} on both sides (the library's
default otherwise: the channel has C{drain}); C{max_frame_size} is 4 MiB on both sides.

C{--tls-group NAME} runs every TLS figure with that key-exchange group only (an OpenSSL group
name, e.g. C{X25519}); by default OpenSSL's own list, which puts the post-quantum hybrid
C{X25519MLKEM768} first, as the library does.  The handshake figure says which group each TLS
server negotiated.

C{--profile CASE} replaces the rounds by one run of CASE per flavor under cProfile in both
children, and prints each process's top functions by own time; C{--profile handshakes} runs
the TLS handshake figure once with the server under cProfile.  C{--only breakdown} lists what
an idle trusted channel holds (L{_channel_memory}).
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import twisted  # noqa: E402
from twisted.internet.defer import Deferred, gatherResults  # noqa: E402
from twisted.internet.interfaces import IHandshakeListener, IPushProducer  # noqa: E402
from twisted.internet.protocol import ClientFactory, Factory  # noqa: E402
from twisted.protocols.basic import Int32StringReceiver  # noqa: E402
from zope.interface import implementer  # noqa: E402

import _netbench as nb  # noqa: E402
from p2pnet_tx.channel import ChannelLimits, PeerChannel  # noqa: E402
from p2pnet_tx.network import PeerNetwork  # noqa: E402
from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket, PacketType  # noqa: E402
from p2pnet_tx.peer import GenericPeer  # noqa: E402

MiB = 1024 * 1024
MAX_FRAME = 4 * MiB
TEXT = " hello from a peer, hello from a peer, hello from a peer"  # 57 characters with "0"
RUN_TIMEOUT = 120.0  # no single run may take longer
STALL = 15.0  # a run whose receiver gets nothing for this long has lost its messages
HAS_DRAIN = hasattr(PeerChannel, "drain")
LABELS = nb.LABELS


QUEUE_CAP: int | None = None  # --max-queued-bytes, passed on to the children


def pair_channel_limits() -> ChannelLimits:
    """
    A 1 MiB payload is about 1.4 MB of base64 JSON: raise max_frame_size.  Before the new writer
    (no C{drain}), also raise max_queued_bytes above what a plain loop queues, so that the
    plain-loop figures can be measured at all.
    """
    if QUEUE_CAP is not None:
        return ChannelLimits(max_frame_size=MAX_FRAME, max_queued_bytes=QUEUE_CAP)
    if HAS_DRAIN:
        return ChannelLimits(max_frame_size=MAX_FRAME)
    return ChannelLimits(max_frame_size=MAX_FRAME, max_queued_bytes=512 * MiB)


def queue_cap_text() -> str:
    if QUEUE_CAP is not None:
        return f"ChannelLimits(max_queued_bytes={QUEUE_CAP:,}) from --max-queued-bytes"
    if HAS_DRAIN:
        return "the ChannelLimits default (the channel has drain())"
    return "ChannelLimits(max_queued_bytes=512 MiB): the channel has no drain() yet"


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat()


# -- The baseline: Int32StringReceiver + json --------------------------------------------------


@implementer(IPushProducer, IHandshakeListener)
class JsonNode(Int32StringReceiver):
    """
    Int32StringReceiver + json: C{json.loads}, C{datetime.fromisoformat} of the time, a dict
    dispatch on the type; a streaming producer so that the paced sender can wait.  Over TLS
    (C{tls}), C{on_connected} fires once the TLS handshake is done.
    """

    MAX_LENGTH = MAX_FRAME

    def __init__(self, identifier: str, handlers: dict[str, Callable[[Any, dict[str, Any]], Any]],
                 tls: bool = False):
        self.identifier = identifier
        self.handlers = handlers
        self.tls = tls
        self.paused = False
        self._waiters: list[Deferred[Any]] = []
        self.on_connected: Deferred[Any] | None = None
        self.lost = False

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        if not self.tls:
            self._connected()

    def handshakeCompleted(self) -> None:
        self._connected()

    def _connected(self) -> None:
        if self.on_connected is not None:
            self.on_connected.callback(self)

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(self)

    def stopProducing(self) -> None:
        pass

    @property
    def is_writable(self) -> bool:
        return not self.paused

    def when_writable(self) -> Deferred[Any]:
        waiter: Deferred[Any] = Deferred()
        if self.paused:
            self._waiters.append(waiter)
        else:
            waiter.callback(self)
        return waiter

    def send_message(self, text: str) -> None:
        self.sendString(json.dumps({"type": "Message", "packet": {
            "Message": text, "SourceOriginIdentifier": self.identifier,
            "SourceOriginTime": datetime.now(timezone.utc).isoformat()}}).encode())

    def send_data(self, payload: bytes) -> None:
        self.sendString(json.dumps({"type": "DataTransmit", "packet": {
            "Data": base64.b64encode(payload).decode(), "DataType": 2,
            "SourceOriginIdentifier": self.identifier,
            "SourceOriginTime": datetime.now(timezone.utc).isoformat()}}).encode())

    def stringReceived(self, string: bytes) -> None:
        envelope = json.loads(string)
        packet = envelope["packet"]
        packet["SourceOriginTime"] = datetime.fromisoformat(packet["SourceOriginTime"])
        self.handlers[envelope["type"]](self, packet)


# -- The receiver process ----------------------------------------------------------------------


class Sink:
    """
    The receiving side's state, shared by every flavor: counts the packets of a run and
    reports the last one's time; echoes instead while C{echo} is set.
    """

    def __init__(self) -> None:
        self.expected = self.received = 0
        self.run = ""
        self.echo = False
        self.cpu = 0.0
        self.payload_bytes = 0

    def arm(self, run: str, count: int) -> None:
        self.run = run
        self.expected, self.received, self.payload_bytes = count, 0, 0
        self.cpu = nb.cpu_seconds()

    def message(self, text: str, reply: Callable[[str], object]) -> None:
        if self.echo:
            reply(text)
            return
        self.received += 1
        if self.received == self.expected:
            self.finished(text.split(" ", 1)[0])

    def data(self, size: int, text: str) -> None:
        self.payload_bytes += size
        self.received += 1
        if self.received == self.expected:
            self.finished(text)

    def finished(self, last: str) -> None:
        now = time.monotonic()
        nb.say("DONE", self.run, self.received, last, f"{now:.6f}", f"{nb.cpu_seconds() - self.cpu:.6f}",
               self.payload_bytes)


def receiver_setup(flavors: list[str]) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        nb.start_logging("receiver")
        sink = Sink()

        def base_data(node: JsonNode, packet: dict[str, Any]) -> None:
            payload = base64.b64decode(packet["Data"])
            sink.data(len(payload), payload[:8].hex())

        base_handlers = {"Message": lambda node, packet: sink.message(packet["Message"],
                                                                      node.send_message),
                         "DataTransmit": base_data}
        listening: list[Deferred[Any]] = []
        for flavor in flavors:
            if nb.is_ours(flavor):
                network = nb.ours_network(reactor, flavor, channel_limits=pair_channel_limits())
                network.handlers.set_handler(
                    PacketType.MESSAGE, lambda channel, packet: sink.message(
                        packet.message, channel.send_message))
                network.handlers.set_handler(
                    PacketType.DATA_TRANSMIT, lambda channel, packet: sink.data(
                        len(packet.payload), packet.payload[:8].hex()))
                listening.append(network.listen(f"tcp:0:interface={nb.LOOPBACK}"))
            else:
                factory: Any = Factory.forProtocol(
                    lambda: JsonNode("b" * 56, base_handlers))
                factory.noisy = False
                if nb.is_tls(flavor):
                    factory = nb.plain_tls_server(reactor, factory)
                port = reactor.listenTCP(0, factory, interface=nb.LOOPBACK)
                listening.append(Deferred())
                listening[-1].callback(port)

        def ready(ports: list[Any]) -> None:
            nb.say("PORTS", ",".join(f"{flavor}={port.getHost().port}"
                                     for flavor, port in zip(flavors, ports)))

        gatherResults(listening).addCallback(ready).addErrback(
            lambda f: nb.say("ERROR", "listen", f.getErrorMessage()))
        profiling = nb.Profiling()

        def command(line: str) -> None:
            word, *args = line.split()
            if profiling.command(word, args):
                return
            if word == "arm":
                gc.collect()
                sink.echo = False
                sink.arm(args[0], int(args[1]))
                nb.say("ARMED")
            elif word == "echo":
                sink.echo = True
                nb.say("ECHOING")
            elif word == "status":
                nb.say("STATUS", sink.received, sink.expected)

        return command

    return setup


# -- The sender process ------------------------------------------------------------------------


class Sender:
    """The sending side: one connection per flavor to the receiver."""

    def __init__(self, reactor: Any, ports: dict[str, int]) -> None:
        self.reactor = reactor
        self.ports = ports
        self.networks: dict[str, PeerNetwork] = {}
        for flavor in ports:
            if nb.is_ours(flavor):
                network = nb.ours_network(reactor, flavor, channel_limits=pair_channel_limits())
                network.handlers.set_handler(
                    PacketType.MESSAGE, lambda channel, packet: self.pong(packet.message))
                self.networks[flavor] = network
        self.channels: dict[str, PeerChannel] = {}
        self.nodes: dict[str, JsonNode] = {}
        self.on_pong: Callable[[str], None] = lambda text: None
        self.cpu = 0.0
        self.refused = 0  # sends refused with SendBufferFull in the last run

    def pong(self, text: str) -> None:
        self.on_pong(text)

    async def connection(self, flavor: str) -> Any:
        """The open connection of C{flavor}: a channel of ours, or a baseline node."""
        return await (self.ours(flavor) if nb.is_ours(flavor) else self.base(flavor))

    async def ours(self, flavor: str) -> PeerChannel:
        """Our channel, trusted both ways; a new one if the last run dropped it."""
        channel = self.channels.get(flavor)
        if channel is not None and not channel.is_closed:
            return channel
        network = self.networks[flavor]
        peer_trusts_us: Deferred[None] = Deferred()
        peer_trusts_us.addTimeout(RUN_TIMEOUT, self.reactor)

        # The receiver sends its peer list once it trusts us.
        def watch(channel: PeerChannel, packet: Any) -> bool:
            if packet.kind is PacketType.PEER_GROUP and not peer_trusts_us.called:
                channel.on_data_received.remove(watch)
                peer_trusts_us.callback(None)
            return False

        adding = lambda channel: channel.on_data_received.add(watch)  # noqa: E731
        network.peer_added.add(adding)
        channel = await network.connect(GenericPeer(nb.LOOPBACK, self.ports[flavor]))
        await channel.when_trusted()
        await peer_trusts_us
        network.peer_added.remove(adding)
        self.channels[flavor] = channel
        return channel

    async def base(self, flavor: str) -> JsonNode:
        node = self.nodes.get(flavor)
        if node is not None and not node.lost:
            return node
        node = JsonNode("a" * 56, {"Message": lambda node, packet: self.pong(packet["Message"])},
                        tls=nb.is_tls(flavor))
        node.on_connected = Deferred()
        node.on_connected.addTimeout(RUN_TIMEOUT, self.reactor)
        factory: Any = ClientFactory.forProtocol(lambda: node)
        factory.noisy = False
        if nb.is_tls(flavor):
            factory = nb.plain_tls_client(self.reactor, factory)
        self.reactor.connectTCP(nb.LOOPBACK, self.ports[flavor], factory, timeout=10)
        await node.on_connected
        self.nodes[flavor] = node
        return node

    async def send(self, flavor: str, case: str, count: int) -> None:
        node: Any = await self.connection(flavor)
        gc.collect()
        self.refused = 0
        payload = os.urandom(MiB) if case == "big" else b""
        texts = [f"{i}{TEXT}" for i in range(count)] if case != "big" else []
        self.cpu, start = nb.cpu_seconds(), time.monotonic()
        try:
            if case == "plain":
                send = node.send_message
                for text in texts:
                    send(text)
            elif case == "paced":
                self.pace(node, texts)
            elif nb.is_ours(flavor):
                # Built in the loop, as the baseline builds its JSON in the loop.
                send, ident = node.send, node.local_identifier
                for _ in range(count):
                    send(DataTransmissionPacket(payload, DataPayloadFormat.MISC_DATA,
                                                source_origin_identifier=ident))
            else:
                send_data = node.send_data
                for _ in range(count):
                    send_data(payload)
        except Exception as e:  # SendBufferFull past the cap, or whatever else a send raises
            self.refused += 1
            nb.say("ERROR", type(e).__name__, str(e).replace("\n", " ")[:200])
        nb.say("SENT", f"{start:.6f}", f"{time.monotonic() - start:.6f}")

    def pace(self, node: Any, texts: list[str]) -> None:
        """Write while the node is writable, then wait for it to drain (the paced variant)."""
        send, count, sent = node.send_message, len(texts), 0

        def more(_: object = None) -> None:
            nonlocal sent
            while sent < count and node.is_writable:
                send(texts[sent])
                sent += 1
            if sent < count:
                node.when_writable().addCallback(more).addErrback(
                    lambda f: nb.say("ERROR", "pacing", f.getErrorMessage()))

        more()

    async def rtt(self, flavor: str, count: int) -> None:
        node: Any = await self.connection(flavor)
        samples: list[float] = []
        done: Deferred[None] = Deferred()
        done.addTimeout(RUN_TIMEOUT, self.reactor)
        sent_at = 0.0

        def send() -> None:
            nonlocal sent_at
            sent_at = time.perf_counter()
            node.send_message(f"ping {len(samples)}")

        def on_pong(text: str) -> None:
            samples.append(time.perf_counter() - sent_at)
            if len(samples) < count:
                send()
            elif not done.called:
                done.callback(None)

        self.on_pong = on_pong
        send()
        await done
        nb.say("RTT", *(f"{s * 1e6:.1f}" for s in samples))

    def status(self, flavor: str) -> str:
        if not nb.is_ours(flavor):
            node = self.nodes.get(flavor)
            return "none" if node is None else "closed" if node.lost else "open"
        channel = self.channels.get(flavor)
        if channel is None:
            return "none"
        return "open" if not channel.is_closed else "closed:" + (
            channel.close_reason or "?").replace(" ", "_")


def sender_setup(ports: dict[str, int]) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        nb.start_logging("sender")
        sender = Sender(reactor, ports)

        def run(coroutine: Any) -> None:
            Deferred.fromCoroutine(coroutine).addErrback(
                lambda f: nb.say("ERROR", f.type.__name__, f.getErrorMessage().replace("\n", " ")))

        async def connect() -> None:
            for flavor in ports:
                await sender.connection(flavor)
            nb.say("READY", "drain" if HAS_DRAIN else "no-drain")

        run(connect())
        profiling = nb.Profiling()
        last_flavor = next(iter(ports))

        def command(line: str) -> None:
            nonlocal last_flavor
            word, *args = line.split()
            if profiling.command(word, args):
                return
            if word == "send":
                last_flavor = args[0]
                run(sender.send(args[0], args[1], int(args[2])))
            elif word == "rtt":
                run(sender.rtt(args[0], int(args[1])))
            elif word == "state":
                nb.say("STATE", sender.status(args[0]))
            elif word == "cpu":
                nb.say("CPU", f"{nb.cpu_seconds() - sender.cpu:.6f}", sender.status(last_flavor),
                       sender.refused)

        return command

    return setup


# -- The driver --------------------------------------------------------------------------------


class Streams:
    """Runs the stream figures on a receiver and a sender child; collects them by case."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.flavors = nb.flavors_for(options.transport)
        self.cap = ([] if options.max_queued_bytes is None
                    else ["--max-queued-bytes", options.max_queued_bytes])
        self.receiver = nb.Child("--mode", "receiver", "--transport", options.transport,
                                 *self.cap)
        self.sender: nb.Child | None = None
        self.runs = 0
        self.round = -1  # -1 while warming up
        self.losses: list[str] = []
        # figures[case][flavor]: one dict per run (round, rate, cpu per packet of each process).
        self.figures: dict[str, dict[str, list[dict[str, float]]]] = {}
        self.rtts: dict[str, list[float]] = {flavor: [] for flavor in self.flavors}

    def start(self) -> str:
        ports = self.receiver.expect("PORTS", 30)[0]
        self.sender = nb.Child("--mode", "sender", "--ports", ports, *self.cap)
        return self.sender.expect("READY", 60)[0]

    def stop(self) -> None:
        for child in (self.sender, self.receiver):
            if child is not None:
                child.stop()

    def stream(self, flavor: str, case: str, count: int) -> None:
        """One timed run; a loss or an abort is recorded, never waited for past the deadline."""
        assert self.sender is not None
        self.runs += 1
        run = f"r{self.runs}"
        self.receiver.ask(f"arm {run} {count}", "ARMED")
        self.sender.send(f"send {flavor} {case} {count}")
        start = float(self.sender.expect("SENT", RUN_TIMEOUT)[0])
        done = self.wait_done(run, flavor)
        if done is not None:
            received, last = int(done[1]), done[2]
            end, receiver_cpu = float(done[3]), float(done[4])
        else:
            received = int(self.receiver.ask("status", "STATUS")[0])
            last, end, receiver_cpu = "(no DONE)", float("nan"), float("nan")
        cpu = self.sender.ask("cpu", "CPU")
        sender_cpu, status, refused = float(cpu[0]), cpu[1], int(cpu[2])
        expected_last = str(count - 1) if case != "big" else "" if done is None else last
        problems = []
        if received != count or last != expected_last:
            problems.append(f"received {received:,} of {count:,} (last {last})")
        if status.startswith("closed") and nb.is_ours(flavor):
            problems.append(f"channel {status}")
        if refused or self.sender.errors:
            problems.append("sender: " + "; ".join(self.sender.errors or ["send refused"]))
            self.sender.errors.clear()
        if problems:
            line = f"{LABELS[flavor]} {case}: " + ", ".join(problems)
            print(f"    LOST: {line}")
            self.losses.append(line)
            return
        seconds = end - start
        unit = MiB / 1e6 if case == "big" else 1  # MB of payload per DataTransmit
        self.figures.setdefault(case, {}).setdefault(flavor, []).append({
            "round": self.round, "rate": count * unit / seconds, "seconds": seconds,
            "sender": sender_cpu / count, "receiver": receiver_cpu / count,
            "cpu": (sender_cpu + receiver_cpu) / count})

    def wait_done(self, run: str, flavor: str) -> list[str] | None:
        """
        The receiver's DONE for C{run}, or None once the sender's connection is gone, the
        receiver has made no progress for C{STALL} seconds, or C{RUN_TIMEOUT} has passed.
        """
        assert self.sender is not None
        deadline = time.monotonic() + RUN_TIMEOUT
        progress, since, closed_at = -1, time.monotonic(), None
        while True:
            try:
                done = self.receiver.expect("DONE", 1.0)
                if done[0] == run:
                    return done
                continue
            except TimeoutError:
                pass
            now = time.monotonic()
            received = int(self.receiver.ask("status", "STATUS")[0])
            if received != progress:
                progress, since = received, now
            state = self.sender.ask(f"state {flavor}", "STATE")[0]
            if state != "open" and closed_at is None:
                closed_at = now  # what was in flight may still arrive: one more poll
            elif closed_at is not None or now - since > STALL or now > deadline:
                return None

    def rtt(self, flavor: str, count: int) -> None:
        assert self.sender is not None
        self.receiver.ask("echo", "ECHOING")
        self.sender.send(f"rtt {flavor} {count}")
        try:
            self.rtts[flavor].extend(float(x) for x in self.sender.expect("RTT", RUN_TIMEOUT))
        except TimeoutError:
            self.losses.append(f"{LABELS[flavor]} rtt: no answer within {RUN_TIMEOUT:.0f} s")

    def profile(self, case: str, count: int, top: int = 18) -> None:
        """One more run of C{case} per flavor under cProfile in both children; print the top."""
        import pstats
        import tempfile

        assert self.sender is not None
        for flavor in self.flavors:
            paths = {}
            for role, child in (("sender", self.sender), ("receiver", self.receiver)):
                paths[role] = os.path.join(tempfile.gettempdir(),
                                           f"bench_network.{case}.{flavor}.{role}.prof")
                child.ask("prof-start", "PROFILING")
            self.stream(flavor, case, count)
            for role, child in (("sender", self.sender), ("receiver", self.receiver)):
                child.ask(f"prof-stop {paths[role]}", "PROFILED")
                print(f"\n  profile: {LABELS[flavor]} {case}, {role} ({paths[role]}), "
                      f"by own time:")
                stats = pstats.Stats(paths[role], stream=sys.stdout)
                stats.sort_stats("tottime").print_stats(top)

    def run(self) -> None:
        options = self.options
        for flavor in self.flavors:  # warm every path up
            self.stream(flavor, "plain", min(options.messages, 20_000))
            self.stream(flavor, "big", 2)
            self.rtt(flavor, 50)
        self.figures.clear()
        self.rtts = {flavor: [] for flavor in self.flavors}
        for index in range(options.rounds):
            self.round = index
            shift = index % len(self.flavors)
            order = self.flavors[shift:] + self.flavors[:shift]
            for case, count in (("plain", options.messages), ("paced", options.messages),
                                ("big", options.big)):
                for flavor in order:
                    self.stream(flavor, case, count)
            for flavor in order:
                self.rtt(flavor, options.pings)
            print(f"  round {index + 1}/{options.rounds} done "
                  f"(load average {os.getloadavg()[0]:.2f})", flush=True)


# Ratios printed for each stream case, where both flavors ran: (numerator, denominator).
COMPARISONS = (("ours-tcp", "plain-tcp"), ("ours-tls", "plain-tcp"), ("ours-tls", "plain-tls"),
               ("ours-tls", "ours-tcp"), ("plain-tls", "plain-tcp"))


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs) if runs else float("nan")


def round_ratios(a: list[dict[str, float]], b: list[dict[str, float]],
                 key: str = "rate") -> list[float]:
    """C{a / b} of C{key}, round by round, for the rounds where both completed."""
    by_round = {run["round"]: run[key] for run in b}
    return [run[key] / by_round[run["round"]] for run in a if run["round"] in by_round]


def report_streams(streams: Streams, options: argparse.Namespace, results: dict[str, Any]) -> None:
    titles = {
        "plain": f"1. {options.messages:,} small PureMessages, plain loop, end to end",
        "paced": f"2. {options.messages:,} small PureMessages, paced (when_writable / producer)",
        "big": f"5. {options.big} x 1 MiB DataTransmit, plain loop, end to end (MB/s of payload)",
    }
    for case, title in titles.items():
        runs = streams.figures.get(case, {})
        print(f"  {title}")
        unit, scale, cpu_unit = ("MB/s", 1e3, "ms/MiB") if case == "big" else ("msg/s", 1e6,
                                                                                 "us/msg")
        figure = results.setdefault(case, {"rate": {}, "cpu": {}, "ratio": {}, "cpu_ratio": {}})
        for flavor in streams.flavors:
            mine = runs.get(flavor, [])
            if not mine:
                print(f"    {LABELS[flavor]:10s} no complete run")
                continue
            figure["rate"][flavor] = median_of(mine, "rate")
            figure["cpu"][flavor] = median_of(mine, "cpu") * scale
            print(f"    {LABELS[flavor]:10s} {median_of(mine, 'rate'):10,.1f} {unit}   CPU "
                  f"sender {median_of(mine, 'sender') * scale:7.2f}  receiver "
                  f"{median_of(mine, 'receiver') * scale:7.2f}  both "
                  f"{median_of(mine, 'cpu') * scale:7.2f} {cpu_unit}")
        for a, b in COMPARISONS:
            ratios = round_ratios(runs.get(a, []), runs.get(b, []))
            if not ratios:
                continue
            cpu = round_ratios(runs.get(b, []), runs.get(a, []), "cpu")
            figure["ratio"][a, b] = statistics.median(ratios)
            figure["cpu_ratio"][a, b] = statistics.median(cpu)
            print(f"    {LABELS[a]:>9s} / {LABELS[b]:9s} rate {statistics.median(ratios):5.2f}x "
                  f"(rounds: {' '.join(f'{r:.2f}' for r in ratios)}); CPU "
                  f"{statistics.median(cpu):.2f}x as efficient")
    pct: dict[str, tuple[float, float]] = {}
    for flavor, samples in streams.rtts.items():
        if samples:
            samples.sort()
            pct[flavor] = (samples[len(samples) // 2], samples[int(len(samples) * 0.99)])
    if pct:
        count = max(len(samples) for samples in streams.rtts.values())
        print(f"  3. ping-pong, one PureMessage in flight, {count:,} round trips each")
        for flavor, (p50, p99) in pct.items():
            print(f"    {LABELS[flavor]:10s} p50 {p50:6.0f} us  p99 {p99:6.0f} us")
        rtt = results.setdefault("rtt", {"p50": {}, "ratio": {}})
        for flavor, (p50, _) in pct.items():
            rtt["p50"][flavor] = p50
        for a, b in COMPARISONS:
            if a in pct and b in pct:
                rtt["ratio"][a, b] = pct[a][0] / pct[b][0]
                print(f"    {LABELS[a]:>9s} / {LABELS[b]:9s} p50 {pct[a][0] / pct[b][0]:.2f}x, "
                      f"p99 {pct[a][1] / pct[b][1]:.2f}x")


def summary(results: dict[str, Any]) -> None:
    rows: list[tuple[str, ...]] = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    def stream_row(name: str, case: str, a: str, b: str, unit: str, target: str = "",
                   met: Callable[[float], bool] | None = None, cpu: bool = False) -> None:
        figure = results.get(case, {})
        ratio = figure.get("cpu_ratio" if cpu else "ratio", {}).get((a, b))
        if ratio is None:
            return
        values = figure["cpu" if cpu else "rate"]
        rows.append((name, f"{LABELS[a]} {values[a]:,.1f} {unit}",
                     f"{LABELS[b]} {values[b]:,.1f} {unit}", f"{ratio:.2f}x", target,
                     verdict(met(ratio)) if met else ""))

    # Issue 7: our node against plain Twisted on the same transport.
    stream_row("1. plain loop, small", "plain", "ours-tcp", "plain-tcp", "msg/s", ">= 1.5x",
               lambda r: r >= 1.5)
    stream_row("1. CPU per message, both processes", "plain", "ours-tcp", "plain-tcp", "us",
               ">= 1.5x as efficient", lambda r: r >= 1.5, cpu=True)
    stream_row("2. paced, small", "paced", "ours-tcp", "plain-tcp", "msg/s", ">= 1.3x",
               lambda r: r >= 1.3)
    rtt = results.get("rtt", {})
    if ("ours-tcp", "plain-tcp") in rtt.get("ratio", {}):
        ratio = rtt["ratio"]["ours-tcp", "plain-tcp"]
        rows.append(("3. RTT p50", f"ours/TCP {rtt['p50']['ours-tcp']:,.0f} us",
                     f"plain/TCP {rtt['p50']['plain-tcp']:,.0f} us", f"{ratio:.2f}x",
                     "<= 1.2x", verdict(ratio <= 1.2)))
    memory = results.get("memory", {})

    def memory_row(a: str, b: str, target: str = "") -> None:
        if a in memory and b in memory:
            ours, base = memory[a], memory[b]
            met = ""
            if target:
                met = verdict(ours["kib"] <= 4 and ours["channels"] >= ours["target"])
            rows.append((f"4. RSS per idle trusted channel ({ours['channels']:,})",
                         f"{LABELS[a]} {ours['kib']:.2f} KiB", f"{LABELS[b]} {base['kib']:.2f} KiB",
                         f"{ours['kib'] / max(base['kib'], 1e-9):.2f}x", target, met))

    memory_row("ours-tcp", "plain-tcp", "<= 4 KiB each")
    stream_row("5. 1 MiB DataTransmit", "big", "ours-tcp", "plain-tcp", "MB/s", ">= 3x",
               lambda r: r >= 3.0)
    # The same over TLS (no target of their own), then issue 8's.
    stream_row("1. plain loop, small", "plain", "ours-tls", "plain-tls", "msg/s")
    stream_row("2. paced, small", "paced", "ours-tls", "plain-tls", "msg/s")
    if ("ours-tls", "plain-tls") in rtt.get("ratio", {}):
        rows.append(("3. RTT p50", f"ours/TLS {rtt['p50']['ours-tls']:,.0f} us",
                     f"plain/TLS {rtt['p50']['plain-tls']:,.0f} us",
                     f"{rtt['ratio']['ours-tls', 'plain-tls']:.2f}x", "", ""))
    memory_row("ours-tls", "plain-tls")
    stream_row("5. 1 MiB DataTransmit", "big", "ours-tls", "plain-tls", "MB/s")
    stream_row("TLS vs TCP: plain loop, small", "plain", "ours-tls", "ours-tcp", "msg/s",
               ">= 0.7x", lambda r: r >= 0.7)
    stream_row("TLS vs TCP: 1 MiB", "big", "ours-tls", "ours-tcp", "MB/s")
    handshakes = results.get("handshakes", {})
    for flavor, target in (("ours-tls", ">= 500/s on one core"), ("ours-tcp", "")):
        if flavor not in handshakes:
            continue
        hs = handshakes[flavor]
        base = handshakes.get("plain-tls")
        group = f", {hs['group']}" if flavor == "ours-tls" else ""
        rows.append((f"6. handshakes/s on one core ({LABELS[flavor][5:]}{group})",
                     f"{LABELS[flavor]} {hs['one_core']:,.0f}/s (wall {hs['rate']:,.0f}/s)",
                     f"plain/TLS {base['one_core']:,.0f}/s" if base else "",
                     f"{hs.get('ratio', hs['one_core'] / base['one_core']):.2f}x" if base else "",
                     target,
                     verdict(hs["one_core"] >= 500 and hs["complete"]) if target else ""))
    if not rows:
        return
    headers = ("figure", "ours", "baseline", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in (*rows, headers)) for i in range(6)]
    print("\nSummary (medians of rounds; ratio: median of the per-round ratios, ours / baseline "
          "for rates, RTT and memory, baseline / ours for CPU):")
    for r in (headers, *rows):
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--only", choices=("streams", "memory", "handshakes", "breakdown"),
                        help="run one part only")
    parser.add_argument("--transport", choices=("tls", "tcp", "both"), default="both",
                        help="our node over TLS, over TCP, or both (default); the plain TCP "
                             "baseline always runs, the plain TLS one with TLS")
    parser.add_argument("--messages", type=int, help="small messages per run (default 200,000)")
    parser.add_argument("--big", type=int, help="1 MiB DataTransmits per run (default 32)")
    parser.add_argument("--pings", type=int, help="round trips per round (default 1,000)")
    parser.add_argument("--rounds", type=int, help="rounds of the stream figures (default 5)")
    parser.add_argument("--channels", type=int, help="idle channels for memory (default 10,000)")
    parser.add_argument("--handshakes", type=int, help="handshakes per server (default 5,000)")
    parser.add_argument("--handshake-rounds", type=int,
                        help="rounds of the handshake figure, flavors rotating (default 3)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="client connections in flight for memory/handshakes (default 100)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds each many-channels client run may take (default 60)")
    parser.add_argument("--hold", action="store_true",
                        help="handshakes: clients keep their channels open")
    parser.add_argument("--tls-buffers", choices=("release", "keep"), default="release",
                        help="memory: 'keep' clears OpenSSL's MODE_RELEASE_BUFFERS on the TLS "
                             "servers, to show what it saves (default: as the library sets it)")
    parser.add_argument("--tls-group", metavar="GROUP",
                        help="TLS figures: offer and accept only this key-exchange group (an "
                             "OpenSSL name, e.g. X25519), set in an OpenSSL configuration the "
                             "children inherit; default: OpenSSL's list, post-quantum hybrid "
                             "X25519MLKEM768 first (the library's default is unchanged)")
    parser.add_argument("--profile", choices=("plain", "paced", "big", "handshakes"),
                        help="streams: instead of the rounds, one run of this case per flavor "
                             "under cProfile in both children; handshakes: one run of the TLS "
                             "handshake figure, the server under cProfile")
    parser.add_argument("--max-queued-bytes", type=int,
                        help="streams: ChannelLimits.max_queued_bytes on both sides (default: "
                             "the library's once the channel has drain(), else 512 MiB)")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--flavor", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    options = parser.parse_args()
    global QUEUE_CAP
    QUEUE_CAP = options.max_queued_bytes

    if options.mode is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us through stdin
        nb.raise_fd_limit()
        n = options.channels
        setups = {
            "receiver": lambda: receiver_setup(nb.flavors_for(options.transport)),
            "sender": lambda: sender_setup({
                flavor: int(port) for flavor, port in
                (pair.split("=") for pair in options.ports.split(","))}),
            "mem-server": lambda: nb.mem_server_setup(options.flavor, n,
                                                      options.tls_buffers == "keep"),
            "hs-server": lambda: nb.hs_server_setup(options.flavor, n),
            "mem-clients": lambda: nb.mem_clients_setup(options.flavor, options.port, n,
                                                        options.concurrency, options.budget),
            "hs-clients": lambda: nb.hs_clients_setup(options.flavor, options.port, n,
                                                      options.concurrency, options.budget,
                                                      options.hold),
        }
        return nb.run_child(setups[options.mode]())

    quick = options.quick
    options.messages = options.messages or (20_000 if quick else 200_000)
    options.big = options.big or (4 if quick else 32)
    options.pings = options.pings or (200 if quick else 1_000)
    options.rounds = options.rounds or (2 if quick else 5)
    options.channels = options.channels or (1_000 if quick else 10_000)
    options.handshakes = options.handshakes or (500 if quick else 5_000)
    options.handshake_rounds = options.handshake_rounds or (2 if quick else 3)

    if options.only == "breakdown":
        from _channel_memory import main as breakdown

        return breakdown(quick)

    from twisted.internet import reactor

    started = time.perf_counter()
    flavors = nb.flavors_for(options.transport)
    print(f"Python {platform.python_version()}, Twisted {twisted.__version__}, reactor "
          f"{type(reactor).__name__}, {os.cpu_count()} CPUs, {platform.machine()}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; clock: time.monotonic() "
          f"(CLOCK_MONOTONIC, shared by the processes of this host)")
    print(f"Flavors: {', '.join(LABELS[f] for f in flavors)} (--transport {options.transport})")
    if options.tls_group:
        path = nb.use_tls_group(options.tls_group)
        print(f"TLS key exchange: {options.tls_group} only (--tls-group; OPENSSL_CONF={path})")
    results: dict[str, Any] = {}
    losses: list[str] = []
    if options.profile == "handshakes":
        nb.raise_fd_limit()
        nb.profile_handshakes(options)
        return 0
    if options.only in (None, "streams"):
        streams = Streams(options)
        try:
            streams.start()
            queue = queue_cap_text()
            what = (f"one profiled run per flavor of {options.profile}" if options.profile else
                    f"{options.rounds} rounds, flavors rotating")
            print(f"\nStreams: sender and receiver in two processes over loopback, {what}; "
                  f"queue cap: {queue}")
            if options.profile:
                streams.profile(options.profile, {"big": options.big}.get(options.profile,
                                                                          options.messages))
            else:
                streams.run()
        finally:
            streams.stop()
        if not options.profile:  # profiled runs are no figures
            report_streams(streams, options, results)
        losses = streams.losses
    if options.only in (None, "memory", "handshakes") and not options.profile:
        nb.run_many(options, results)
    summary(results)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; total "
          f"{time.perf_counter() - started:.1f} s")
    if losses:
        print(f"\n{len(losses)} run(s) LOST MESSAGES or aborted:")
        for line in losses:
            print(f"  {line}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
