#!/usr/bin/env python
"""
Real sockets on loopback: two PeerNetworks in two processes, and many channels to one network,
each beside a plain-Twisted baseline measured in the same run.

    python benchmarks/bench_network.py                  # about 100 s on 2 cores
    python benchmarks/bench_network.py --quick          # a smoke test, about 15 s
    python benchmarks/bench_network.py --channels 2000  # fewer channels in part 2
    python benchmarks/bench_network.py --only pair      # part 1 only (or: memory, handshakes)
    python benchmarks/bench_network.py --only handshakes --hold  # clients keep channels open

Part 1, two nodes (this process and a child running this script in "peer" mode), connected over
TCP on 127.0.0.1 with the default key trust, C{max_frame_size} raised to 4 MiB on both sides (and
C{max_queued_bytes} to 8 MiB: see L{pair_channel_limits}):

- small: PureMessages sent one way as fast as backpressure allows (the sender writes while
  C{channel.is_writable}, then waits for C{channel.when_writable()}); the receiver counts them in
  its Message handler and answers "done" after the last one.  Timed from the first send to the
  "done" (so it includes one trip back).
- 1MiB: DataTransmits with a 1 MiB payload, the same way; MB/s counts payload bytes.
- RTT: one PureMessage in flight, echoed by the receiver's handler; p50 and p99 over all rounds.

The baseline is two plain L{Int32StringReceiver}s in the same two processes doing the same work:
C{json.dumps} of the same envelope (C{{"type": ..., "packet": {...}}} with the identifier and
time fields), plus C{base64} of the payload for 1MiB; C{json.loads} and a dispatch on the type to
a handler on the other side; backpressure through C{registerProducer} as a streaming producer.
Ours and the baseline alternate, 15 short rounds each, so that load from other jobs moves both
alike: rates are the best round, ratios (ours / baseline) the median of the per-round ratios.
The CPU time of both processes per packet (C{getrusage}; the receiver reports its own) is shown
too: it moves less than wall-clock rates on a shared machine.

Part 2, many channels to one network (fresh child processes: a server, and a client process
whose memory is not counted), with the fd soft limit raised to the hard limit:

- memory: up to N (C{--channels}, default 10,000) inbound trusted channels to one PeerNetwork
  (C{trust_protocol=always_trust}, its NetworkLimits raised to admit them), opened within
  C{--budget} seconds; the clients are raw protocols spread over 127.0.0.2-201 that send an
  Identity packet and discard what they read.  RSS (VmRSS) of the server after C{gc.collect()},
  before the first and after the last channel, divided by the channels held.  Baseline: a plain
  Twisted server holding as many L{Int32StringReceiver}s open, for the same clients.
- handshakes: a PeerNetwork with the default key trust; raw clients run the Ed25519 handshake (they
  send Identity and nonce, sign the server's nonce, do not check the server's proof: the server's
  work is measured) and close once the server's peer list shows it trusts them (C{--hold}: keep
  the channel open, so the server's tables grow); C{--concurrency} at a time.  Completed trusts
  per second counted on the server (its C{peer_trusted} event), and the server's CPU time per
  handshake.

Every loop is bounded in count and time; all traffic goes to 127.0.0.x.  The processes log
warnings only (as a node started with C{twistd} logs to a file, nothing is kept in memory).
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import resource
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson
import twisted
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import LogLevel, globalLogBeginner
from twisted.protocols.basic import Int32StringReceiver, LineReceiver
from zope.interface import implementer

from p2pnet_tx.channel import ChannelLimits, PeerChannel
from p2pnet_tx.network import NetworkLimits, PeerNetwork
from p2pnet_tx.packets import (
    DataPayloadFormat,
    DataTransmissionPacket,
    IdentifierPacket,
    PacketType,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.trust import _NONCE_PREFIX, _PROOF_PREFIX, _transcript, always_trust, key_trust
from p2pnet_tx.wire import get_codec

MiB = 1024 * 1024
BIG_PAYLOAD = MiB
MAX_FRAME = 4 * MiB
TEXT = "hello from a peer, " * 3
LOOPBACK = "127.0.0.1"
CLIENT_SOURCES = [f"127.0.0.{i}" for i in range(2, 202)]
STEP_TIMEOUT = 60.0  # no single measurement of part 1 may take longer
CHILD_LIFETIME = 600.0  # a child stops by itself after this long, whatever happens


# -- Shared helpers ----------------------------------------------------------------------------


def rss_kib() -> int:
    """This process's resident set size (VmRSS), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class WarningsOnly:
    """A log observer that prints the first few warnings to stderr and counts the rest."""

    def __init__(self, label: str, show: int = 5) -> None:
        self.label = label
        self.show = show
        self.count = 0

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is None or level < LogLevel.warn:
            return
        self.count += 1
        if self.count <= self.show:
            from twisted.logger import formatEvent

            print(f"[{self.label}] {level.name}: {formatEvent(event)}", file=sys.stderr)


