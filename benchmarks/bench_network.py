#!/usr/bin/env python
"""
Issue 7's end-to-end figures over real sockets on loopback, each beside a plain-Twisted baseline
measured in the same run, printed as ratios against their targets.

    python benchmarks/bench_network.py                  # about 4 minutes on 2 loaded cores
    python benchmarks/bench_network.py --quick          # a smoke test, about 30 s
    python benchmarks/bench_network.py --messages 100000 --rounds 3
    python benchmarks/bench_network.py --only streams   # figures 1, 2, 3, 5 (or: memory)
    python benchmarks/bench_network.py --only handshakes [--hold]   # key handshakes per second
    python benchmarks/bench_network.py --only breakdown # what an idle trusted channel holds
    python benchmarks/bench_network.py --only streams --profile plain   # cProfile both ends

Streams: three processes.  This script only drives; a receiver child listens (a PeerNetwork, and
a plain Twisted server for the baseline) and a sender child connects to both (the PeerNetwork
with the default key trust; the measured traffic starts once both sides trust each other).
Both children are told what to do over their stdin and answer on their stdout.  Time is
C{time.monotonic()}, which is CLOCK_MONOTONIC on Linux: one clock for every process of the host,
so the sender's "first send" and the receiver's "last packet" are comparable.

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
2. paced: the same messages, but the sender writes while C{is_writable} and then waits for
   C{when_writable()} (ours), or, for the baseline, registers as a streaming producer with the
   transport and waits for C{resumeProducing}.  Same receivers.
3. RTT: one PureMessage in flight, echoed by the receiver's handler; p50 and p99 of all rounds.
4. memory: 10,000 idle trusted channels to one PeerNetwork in a fresh server process, RSS delta
   divided by channels, against a plain Twisted server holding as many Int32StringReceivers
   (see L{_netbench}).
5. 1 MiB: DataTransmits with a 1 MiB payload (C{--big}, default 32 per round) sent with a plain
   loop, end to end as in 1; the baseline adds C{base64} of the payload to its JSON and decodes
   it on receipt.  MB/s of payload.

Rounds (C{--rounds}, default 5) alternate which side goes first; rates and CPU are medians of
rounds, a ratio is the median of the per-round ratios.  Each run has a deadline; a run that
loses messages or whose connection aborts is reported, and makes the exit status 1.

The library's writer is being replaced (issue 7 item 6).  Until C{PeerChannel.drain} exists, a
plain loop of 36 MB aborts a channel at the default C{max_queued_bytes} (1 MiB), so this script
raises it (L{pair_channel_limits}); once C{drain} exists it leaves the default alone.
C{--max-queued-bytes} sets it on both sides (C{--max-queued-bytes 1048576} shows the abort).

C{--profile CASE} replaces the rounds by one run of CASE per side under cProfile in both
children, and prints each process's top functions by own time.  C{--only breakdown} lists what
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
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.interfaces import IPushProducer  # noqa: E402
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


@implementer(IPushProducer)
class JsonNode(Int32StringReceiver):
    """
    Int32StringReceiver + json: C{json.loads}, C{datetime.fromisoformat} of the time, a dict
    dispatch on the type; a streaming producer so that the paced sender can wait.
    """

    MAX_LENGTH = MAX_FRAME

    def __init__(self, identifier: str, handlers: dict[str, Callable[[Any, dict[str, Any]], Any]]):
        self.identifier = identifier
        self.handlers = handlers
        self.paused = False
        self._waiters: list[Deferred[Any]] = []
        self.on_connected: Deferred[Any] | None = None
        self.lost = False

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
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


class Profiling:
    """C{prof-start} / C{prof-stop PATH} for either child: cProfile of everything in between."""

    def __init__(self) -> None:
        self.profile: Any = None

    def command(self, word: str, args: list[str]) -> bool:
        if word == "prof-start":
            import cProfile

            self.profile = cProfile.Profile()
            self.profile.enable()
            nb.say("PROFILING")
        elif word == "prof-stop":
            self.profile.disable()
            self.profile.dump_stats(args[0])
            nb.say("PROFILED")
        else:
            return False
        return True


class Sink:
    """
    The receiving side's state, shared by ours and the baseline: counts the packets of a run and
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


