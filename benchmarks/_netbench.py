"""
Shared parts of L{bench_network}: children driven over pipes, process figures, and the
many-channels half (RSS per idle channel, key handshakes per second), each against a plain
Twisted baseline.  Run through C{bench_network.py}; nothing here is a command of its own.

Many channels to one network (fresh child processes: a server, and a client process whose memory
is not counted), with the fd soft limit raised to the hard limit:

- memory: up to N (C{--channels}, default 10,000) inbound trusted channels to one PeerNetwork
  (C{trust_protocol=always_trust}, its NetworkLimits raised to admit them), opened within
  C{--budget} seconds; the clients are raw protocols spread over 127.0.0.2-201 that send an
  Identity packet and discard what they read.  RSS (VmRSS) of the server after C{gc.collect()},
  before the first and after the last channel, divided by the channels held.  Baseline: a plain
  Twisted server holding as many L{Int32StringReceiver}s open, for the same clients.
- handshakes (C{--only handshakes}): a PeerNetwork with the default key trust; raw clients run
  the Ed25519 handshake (they send Identity and nonce, sign the server's nonce, do not check the
  server's proof: the server's work is measured) and close once the server's peer list shows it
  trusts them (C{--hold}: keep the channel open, so the server's tables grow); C{--concurrency}
  at a time.  Completed trusts per second counted on the server (its C{peer_trusted} event), and
  the server's CPU time per handshake.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import resource
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import LogLevel, globalLogBeginner
from twisted.protocols.basic import Int32StringReceiver, LineReceiver

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.network import NetworkLimits, PeerNetwork
from p2pnet_tx.packets import (
    DataPayloadFormat,
    DataTransmissionPacket,
    IdentifierPacket,
    PureMessagePacket,
)
from p2pnet_tx.trust import _NONCE_PREFIX, _PROOF_PREFIX, _transcript, always_trust, key_trust
from p2pnet_tx.wire import get_codec

LOOPBACK = "127.0.0.1"
CLIENT_SOURCES = [f"127.0.0.{i}" for i in range(2, 202)]
CHILD_LIFETIME = 900.0  # a child stops by itself after this long, whatever happens
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_network.py")

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


# -- Many channels: servers ---------------------------------------------------------------------


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


# -- Many channels: clients ---------------------------------------------------------------------


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

    BACKLOG = 100

    def __init__(self, *args: object) -> None:
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(
            [sys.executable, SCRIPT, *self.args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        self._buffer = b""
        self.errors: list[str] = []  # ERROR lines seen while expecting something else
        self._backlog: list[list[str]] = []

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, word: str, timeout: float) -> list[str]:
        """
        Return the fields of the next line that starts with C{word}.  Other lines are kept for
        a later call (a DONE may arrive while a STATUS is awaited), the last C{BACKLOG} of them.
        """
        for index, fields in enumerate(self._backlog):
            if fields[0] == word:
                del self._backlog[index]
                return fields[1:]
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                fields = line.decode().split()
                if not fields:
                    continue
                if fields[0] == word:
                    return fields[1:]
                if fields[0] == "ERROR":
                    self.errors.append(" ".join(fields[1:]))
                else:
                    self._backlog.append(fields)
                    del self._backlog[: -self.BACKLOG]
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
    print(f"\nMany channels to one PeerNetwork (server and clients in two processes, "
          f"fd limit {limit}, {options.concurrency} connections in flight)")
    if options.only in (None, "memory"):
        run_memory(options, channels, results)
    if options.only == "handshakes":  # not one of issue 7's figures: on request only
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
                   kib_per_channel=ours["per_channel"] / 1024,
                   base_kib_per_channel=base["per_channel"] / 1024, mem_ratio=mem_ratio)


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