def start_logging(label: str) -> WarningsOnly:
    observer = WarningsOnly(label)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    return observer


def pair_channel_limits() -> ChannelLimits:
    """
    A 1 MiB payload is about 1.4 MB of base64 JSON: raise max_frame_size.  (max_queued_bytes was
    raised with it while PeerChannel.send counted the frame that paused the transport as queued;
    that is fixed, and the figures of docs/performance.md were taken with this setting.)
    """
    return ChannelLimits(max_frame_size=MAX_FRAME, max_queued_bytes=2 * MAX_FRAME)


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat()


def say(*words: object) -> None:
    """Write one line to the driver (children's stdout is the control channel)."""
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


class Commands(LineReceiver):
    """A child's stdin: one command per line; end of input stops the reactor."""

    delimiter = b"\n"

    def __init__(self, reactor: Any, handler: Callable[[str], None]) -> None:
        self.reactor = reactor
        self.handler = handler

    def lineReceived(self, line: bytes) -> None:
        self.handler(line.decode().strip())

    def connectionLost(self, reason: object = None) -> None:
        if self.reactor.running:
            self.reactor.stop()


def run_child(setup: Callable[[Any], Callable[[str], None]]) -> int:
    """Run a child: C{setup(reactor)} returns the command handler; stdin drives it."""
    from twisted.internet import reactor
    from twisted.internet.stdio import StandardIO

    def start() -> None:
        handler = setup(reactor)
        StandardIO(Commands(reactor, handler), reactor=reactor)

    reactor.callWhenRunning(start)
    reactor.callLater(CHILD_LIFETIME, reactor.stop)
    reactor.run()
    return 0


# -- Part 1: the plain-Twisted baseline protocol -----------------------------------------------


@implementer(IPushProducer)
class JsonNode(Int32StringReceiver):
    """Int32StringReceiver + json, dispatching on the type to a handler, with backpressure."""

    MAX_LENGTH = MAX_FRAME

    def __init__(self, identifier: str, handlers: dict[str, Callable[[Any, dict[str, Any]], None]]):
        self.identifier = identifier
        self.handlers = handlers
        self.paused = False
        self._waiters: list[Deferred[Any]] = []
        self.on_connected: Deferred[Any] | None = None

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        if self.on_connected is not None:
            self.on_connected.callback(self)

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

    def send_packet(self, kind: str, fields: dict[str, Any]) -> None:
        fields["SourceOriginIdentifier"] = self.identifier
        fields["SourceOriginTime"] = now_text()
        self.sendString(json.dumps({"type": kind, "packet": fields}).encode())

    def send_message(self, text: str) -> None:
        self.send_packet("Message", {"Message": text})

    def send_data(self, payload: bytes) -> None:
        self.send_packet("DataTransmit",
                         {"Data": base64.b64encode(payload).decode(), "DataType": 2})

    def stringReceived(self, string: bytes) -> None:
        envelope = json.loads(string)
        self.handlers[envelope["type"]](self, envelope["packet"])


# -- Part 1: the peer process ------------------------------------------------------------------


class Counter:
    """The receiving side's state: counts packets after "ctl:count N" and says "done"."""

    def __init__(self) -> None:
        self.expected = 0
        self.received = 0
        self.payload_bytes = 0
        self.cpu = 0.0

    def message(self, text: str, reply: Callable[[str], object]) -> None:
        if text.startswith("ping"):
            reply(text)
        elif text.startswith("ctl:count "):
            self.expected, self.received = int(text.split()[1]), 0
            self.cpu = cpu_seconds()
        else:
            self.one(reply)

    def one(self, reply: Callable[[str], object]) -> None:
        self.received += 1
        if self.received == self.expected:
            reply(f"done {cpu_seconds() - self.cpu:.6f}")  # the receiver's CPU time


def peer_setup(reactor: Any) -> Callable[[str], None]:
    start_logging("peer")
    network = PeerNetwork(reactor, channel_limits=pair_channel_limits())
    ours, base = Counter(), Counter()

    def on_message(channel: PeerChannel, packet: PureMessagePacket) -> None:
        ours.message(packet.message, channel.send_message)

    def on_data(channel: PeerChannel, packet: DataTransmissionPacket) -> None:
        ours.payload_bytes += len(packet.payload)
        ours.one(channel.send_message)

    network.handlers.set_handler(PacketType.MESSAGE, on_message)
    network.handlers.set_handler(PacketType.DATA_TRANSMIT, on_data)

    def base_message(node: JsonNode, packet: dict[str, Any]) -> None:
        base.message(packet["Message"], node.send_message)

    def base_data(node: JsonNode, packet: dict[str, Any]) -> None:
        base.payload_bytes += len(base64.b64decode(packet["Data"]))
        base.one(node.send_message)

    base_handlers = {"Message": base_message, "DataTransmit": base_data}
    base_factory = Factory.forProtocol(lambda: JsonNode("peer", base_handlers))
    base_factory.noisy = False
    base_port = reactor.listenTCP(0, base_factory, interface=LOOPBACK)

    def listening(port: Any) -> None:
        say("PORTS", port.getHost().port, base_port.getHost().port)

    network.listen(f"tcp:0:interface={LOOPBACK}").addCallback(listening)
    return lambda line: None