def receiver_setup(reactor: Any) -> Callable[[str], None]:
    nb.start_logging("receiver")
    network = PeerNetwork(reactor, channel_limits=pair_channel_limits())
    sink = Sink()

    network.handlers.set_handler(
        PacketType.MESSAGE, lambda channel, packet: sink.message(packet.message,
                                                                 channel.send_message))
    network.handlers.set_handler(
        PacketType.DATA_TRANSMIT,
        lambda channel, packet: sink.data(len(packet.payload), packet.payload[:8].hex()))

    def base_data(node: JsonNode, packet: dict[str, Any]) -> None:
        payload = base64.b64decode(packet["Data"])
        sink.data(len(payload), payload[:8].hex())

    base_handlers = {"Message": lambda node, packet: sink.message(packet["Message"],
                                                                  node.send_message),
                     "DataTransmit": base_data}
    base_factory = Factory.forProtocol(lambda: JsonNode("b" * 32, base_handlers))
    base_factory.noisy = False
    base_port = reactor.listenTCP(0, base_factory, interface=nb.LOOPBACK)

    def listening(port: Any) -> None:
        nb.say("PORTS", port.getHost().port, base_port.getHost().port)

    network.listen(f"tcp:0:interface={nb.LOOPBACK}").addCallback(listening)
    profiling = Profiling()

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


# -- The sender process ------------------------------------------------------------------------


class Sender:
    """The sending side: one channel of ours and one baseline connection to the receiver."""

    def __init__(self, reactor: Any, ports: tuple[int, int]) -> None:
        self.reactor = reactor
        self.ports = ports
        self.network = PeerNetwork(reactor, channel_limits=pair_channel_limits())
        self.network.handlers.set_handler(
            PacketType.MESSAGE, lambda channel, packet: self.pong(packet.message))
        self.channel: PeerChannel | None = None
        self.node: JsonNode | None = None
        self.on_pong: Callable[[str], None] = lambda text: None
        self.cpu = 0.0
        self.refused = 0  # sends refused with SendBufferFull in the last run

    def pong(self, text: str) -> None:
        self.on_pong(text)

    async def ours(self) -> PeerChannel:
        """Our channel, trusted both ways; a new one if the last run dropped it."""
        if self.channel is not None and not self.channel.is_closed:
            return self.channel
        peer_trusts_us: Deferred[None] = Deferred()
        peer_trusts_us.addTimeout(RUN_TIMEOUT, self.reactor)

        # The receiver trusts us once it has checked our proof; it then sends its peer list.
        def watch(channel: PeerChannel, packet: Any) -> bool:
            if packet.kind is PacketType.PEER_GROUP and not peer_trusts_us.called:
                channel.on_data_received.remove(watch)
                peer_trusts_us.callback(None)
            return False

        adding = lambda channel: channel.on_data_received.add(watch)  # noqa: E731
        self.network.peer_added.add(adding)
        channel = await self.network.connect(GenericPeer(nb.LOOPBACK, self.ports[0]))
        await channel.when_trusted()
        await peer_trusts_us
        self.network.peer_added.remove(adding)
        self.channel = channel
        return channel

    async def base(self) -> JsonNode:
        if self.node is not None and not self.node.lost:
            return self.node
        node = JsonNode(self.network_identifier(),
                        {"Message": lambda node, packet: self.pong(packet["Message"])})
        node.on_connected = Deferred()
        node.on_connected.addTimeout(RUN_TIMEOUT, self.reactor)
        factory = ClientFactory.forProtocol(lambda: node)
        factory.noisy = False
        self.reactor.connectTCP(nb.LOOPBACK, self.ports[1], factory, timeout=10)
        await node.on_connected
        self.node = node
        return node

    def network_identifier(self) -> str:
        """The baseline sends an identifier as long as ours."""
        return "a" * max(len(self.channel.local_identifier) if self.channel else 32, 1)

    async def send(self, flavor: str, case: str, count: int) -> None:
        node: Any = await (self.ours() if flavor == "ours" else self.base())
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
            elif flavor == "ours":
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
        node: Any = await (self.ours() if flavor == "ours" else self.base())
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

    def status(self, flavor: str = "ours") -> str:
        if flavor == "base":
            return "none" if self.node is None else "closed" if self.node.lost else "open"
        channel = self.channel
        if channel is None:
            return "none"
        return "open" if not channel.is_closed else "closed:" + (
            channel.close_reason or "?").replace(" ", "_")