# -- Part 1: the driver's side -----------------------------------------------------------------


class Waiter:
    """One Deferred at a time, fired by a handler."""

    def __init__(self) -> None:
        self.pending: Deferred[Any] | None = None
        self.on_ping: Callable[[str], None] | None = None

    def arm(self, reactor: Any) -> Deferred[Any]:
        self.pending = Deferred()
        self.pending.addTimeout(STEP_TIMEOUT, reactor)
        return self.pending

    def message(self, text: str) -> None:
        if text.startswith("ping"):
            assert self.on_ping is not None
            self.on_ping(text)
        elif text.startswith("done") and self.pending is not None:
            pending, self.pending = self.pending, None
            pending.callback(float(text.split()[1]))


def pump(count: int, send_one: Callable[[], object], node: Any) -> None:
    """Send C{count} packets, writing while C{node} is writable and waiting when it is not."""
    sent = 0

    def more(_: object = None) -> None:
        nonlocal sent
        while sent < count and node.is_writable:
            send_one()
            sent += 1
        if sent < count:
            node.when_writable().addCallback(more)

    more()


def timed_stream(reactor: Any, node: Any, waiter: Waiter, count: int,
                 send_one: Callable[[], object]) -> Deferred[tuple[float, float]]:
    """
    Send C{count} packets; return (seconds until the receiver's "done", CPU seconds of both
    processes while it ran).
    """
    done = waiter.arm(reactor)
    node.send_message(f"ctl:count {count}")
    start, cpu = time.perf_counter(), cpu_seconds()
    pump(count, send_one, node)
    return done.addCallback(
        lambda receiver_cpu: (time.perf_counter() - start, cpu_seconds() - cpu + receiver_cpu))


def ping_pong(reactor: Any, node: Any, waiter: Waiter, count: int) -> Deferred[list[float]]:
    """Echo C{count} pings one at a time; return the round-trip times in seconds."""
    samples: list[float] = []
    done: Deferred[list[float]] = Deferred()
    done.addTimeout(STEP_TIMEOUT, reactor)
    sent_at = 0.0

    def send() -> None:
        nonlocal sent_at
        sent_at = time.perf_counter()
        node.send_message(f"ping {len(samples)}")

    def on_ping(text: str) -> None:
        samples.append(time.perf_counter() - sent_at)
        if len(samples) < count:
            send()
        elif not done.called:
            done.callback(samples)

    waiter.on_ping = on_ping
    send()
    return done


async def connect_pair(reactor: Any, ports: tuple[int, int]) -> tuple[PeerChannel, JsonNode,
                                                                       Waiter, Waiter]:
    network = PeerNetwork(reactor, channel_limits=pair_channel_limits())
    ours = Waiter()
    network.handlers.set_handler(PacketType.MESSAGE,
                                 lambda channel, packet: ours.message(packet.message))
    # The peer trusts us once it has checked our proof; it then sends its peer list.
    peer_trusts_us: Deferred[None] = Deferred()
    peer_trusts_us.addTimeout(STEP_TIMEOUT, reactor)

    def watch(channel: PeerChannel, packet: Any) -> bool:
        if packet.kind is PacketType.PEER_GROUP and not peer_trusts_us.called:
            channel.on_data_received.remove(watch)
            peer_trusts_us.callback(None)
        return False

    network.peer_added.add(lambda channel: channel.on_data_received.add(watch))
    channel = await network.connect(GenericPeer(LOOPBACK, ports[0]))
    await channel.when_trusted()
    await peer_trusts_us

    base = Waiter()
    node = JsonNode("driver", {"Message": lambda node, packet: base.message(packet["Message"])})
    node.on_connected = Deferred()
    factory = ClientFactory.forProtocol(lambda: node)
    factory.noisy = False
    reactor.connectTCP(LOOPBACK, ports[1], factory, timeout=10)
    node.on_connected.addTimeout(STEP_TIMEOUT, reactor)
    await node.on_connected
    return channel, node, ours, base


def ratio_line(label: str, ours: float, base: float, unit: str, ratios: list[float]) -> str:
    spread = " ".join(f"{r:.2f}" for r in ratios)
    return (f"  {label:24s} p2pnet_tx {ours:10,.1f} {unit:5s} baseline {base:10,.1f} {unit:5s}"
            f" ratio {statistics.median(ratios):.2f}x (rounds: {spread})")


async def run_pair(reactor: Any, ports: tuple[int, int], options: argparse.Namespace,
                   results: dict[str, Any]) -> None:
    channel, node, ours, base = await connect_pair(reactor, ports)
    payload = os.urandom(BIG_PAYLOAD)
    sides = (("p2pnet_tx", channel, ours), ("baseline", node, base))
    rounds, small, big, pings = options.rounds, options.small, options.big, options.pings

    def small_one(node: Any) -> Callable[[], object]:
        send = node.send_message
        return lambda: send(TEXT)

    def big_one(node: Any) -> Callable[[], object]:
        if isinstance(node, PeerChannel):
            ident = node.local_identifier
            return lambda: node.send(DataTransmissionPacket(
                payload, DataPayloadFormat.MISC_DATA, source_origin_identifier=ident))
        return lambda: node.send_data(payload)

    # Warm up both paths once.
    for _, node_, waiter in sides:
        await timed_stream(reactor, node_, waiter, 200, small_one(node_))
        await timed_stream(reactor, node_, waiter, 1, big_one(node_))
        await ping_pong(reactor, node_, waiter, 20)

    print(f"\nPart 1: two nodes in two processes over TCP loopback, {rounds} rounds "
          f"(ours and the baseline alternating)")
    # rates[case][label]: one rate per round; cpu[case][label]: CPU seconds per packet.
    rates: dict[str, dict[str, list[float]]] = {"small": {}, "big": {}}
    cpu: dict[str, dict[str, list[float]]] = {"small": {}, "big": {}}
    rtts: dict[str, list[float]] = {"p2pnet_tx": [], "baseline": []}
    for _ in range(rounds):
        for label, node_, waiter in sides:
            gc.collect()
            for case, count, unit, make in (("small", small, 1, small_one),
                                            ("big", big, BIG_PAYLOAD / 1e6, big_one)):
                seconds, used = await timed_stream(reactor, node_, waiter, count, make(node_))
                rates[case].setdefault(label, []).append(count * unit / seconds)
                cpu[case].setdefault(label, []).append(used / count)
            rtts[label].extend(await ping_pong(reactor, node_, waiter, pings))

    def report(case: str, title: str, unit: str, cpu_unit: str, cpu_scale: float) -> float:
        ours_, base_ = rates[case]["p2pnet_tx"], rates[case]["baseline"]
        ratios = [o / b for o, b in zip(ours_, base_)]
        ratio = statistics.median(ratios)
        ours_cpu = statistics.median(cpu[case]["p2pnet_tx"]) * cpu_scale
        base_cpu = statistics.median(cpu[case]["baseline"]) * cpu_scale
        print(f"  {title}")
        print(f"    p2pnet_tx {max(ours_):10,.1f} {unit} (best; median "
              f"{statistics.median(ours_):,.1f})   baseline {max(base_):10,.1f} {unit} (best; "
              f"median {statistics.median(base_):,.1f})")
        print(f"    ratio {ratio:.2f}x (median of rounds: "
              f"{' '.join(f'{r:.2f}' for r in ratios)})")
        print(f"    CPU of both processes: p2pnet_tx {ours_cpu:,.1f} {cpu_unit}, baseline "
              f"{base_cpu:,.1f} {cpu_unit}: {base_cpu / ours_cpu:.2f}x as efficient")
        return ratio

    small_ratio = report("small", f"Small PureMessages ({len(TEXT)} characters), {small:,} "
                         f"per round, one way:", "msg/s", "us/msg", 1e6)
    big_ratio = report("big", f"1 MiB DataTransmits, {big} per round, one way "
                       f"(MB/s of payload):", "MB/s ", "ms/MiB", 1e3)
    pct = {}
    for label, samples in rtts.items():
        samples.sort()
        pct[label] = (samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6)
    p50_ratio = pct["p2pnet_tx"][0] / pct["baseline"][0]
    p99_ratio = pct["p2pnet_tx"][1] / pct["baseline"][1]
    print(f"  Ping-pong, one PureMessage in flight, {len(rtts['baseline']):,} round trips each:")
    print(f"    p2pnet_tx p50 {pct['p2pnet_tx'][0]:5.0f} us p99 {pct['p2pnet_tx'][1]:6.0f} us"
          f"   baseline p50 {pct['baseline'][0]:5.0f} us p99 {pct['baseline'][1]:6.0f} us")
    print(f"    ratio p50 {p50_ratio:.2f}x, p99 {p99_ratio:.2f}x")
    results.update(small_ratio=small_ratio, big_ratio=big_ratio, rtt_p50_ratio=p50_ratio)
    channel.close("done")
    node.transport.loseConnection()


# -- Part 2: servers ---------------------------------------------------------------------------