def sender_setup(ports: tuple[int, int]) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        nb.start_logging("sender")
        sender = Sender(reactor, ports)

        def run(coroutine: Any) -> None:
            Deferred.fromCoroutine(coroutine).addErrback(
                lambda f: nb.say("ERROR", f.type.__name__, f.getErrorMessage().replace("\n", " ")))

        async def connect() -> None:
            await sender.ours()
            await sender.base()
            nb.say("READY", "drain" if HAS_DRAIN else "no-drain")

        run(connect())
        profiling = Profiling()

        def command(line: str) -> None:
            word, *args = line.split()
            if profiling.command(word, args):
                return
            if word == "send":
                run(sender.send(args[0], args[1], int(args[2])))
            elif word == "rtt":
                run(sender.rtt(args[0], int(args[1])))
            elif word == "state":
                nb.say("STATE", sender.status(args[0]))
            elif word == "cpu":
                nb.say("CPU", f"{nb.cpu_seconds() - sender.cpu:.6f}", sender.status(),
                       sender.refused)

        return command

    return setup


# -- The driver --------------------------------------------------------------------------------


class Streams:
    """Runs the stream figures on a receiver and a sender child; collects them by case."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.cap = ([] if options.max_queued_bytes is None
                    else ["--max-queued-bytes", options.max_queued_bytes])
        self.receiver = nb.Child("--mode", "receiver", *self.cap)
        self.sender: nb.Child | None = None
        self.runs = 0
        self.losses: list[str] = []
        # figures[case][flavor]: one dict per run (rate, cpu per packet of each process).
        self.figures: dict[str, dict[str, list[dict[str, float]]]] = {}
        self.rtts: dict[str, list[float]] = {"ours": [], "base": []}

    def start(self) -> str:
        ports = self.receiver.expect("PORTS", 30)
        self.sender = nb.Child("--mode", "sender", "--port", ports[0], "--flavor", ports[1],
                               *self.cap)
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
        if status.startswith("closed") and flavor == "ours":
            problems.append(f"channel {status}")
        if refused or self.sender.errors:
            problems.append("sender: " + "; ".join(self.sender.errors or ["send refused"]))
            self.sender.errors.clear()
        if problems:
            line = f"{flavor} {case}: " + ", ".join(problems)
            print(f"    LOST: {line}")
            self.losses.append(line)
            return
        seconds = end - start
        unit = MiB / 1e6 if case == "big" else 1  # MB of payload per DataTransmit
        self.figures.setdefault(case, {}).setdefault(flavor, []).append({
            "rate": count * unit / seconds, "seconds": seconds,
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
            self.losses.append(f"{flavor} rtt: no answer within {RUN_TIMEOUT:.0f} s")

    def profile(self, case: str, count: int, top: int = 18) -> None:
        """One more run of C{case} per flavor under cProfile in both children; print the top."""
        import pstats
        import tempfile

        assert self.sender is not None
        for flavor in ("ours", "base"):
            paths = {}
            for role, child in (("sender", self.sender), ("receiver", self.receiver)):
                paths[role] = os.path.join(tempfile.gettempdir(),
                                           f"bench_network.{case}.{flavor}.{role}.prof")
                child.ask("prof-start", "PROFILING")
            self.stream(flavor, case, count)
            for role, child in (("sender", self.sender), ("receiver", self.receiver)):
                child.ask(f"prof-stop {paths[role]}", "PROFILED")
                print(f"\n  profile: {flavor} {case}, {role} ({paths[role]}), by own time:")
                stats = pstats.Stats(paths[role], stream=sys.stdout)
                stats.sort_stats("tottime").print_stats(top)

    def run(self) -> None:
        options = self.options
        for flavor in ("ours", "base"):  # warm both paths up
            self.stream(flavor, "plain", min(options.messages, 20_000))
            self.stream(flavor, "big", 2)
            self.rtt(flavor, 50)
        self.figures.clear()
        self.rtts = {"ours": [], "base": []}
        for index in range(options.rounds):
            order = ("ours", "base") if index % 2 == 0 else ("base", "ours")
            for case, count in (("plain", options.messages), ("paced", options.messages),
                                ("big", options.big)):
                for flavor in order:
                    self.stream(flavor, case, count)
            for flavor in order:
                self.rtt(flavor, options.pings)
            print(f"  round {index + 1}/{options.rounds} done "
                  f"(load average {os.getloadavg()[0]:.2f})", flush=True)


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs) if runs else float("nan")


def report_streams(streams: Streams, options: argparse.Namespace, results: dict[str, Any]) -> None:
    titles = {
        "plain": f"1. {options.messages:,} small PureMessages, plain loop, end to end",
        "paced": f"2. {options.messages:,} small PureMessages, paced (when_writable / producer)",
        "big": f"5. {options.big} x 1 MiB DataTransmit, plain loop, end to end (MB/s of payload)",
    }
    for case, title in titles.items():
        runs = streams.figures.get(case, {})
        ours, base = runs.get("ours", []), runs.get("base", [])
        print(f"  {title}")
        if not ours or not base:
            print("    no complete pair of runs")
            continue
        ratios = [o["rate"] / b["rate"] for o, b in zip(ours, base)]
        unit, scale, cpu_unit = ("MB/s", 1e3, "ms/MiB") if case == "big" else ("msg/s", 1e6,
                                                                                 "us/msg")
        print(f"    rate      ours {median_of(ours, 'rate'):10,.1f} {unit}   baseline "
              f"{median_of(base, 'rate'):10,.1f} {unit}   ratio {statistics.median(ratios):.2f}x"
              f" (rounds: {' '.join(f'{r:.2f}' for r in ratios)})")
        for who in ("sender", "receiver", "cpu"):
            o, b = median_of(ours, who) * scale, median_of(base, who) * scale
            label = "both" if who == "cpu" else who
            print(f"    CPU {label:9s} ours {o:8.2f} {cpu_unit}   baseline {b:8.2f} {cpu_unit}   "
                  f"{b / o:.2f}x as efficient")
        results[case] = {"ours": median_of(ours, "rate"), "base": median_of(base, "rate"),
                         "ratio": statistics.median(ratios),
                         "cpu_ours": median_of(ours, "cpu") * scale,
                         "cpu_base": median_of(base, "cpu") * scale}
    pct: dict[str, tuple[float, float]] = {}
    for flavor, samples in streams.rtts.items():
        if samples:
            samples.sort()
            pct[flavor] = (samples[len(samples) // 2], samples[int(len(samples) * 0.99)])
    if len(pct) == 2:
        print(f"  3. ping-pong, one PureMessage in flight, {len(streams.rtts['ours']):,} round "
              f"trips each")
        print(f"    ours p50 {pct['ours'][0]:6.0f} us p99 {pct['ours'][1]:6.0f} us   baseline "
              f"p50 {pct['base'][0]:6.0f} us p99 {pct['base'][1]:6.0f} us   ratio p50 "
              f"{pct['ours'][0] / pct['base'][0]:.2f}x, p99 {pct['ours'][1] / pct['base'][1]:.2f}x")
        results["rtt"] = {"ours": pct["ours"][0], "base": pct["base"][0],
                          "ratio": pct["ours"][0] / pct["base"][0]}


def summary(results: dict[str, Any]) -> None:
    rows = []

    def row(name: str, key: str, unit: str, target: str, met: Callable[[float], bool],
            ours_key: str = "ours", base_key: str = "base", ratio_key: str = "ratio") -> None:
        if key in results:
            figure = results[key]
            rows.append((name, f"{figure[ours_key]:,.1f} {unit}", f"{figure[base_key]:,.1f} {unit}",
                         f"{figure[ratio_key]:.2f}x", target,
                         "met" if met(figure[ratio_key]) else "MISSED"))

    row("1. plain loop, small, end to end", "plain", "msg/s", ">= 1.5x", lambda r: r >= 1.5)
    if "plain" in results:
        plain = results["plain"]
        results["plain_cpu"] = {"ours": plain["cpu_ours"], "base": plain["cpu_base"],
                                "ratio": plain["cpu_base"] / plain["cpu_ours"]}
    row("1. CPU per message, both processes", "plain_cpu", "us", ">= 1.5x as efficient",
        lambda r: r >= 1.5)
    row("2. paced, small, end to end", "paced", "msg/s", ">= 1.3x", lambda r: r >= 1.3)
    row("3. RTT p50", "rtt", "us", "<= 1.2x", lambda r: r <= 1.2)
    if "kib_per_channel" in results:
        results["memory"] = {"ours": results["kib_per_channel"],
                             "base": results["base_kib_per_channel"],
                             "ratio": results["mem_ratio"]}
        n = results["channels"]
        rows.append((f"4. RSS per idle trusted channel ({n:,})",
                     f"{results['kib_per_channel']:.2f} KiB",
                     f"{results['base_kib_per_channel']:.2f} KiB", f"{results['mem_ratio']:.2f}x",
                     "<= 4 KiB each",
                     "met" if results["kib_per_channel"] <= 4
                     and n >= results["target_channels"] else "MISSED"))
    row("5. 1 MiB DataTransmit, end to end", "big", "MB/s", ">= 3x", lambda r: r >= 3.0)
    if not rows:
        return
    headers = ("figure", "ours", "baseline", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in (*rows, headers)) for i in range(6)]
    print("\nSummary (ours, baseline: medians of rounds; ratio: median of the per-round ratios, "
          "ours / baseline for rates, RTT and memory, baseline / ours for CPU):")
    for r in (headers, *rows):
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--only", choices=("streams", "memory", "handshakes", "breakdown"),
                        help="run one part only")
    parser.add_argument("--messages", type=int, help="small messages per run (default 200,000)")
    parser.add_argument("--big", type=int, help="1 MiB DataTransmits per run (default 32)")
    parser.add_argument("--pings", type=int, help="round trips per round (default 1,000)")
    parser.add_argument("--rounds", type=int, help="rounds of the stream figures (default 5)")
    parser.add_argument("--channels", type=int, help="idle channels for memory (default 10,000)")
    parser.add_argument("--handshakes", type=int, help="handshakes (default 5,000)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="client connections in flight for memory/handshakes (default 100)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds each many-channels client run may take (default 60)")
    parser.add_argument("--hold", action="store_true",
                        help="handshakes: clients keep their channels open")
    parser.add_argument("--profile", choices=("plain", "paced", "big"),
                        help="streams: instead of the rounds, one run of this case per side "
                             "under cProfile in both children; prints where the time goes")
    parser.add_argument("--max-queued-bytes", type=int,
                        help="streams: ChannelLimits.max_queued_bytes on both sides (default: "
                             "the library's once the channel has drain(), else 512 MiB)")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--flavor", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    global QUEUE_CAP
    QUEUE_CAP = options.max_queued_bytes

    if options.mode is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us through stdin
        nb.raise_fd_limit()
        n = options.channels
        setups = {
            "receiver": lambda: receiver_setup,
            "sender": lambda: sender_setup((options.port, int(options.flavor))),
            "mem-server": lambda: nb.mem_server_setup(options.flavor, n),
            "hs-server": lambda: nb.hs_server_setup(n),
            "mem-clients": lambda: nb.mem_clients_setup(options.port, n, options.concurrency,
                                                        options.budget),
            "hs-clients": lambda: nb.hs_clients_setup(options.port, n, options.concurrency,
                                                      options.budget, options.hold),
        }
        return nb.run_child(setups[options.mode]())

    quick = options.quick
    options.messages = options.messages or (20_000 if quick else 200_000)
    options.big = options.big or (4 if quick else 32)
    options.pings = options.pings or (200 if quick else 1_000)
    options.rounds = options.rounds or (2 if quick else 5)
    options.channels = options.channels or (1_000 if quick else 10_000)
    options.handshakes = options.handshakes or (500 if quick else 5_000)

    if options.only == "breakdown":
        from _channel_memory import main as breakdown

        return breakdown(quick)

    from twisted.internet import reactor

    started = time.perf_counter()
    print(f"Python {platform.python_version()}, Twisted {twisted.__version__}, reactor "
          f"{type(reactor).__name__}, {os.cpu_count()} CPUs, {platform.machine()}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; clock: time.monotonic() "
          f"(CLOCK_MONOTONIC, shared by the processes of this host)")
    results: dict[str, Any] = {}
    losses: list[str] = []
    if options.only in (None, "streams"):
        streams = Streams(options)
        try:
            streams.start()
            queue = queue_cap_text()
            what = (f"one profiled run per side of {options.profile}" if options.profile else
                    f"{options.rounds} rounds, sides alternating")
            print(f"\nStreams: sender and receiver in two processes over TCP loopback, {what}; "
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
    if options.only in (None, "memory", "handshakes"):
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