class HeldOpen(Int32StringReceiver):
    """The baseline for memory: a plain protocol that holds its connection open."""

    def connectionMade(self) -> None:
        self.factory.open += 1
        self.sendString(b"hi")  # paces the clients as the p2pnet server's Identity does

    def connectionLost(self, reason: object = None) -> None:
        self.factory.open -= 1

    def stringReceived(self, string: bytes) -> None:
        pass


def server_limits(channels: int) -> NetworkLimits:
    return NetworkLimits(max_inbound=channels + 100, max_pending=1000,
                         max_per_ip=channels + 100, accept_burst=channels + 100,
                         accept_rate=1e6)


def mem_server_setup(flavor: str, channels: int) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        log = start_logging(f"{flavor} server")
        if flavor == "p2pnet_tx":
            network = PeerNetwork(reactor, trust_protocol=always_trust,
                                  limits=server_limits(channels))
            factory: Any = network.factory

            def count() -> int:
                return sum(1 for channel in network.active_peer_channels if channel.is_trusted)
        else:
            factory = Factory.forProtocol(HeldOpen)
            factory.open = 0
            factory.noisy = False

            def count() -> int:
                return factory.open

        port = reactor.listenTCP(0, factory, interface=LOOPBACK, backlog=1024)
        if flavor == "p2pnet_tx":
            network.port_opened(port)
        gc.collect()
        say("READY", port.getHost().port, rss_kib())
        started = time.perf_counter()

        def command(line: str) -> None:
            if line == "count":
                say("COUNT", count(), f"{time.perf_counter() - started:.3f}")
            elif line == "measure":
                gc.collect()
                say("RSS", count(), rss_kib(), log.count)

        return command

    return setup


def hs_server_setup(channels: int) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        log = start_logging("handshake server")
        network = PeerNetwork(reactor, limits=server_limits(channels))
        times: list[float] = []
        cpu: list[float] = []

        def trusted(channel: PeerChannel) -> None:
            times.append(time.perf_counter())
            if len(times) == 1:
                cpu.append(cpu_seconds())
            else:
                cpu[1:] = [cpu_seconds()]

        network.peer_trusted.add(trusted)
        port = reactor.listenTCP(0, network.factory, interface=LOOPBACK, backlog=1024)
        network.port_opened(port)
        say("READY", port.getHost().port, rss_kib())

        def command(line: str) -> None:
            if line == "measure":
                counters = network.total_counters()
                span = times[-1] - times[0] if len(times) > 1 else 0.0
                busy = (cpu[-1] - cpu[0]) / span if len(cpu) > 1 and span else 0.0
                say("TRUSTS", len(times), f"{span:.6f}", counters["handshakes_failed"],
                    counters["refused_connections"], len(network.active_peer_channels),
                    log.count, f"{busy:.3f}")

        return command

    return setup


# -- Part 2: clients ---------------------------------------------------------------------------


_CODEC = get_codec("p2pnet")


def identity_frame(identifier: str) -> bytes:
    return _CODEC.encode(IdentifierPacket("connect", 0, "", source_origin_identifier=identifier))


class Launcher:
    """Opens connections, C{concurrency} at a time, spread over loopback source addresses."""

    def __init__(self, reactor: Any, port: int, total: int, concurrency: int,
                 make: Callable[[Launcher, int], Protocol], budget: float) -> None:
        self.reactor = reactor
        self.port = port
        self.total = total
        self.concurrency = concurrency
        self.make = make
        self.deadline = time.perf_counter() + budget
        self.started = self.in_flight = self.succeeded = self.failed = 0
        self.protocols: list[Protocol] = []
        self.finished = False
        self.hold = False
        self._cpu0, self._t0 = cpu_seconds(), time.perf_counter()

    def fill(self) -> None:
        while (self.in_flight < self.concurrency and self.started < self.total
               and time.perf_counter() < self.deadline):
            index = self.started
            self.started += 1
            self.in_flight += 1
            factory = _OneShotFactory(self, index)
            source = CLIENT_SOURCES[index % len(CLIENT_SOURCES)]
            self.reactor.connectTCP(LOOPBACK, self.port, factory, timeout=30,
                                    bindAddress=(source, 0))
        if self.in_flight == 0 and not self.finished:
            self.finished = True
            busy = (cpu_seconds() - self._cpu0) / (time.perf_counter() - self._t0)
            say("CLIENTS", self.succeeded, self.failed, f"{busy:.3f}")

    def done(self, ok: bool) -> None:
        self.in_flight -= 1
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
        self.fill()


class _OneShotFactory(ClientFactory):
    noisy = False

    def __init__(self, launcher: Launcher, index: int) -> None:
        self.launcher = launcher
        self.index = index

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.launcher.make(self.launcher, self.index)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.launcher.done(False)


class MemClient(Protocol):
    """Says who it is, then only reads (and discards); done on the server's first bytes."""

    def __init__(self, launcher: Launcher, index: int) -> None:
        self.launcher = launcher
        self.identifier = f"{index:032x}"
        self.reported = False

    def connectionMade(self) -> None:
        self.launcher.protocols.append(self)
        self.transport.write(identity_frame(self.identifier))

    def dataReceived(self, data: bytes) -> None:
        if not self.reported:
            self.reported = True
            self.launcher.done(True)

    def connectionLost(self, reason: object = None) -> None:
        if not self.reported:
            self.reported = True
            self.launcher.done(False)


def mem_clients_setup(port: int, total: int, concurrency: int,
                      budget: float) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        start_logging("clients")
        launcher = Launcher(reactor, port, total, concurrency, MemClient, budget)
        launcher.fill()

        def keepalive() -> None:
            # Stay clear of the server's idle timeout (90 s) should a run be slow.
            frame = _CODEC.encode(PureMessagePacket("keepalive"))
            for protocol in launcher.protocols:
                if protocol.transport is not None and protocol.transport.connected:
                    protocol.transport.write(frame)

        from twisted.internet.task import LoopingCall

        loop = LoopingCall(keepalive)
        loop.clock = reactor
        loop.start(20.0, now=False)
        return lambda line: None

    return setup


class KeyClient(Protocol):
    """
    The client half of the key handshake, kept light: sends Identity and nonce at once, signs
    the server's nonce, never checks the server's proof, and closes once the server's peer list
    arrives (the server sends it when it trusts us).
    """

    key = None  # set once per process

    def __init__(self, launcher: Launcher, index: int) -> None:
        self.launcher = launcher
        self.identifier = f"{index:032x}"
        self.server_identifier = ""
        self.nonce = os.urandom(32)
        self.buffer = bytearray()
        self.reported = False

    def connectionMade(self) -> None:
        nonce = PureMessagePacket(_NONCE_PREFIX + base64.b64encode(self.nonce).decode(),
                                  source_origin_identifier=self.identifier)
        self.transport.write(identity_frame(self.identifier) + _CODEC.encode(nonce))

    def dataReceived(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 4:
            length = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + length:
                return
            body = bytes(buffer[4 : 4 + length])
            del buffer[: 4 + length]
            self.frame(body)

    def frame(self, body: bytes) -> None:
        head = body[:24]
        if head.startswith(b'{"type":"Identity"'):
            self.server_identifier = orjson.loads(body)["packet"]["SourceOriginIdentifier"]
        elif head.startswith(b'{"type":"Message"'):
            text = orjson.loads(body)["packet"]["Message"]
            if text.startswith(_NONCE_PREFIX):
                self.prove(base64.b64decode(text[len(_NONCE_PREFIX) :]))
        elif head.startswith(b'{"type":"PeerGroup"'):
            self.finish(True)
        elif head.startswith(b'{"type":"Disconnect"'):
            self.finish(False)

    def prove(self, server_nonce: bytes) -> None:
        signature = self.key.sign(_transcript(self.nonce, server_nonce, self.identifier,
                                              self.server_identifier))
        proof = json.dumps({"PublicKey": base64.b64encode(self.public_key).decode(),
                            "Signature": base64.b64encode(signature).decode()}).encode()
        self.transport.write(_CODEC.encode(DataTransmissionPacket(
            _PROOF_PREFIX + proof, DataPayloadFormat.MISC_DATA,
            source_origin_identifier=self.identifier)))

    def finish(self, ok: bool) -> None:
        if not self.reported:
            self.reported = True
            if not self.launcher.hold:
                self.transport.loseConnection()
            self.launcher.done(ok)

    def connectionLost(self, reason: object = None) -> None:
        if not self.reported:
            self.reported = True
            self.launcher.done(False)


def hs_clients_setup(port: int, total: int, concurrency: int, budget: float,
                     hold: bool) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        from p2pnet_tx.trust import public_key_bytes

        start_logging("clients")
        trust = key_trust()
        KeyClient.key = trust.private_key
        KeyClient.public_key = public_key_bytes(trust.private_key)
        launcher = Launcher(reactor, port, total, concurrency, KeyClient, budget)
        launcher.hold = hold
        launcher.fill()
        return lambda line: None

    return setup


# -- The driver: children on pipes -------------------------------------------------------------


class Child:
    """A child process running this script in some mode, talked to over its stdin/stdout."""

    def __init__(self, *args: object) -> None:
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *self.args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        self._buffer = b""

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, word: str, timeout: float) -> list[str]:
        """Return the fields of the next line that starts with C{word}."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                fields = line.decode().split()
                if fields and fields[0] == word:
                    return fields[1:]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {word} from {self.args[:2]} within {timeout} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.args[:2]} exited (code {self.proc.poll()})")
                self._buffer += chunk

    def ask(self, command: str, answer: str, timeout: float = 30.0) -> list[str]:
        self.send(command)
        return self.expect(answer, timeout)

    def stop(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def many_channels_run(flavor: str, channels: int, options: argparse.Namespace) -> dict[str, Any]:
    """Open up to C{channels} channels to a fresh server within the budget; return its RSS."""
    server = Child("--mode", "mem-server", "--flavor", flavor, "--channels", channels)
    clients = None
    try:
        port, rss0 = (int(x) for x in server.expect("READY", 30))
        started = time.perf_counter()
        clients = Child("--mode", "mem-clients", "--port", port, "--channels", channels,
                        "--concurrency", options.concurrency, "--budget", options.budget)
        # Poll until every channel is trusted on the server, progress stops, or time is up.
        count, last, last_change = 0, -1, started
        while True:
            count = int(server.ask("count", "COUNT")[0])
            now = time.perf_counter()
            if count != last:
                last, last_change = count, now
            if count >= channels or now - last_change > 10 or now - started > options.budget:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        if count >= channels:
            time.sleep(1.0)  # let the last writes drain
        held, rss1, warnings = (int(x) for x in server.ask("measure", "RSS", 60))
        return {"channels": held, "rss0": rss0, "rss1": rss1, "seconds": elapsed,
                "per_channel": (rss1 - rss0) * 1024 / max(held, 1), "warnings": warnings}
    finally:
        if clients is not None:
            clients.stop()
        server.stop()


def handshake_run(options: argparse.Namespace) -> dict[str, Any]:
    total = options.handshakes
    server = Child("--mode", "hs-server", "--channels", total)
    clients = None
    try:
        port, _ = server.expect("READY", 30)
        clients = Child("--mode", "hs-clients", "--port", port, "--channels", total,
                        "--concurrency", options.concurrency, "--budget", options.budget,
                        *(["--hold"] if options.hold else []))
        ok, failed, client_busy = clients.expect("CLIENTS", options.budget + 60)
        time.sleep(0.5)
        fields = server.ask("measure", "TRUSTS")
        trusts, span = int(fields[0]), float(fields[1])
        return {"trusts": trusts, "span": span, "rate": (trusts - 1) / span if span else 0.0,
                "handshakes_failed": int(fields[2]), "refused": int(fields[3]),
                "client_ok": int(ok), "client_failed": int(failed), "warnings": int(fields[5]),
                "server_busy": float(fields[6]), "client_busy": float(client_busy)}
    finally:
        if clients is not None:
            clients.stop()
        server.stop()


def run_many(options: argparse.Namespace, results: dict[str, Any]) -> None:
    limit = raise_fd_limit()  # children inherit it
    channels = options.channels
    if channels + 200 > limit:
        fallback = max(100, limit - 200)
        print(f"\n(fd limit {limit}: {fallback} channels instead of {channels})")
        channels = fallback
    print(f"\nPart 2: many channels to one PeerNetwork (server and clients in two processes, "
          f"fd limit {limit}, {options.concurrency} connections in flight)")
    if options.only in (None, "memory"):
        run_memory(options, channels, results)
    if options.only in (None, "handshakes"):
        run_handshakes(options, results)


def run_memory(options: argparse.Namespace, channels: int, results: dict[str, Any]) -> None:
    ours = many_channels_run("p2pnet_tx", channels, options)
    # The baseline holds as many channels as ours managed to, for a like-for-like figure.
    base = many_channels_run("baseline", max(ours["channels"], 1), options)
    for label, run in (("p2pnet_tx", ours), ("baseline", base)):
        note = ""
        if run is ours and run["channels"] < channels:
            note = f"  ONLY {run['channels']:,} of {channels:,} within {options.budget:.0f} s"
        print(f"  memory {label:10s} {run['channels']:6,d} channels in "
              f"{run['seconds']:5.1f} s ({run['channels'] / run['seconds']:6,.0f}/s); RSS "
              f"{run['rss0'] / 1024:5.1f} -> {run['rss1'] / 1024:6.1f} MiB: "
              f"{run['per_channel'] / 1024:5.2f} KiB per channel{note}"
              + (f" ({run['warnings']} warnings)" if run["warnings"] else ""))
    mem_ratio = ours["per_channel"] / max(base["per_channel"], 1.0)
    print(f"  {'':17s}ratio p2pnet_tx / baseline: {mem_ratio:.2f}x (memory per channel)")
    results.update(channels=ours["channels"], target_channels=channels,
                   kib_per_channel=ours["per_channel"] / 1024, mem_ratio=mem_ratio)


def run_handshakes(options: argparse.Namespace, results: dict[str, Any]) -> None:
    hs = handshake_run(options)
    how = ("clients hold their channels open" if options.hold else
           f"each client closes once trusted, at most {options.concurrency} open")
    print(f"  key handshakes ({how}):")
    print(f"  {'':16s}{hs['trusts']:,} trusted on the server in {hs['span']:.2f} s: "
          f"{hs['rate']:,.0f} handshakes/s ({hs['handshakes_failed']} failed, "
          f"{hs['refused']} refused at accept; clients saw {hs['client_ok']} ok, "
          f"{hs['client_failed']} failed)")
    if hs["rate"] and hs["server_busy"]:
        per = hs["server_busy"] / hs["rate"]
        print(f"  {'':16s}server CPU {per * 1e6:,.0f} us per handshake (busy "
              f"{hs['server_busy']:.0%} of the run; clients {hs['client_busy']:.0%}): "
              f"{1 / per:,.0f}/s with a core of its own")
        results.update(handshake_cpu_us=per * 1e6)
    results.update(handshakes_per_s=hs["rate"])


# -- Main --------------------------------------------------------------------------------------


def run_pair_part(options: argparse.Namespace, results: dict[str, Any]) -> None:
    peer = Child("--mode", "peer")
    try:
        ports = tuple(int(x) for x in peer.expect("PORTS", 30))
        from twisted.internet import reactor

        start_logging("driver")
        failures: list[Any] = []

        async def go() -> None:
            await run_pair(reactor, ports, options, results)  # type: ignore[arg-type]

        def finished(result: Any) -> None:
            if hasattr(result, "printTraceback"):
                failures.append(result)
            reactor.callLater(0.1, reactor.stop)

        reactor.callWhenRunning(lambda: Deferred.fromCoroutine(go()).addBoth(finished))
        reactor.callLater(CHILD_LIFETIME, reactor.stop)
        reactor.run()
        for failure in failures:
            failure.printTraceback()
            raise SystemExit("part 1 failed")
    finally:
        peer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--only", choices=("pair", "memory", "handshakes"),
                        help="run only part 1, or one half of part 2")
    parser.add_argument("--rounds", type=int, help="rounds of part 1 (default 15)")
    parser.add_argument("--channels", type=int, help="channels of part 2 (default 10,000)")
    parser.add_argument("--handshakes", type=int, help="handshakes of part 2 (default 5,000)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="client connections in flight in part 2 (default 100)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds each client run of part 2 may take (default 60)")
    parser.add_argument("--hold", action="store_true",
                        help="part 2: handshake clients keep their channels open (the table "
                             "fills up) instead of closing each once trusted")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--flavor", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.mode is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us through stdin
        raise_fd_limit()
        n = options.channels
        setups = {
            "peer": lambda: peer_setup,
            "mem-server": lambda: mem_server_setup(options.flavor, n),
            "hs-server": lambda: hs_server_setup(n),
            "mem-clients": lambda: mem_clients_setup(options.port, n, options.concurrency,
                                                     options.budget),
            "hs-clients": lambda: hs_clients_setup(options.port, n, options.concurrency,
                                                   options.budget, options.hold),
        }
        return run_child(setups[options.mode]())

    quick = options.quick
    options.rounds = options.rounds or (3 if quick else 15)
    options.small, options.big, options.pings = (5_000, 4, 200) if quick else (20_000, 16, 1_000)
    options.channels = options.channels or (1_000 if quick else 10_000)
    options.handshakes = options.handshakes or (500 if quick else 5_000)

    from twisted.internet import reactor

    started = time.perf_counter()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"Twisted {twisted.__version__}, reactor {type(reactor).__name__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, load average "
          f"{os.getloadavg()[0]:.2f} at start")
    results: dict[str, Any] = {}
    if options.only in (None, "pair"):
        run_pair_part(options, results)
    if options.only != "pair":
        run_many(options, results)

    print("\nTargets:")
    checks = []
    if "small_ratio" in results:
        checks.append(("small packets >= 1.0x baseline", results["small_ratio"] >= 1.0,
                       f"{results['small_ratio']:.2f}x"))
        checks.append(("RTT p50 <= 1.3x baseline", results["rtt_p50_ratio"] <= 1.3,
                       f"{results['rtt_p50_ratio']:.2f}x"))
    if "kib_per_channel" in results:
        n, kib = results["channels"], results["kib_per_channel"]
        checks.append((f"{results['target_channels']:,} channels at <= 16 KiB each",
                       n >= results["target_channels"] and kib <= 16,
                       f"{n:,} channels within the budget, {kib:.1f} KiB each"))
    if "handshakes_per_s" in results:
        checks.append((">= 1,000 key handshakes/s" + (" (--hold)" if options.hold else ""),
                       results["handshakes_per_s"] >= 1000,
                       f"{results['handshakes_per_s']:,.0f}/s"))
    for name, met, figure in checks:
        print(f"  {name:40s} {'met' if met else 'NOT met':8s} ({figure})")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
