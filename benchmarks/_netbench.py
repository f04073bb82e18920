"""
Shared parts of L{bench_network}: children driven over pipes, process figures, and the
many-channels half (RSS per idle channel, handshakes per second), each against a plain Twisted
baseline.  Run through C{bench_network.py}; nothing here is a command of its own.

Flavors (L{FLAVORS}): our node over TLS (C{ours-tls}: C{PeerNetwork(reactor)}, TLS 1.3 and key
trust, the defaults) and over plaintext TCP (C{ours-tcp}: C{transport="tcp"},
C{trust_protocol=always_trust}); the plain Twisted baselines over TCP (C{plain-tcp}) and over
TLS (C{plain-tls}: a L{TLSMemoryBIOFactory} around the same plain protocol, with the contexts
of a L{NodeTLS}: TLS 1.3, mutual, Ed25519 certificates).  C{--transport tls|tcp|both} picks
ours (L{flavors_for}); the plain TCP baseline always runs, the plain TLS one with TLS.

Many channels to one server (fresh child processes: a server, and a client process whose memory
and CPU are not counted), with the fd soft limit raised to the hard limit.  The clients are raw
and light, spread over 127.0.0.2-201: they send one Identity packet and read.  Over TLS each
client connection has its own Ed25519 key and self-signed certificate (L{ClientKeys}, made
before the first connect, one client context shared), and its Identity carries the identifier
its key derives, as a node's does; so the server does all of a real handshake and the clients
as little as TLS allows.

- memory: up to N (C{--channels}, default 10,000) inbound trusted channels to one PeerNetwork
  (its NetworkLimits raised to admit them), opened within C{--budget} seconds.  RSS (VmRSS) of
  the server after C{gc.collect()}, before the first and after the last channel, divided by the
  channels held.  Baselines: a plain Twisted server holding as many L{Int32StringReceiver}s open
  (L{HeldOpen}), over TCP and over TLS.  C{--tls-buffers keep} clears OpenSSL's
  C{MODE_RELEASE_BUFFERS} on the TLS servers' contexts, to show what that mode saves.
- handshakes: a PeerNetwork server (over TLS: key trust, the default); clients send their
  Identity (over TLS once their handshake is done) and close once the server's peer list shows
  it trusts them (C{--hold}: keep the channel open, so the server's tables grow);
  C{--concurrency} at a time.  Completed trusts per second counted on the server (its
  C{peer_trusted} event), and the server's CPU time per handshake between the first and the last
  trust: "handshakes per second on one core" is one over it.  Beside it the same over plaintext
  TCP (C{always_trust}), and the plain baseline: a Twisted TLS accept loop that counts completed
  handshakes (L{HandshakeCounter}) and answers a few bytes, on which its clients close.  The
  server says which key-exchange group its first TLS handshake negotiated.

C{--tls-group NAME} (L{use_tls_group}) has every child offer and accept only that key-exchange
group, through an OpenSSL configuration they inherit (C{OPENSSL_CONF}, C{Groups}): the library
is unchanged, and so is its default, OpenSSL's own list (post-quantum hybrid first).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from OpenSSL import SSL
from OpenSSL.crypto import X509, PKey
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import LogLevel, globalLogBeginner
from twisted.protocols.basic import Int32StringReceiver, LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from p2pnet_tx.identity import identifier_for_public_key
from p2pnet_tx.network import NetworkLimits, PeerNetwork
from p2pnet_tx.packets import IdentifierPacket, PureMessagePacket
from p2pnet_tx.tls import NodeTLS, certificate_for_key
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire import get_codec

LOOPBACK = "127.0.0.1"
CLIENT_SOURCES = [f"127.0.0.{i}" for i in range(2, 202)]
CHILD_LIFETIME = 900.0  # a child stops by itself after this long, whatever happens
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_network.py")

FLAVORS = ("ours-tls", "ours-tcp", "plain-tcp", "plain-tls")
LABELS = {"ours-tls": "ours/TLS", "ours-tcp": "ours/TCP", "plain-tcp": "plain/TCP",
          "plain-tls": "plain/TLS"}


def flavors_for(transport: str) -> list[str]:
    """
    What C{--transport} runs: ours over each transport chosen (C{tls}, C{tcp} or C{both}), the
    plain TCP baseline always, the plain TLS baseline whenever ours runs TLS.
    """
    ours = {"both": ["ours-tls", "ours-tcp"], "tls": ["ours-tls"], "tcp": ["ours-tcp"]}[transport]
    return ours + ["plain-tcp"] + (["plain-tls"] if "ours-tls" in ours else [])


def is_ours(flavor: str) -> bool:
    return flavor.startswith("ours-")


def is_tls(flavor: str) -> bool:
    return flavor.endswith("-tls")


def ours_network(reactor: Any, flavor: str, **kwargs: Any) -> PeerNetwork:
    """Our node as C{flavor} runs it: the defaults over TLS; over TCP, C{always_trust}."""
    if flavor == "ours-tcp":
        return PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust, **kwargs)
    return PeerNetwork(reactor, **kwargs)


def plain_tls_server(reactor: Any, factory: Factory,
                     keep_buffers: bool = False) -> TLSMemoryBIOFactory:
    """A plain Twisted TLS server factory around C{factory}, with a fresh node key's contexts."""
    tls = NodeTLS(Ed25519PrivateKey.generate(), reactor)
    if keep_buffers:
        keep_tls_buffers(tls)
    return TLSMemoryBIOFactory(tls, False, factory, reactor)


def plain_tls_client(reactor: Any, factory: ClientFactory) -> TLSMemoryBIOFactory:
    """A plain Twisted TLS client factory around C{factory}, with a fresh node key's contexts."""
    return TLSMemoryBIOFactory(NodeTLS(Ed25519PrivateKey.generate(), reactor), True, factory,
                               reactor)


def keep_tls_buffers(tls: NodeTLS) -> None:
    """
    Clear C{MODE_RELEASE_BUFFERS} on a L{NodeTLS}'s contexts (C{--tls-buffers keep}): OpenSSL
    then keeps each connection's read and write buffers while it is idle.  The benchmark
    reaches into the contexts, which the library does not expose, to measure the difference.
    """
    for context in (tls._server_context, tls._client_context):
        context.clear_mode(SSL.MODE_RELEASE_BUFFERS)

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
        if str(event.get("log_format", "")).startswith("insecure node"):
            return  # ours-tcp says that it runs plaintext: chosen, and known
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


class Profiling:
    """
    C{prof-start [cpu]} / C{prof-stop PATH} for any child: cProfile of everything in between,
    timed by the wall clock, or with C{cpu} by the process's CPU time (on a loaded machine the
    wall clock charges a function for the time the process waited to run).
    """

    def __init__(self) -> None:
        self.profile: Any = None

    def command(self, word: str, args: list[str]) -> bool:
        if word == "prof-start":
            import cProfile

            self.profile = (cProfile.Profile(time.process_time) if args == ["cpu"]
                            else cProfile.Profile())
            self.profile.enable()
            say("PROFILING")
        elif word == "prof-stop":
            self.profile.disable()
            self.profile.dump_stats(args[0])
            say("PROFILED")
        else:
            return False
        return True


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


@implementer(IHandshakeListener)
class HandshakeCounter(Protocol):
    """The baseline for handshakes: counts each completed TLS handshake and answers a string."""

    def handshakeCompleted(self) -> None:
        self.factory.completed(self)
        self.transport.write(b"\0\0\0\2ok")


def server_limits(channels: int) -> NetworkLimits:
    return NetworkLimits(max_inbound=channels + 100, max_pending=1000,
                         max_per_ip=channels + 100, accept_burst=channels + 100,
                         accept_rate=1e6)


def mem_server_setup(flavor: str, channels: int,
                     keep_buffers: bool = False) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        log = start_logging(f"{flavor} server")
        network = None
        if is_ours(flavor):
            network = ours_network(reactor, flavor, limits=server_limits(channels))
            if keep_buffers and network.tls is not None:
                keep_tls_buffers(network.tls)
            factory: Any = network.factory

            def count() -> int:
                return sum(1 for channel in network.active_peer_channels if channel.is_trusted)
        else:
            held = Factory.forProtocol(HeldOpen)
            held.open = 0
            held.noisy = False
            factory = held
            if is_tls(flavor):
                factory = plain_tls_server(reactor, held, keep_buffers)

            def count() -> int:
                return held.open

        port = reactor.listenTCP(0, factory, interface=LOOPBACK, backlog=1024)
        if network is not None:
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


class TrustClock:
    """
    When each handshake completed (wall clock), and the process's CPU time at the first one:
    the CPU used from there to the C{measure} command (asked once the clients are done) is the
    work of every later handshake, the closing of their connections included.  (No
    C{getrusage} per handshake: the clock must not add to what it measures.)
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu0 = 0.0
        self.group = "-"

    def completed(self, protocol: Any = None) -> None:
        """A handshake completed on C{protocol} (a channel, or the plain TLS protocol)."""
        if not self.times:
            self.cpu0 = cpu_seconds()
            self.group = negotiated_group(protocol)
        self.times.append(time.perf_counter())

    def span(self) -> float:
        return self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0

    def cpu_span(self) -> float:
        return cpu_seconds() - self.cpu0 if len(self.times) > 1 else 0.0


def negotiated_group(protocol: Any) -> str:
    """The key-exchange group the TLS connection under C{protocol} negotiated, or C{-}."""
    handle = getattr(getattr(protocol, "transport", None), "getHandle", lambda: None)()
    group = getattr(handle, "get_group_name", lambda: None)()
    return group or "-"


def use_tls_group(group: str) -> str:
    """
    Make every child started from now on offer and accept only the key-exchange C{group}: write
    an OpenSSL configuration whose system default says C{Groups = group}, and point
    C{OPENSSL_CONF} at it (children inherit the environment; this process does no TLS).

    @return: the configuration's path.
    """
    if not group.replace("_", "").isalnum():
        raise ValueError(f"not an OpenSSL group name: {group!r}")
    path = os.path.join(tempfile.gettempdir(), f"bench_network.{group}.cnf")
    with open(path, "w") as config:
        config.write("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
                     "[ssl_sect]\nsystem_default = system_default_sect\n"
                     f"[system_default_sect]\nGroups = {group}\n")
    os.environ["OPENSSL_CONF"] = path
    return path


def hs_server_setup(flavor: str, channels: int) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        log = start_logging(f"{flavor} handshake server")
        clock = TrustClock()
        network = None
        if is_ours(flavor):
            network = ours_network(reactor, flavor, limits=server_limits(channels))
            network.peer_trusted.add(clock.completed)
            factory: Any = network.factory
        else:  # plain-tls: a Twisted TLS accept loop
            counter = Factory.forProtocol(HandshakeCounter)
            counter.noisy = False
            counter.completed = clock.completed
            factory = plain_tls_server(reactor, counter)
        port = reactor.listenTCP(0, factory, interface=LOOPBACK, backlog=1024)
        if network is not None:
            network.port_opened(port)
        say("READY", port.getHost().port, rss_kib())
        profiling = Profiling()

        def command(line: str) -> None:
            word, *args = line.split()
            if profiling.command(word, args):
                return
            if word == "measure":
                counters = network.total_counters() if network is not None else {}
                span = clock.span()
                say("TRUSTS", len(clock.times), f"{span:.6f}",
                    counters.get("handshakes_failed", 0),
                    counters.get("refused_connections", 0),
                    len(network.active_peer_channels) if network is not None else 0,
                    log.count, f"{clock.cpu_span():.6f}", clock.group)

        return command

    return setup


# -- Many channels: clients ---------------------------------------------------------------------


_CODEC = get_codec("p2pnet")


def identity_frame(identifier: str) -> bytes:
    return _CODEC.encode(IdentifierPacket("connect", 0, "", source_origin_identifier=identifier))


def _accept_any_chain(connection: Any, certificate: Any, error: int, depth: int,
                      ok: int) -> bool:
    return True  # self-signed, as every node's certificate: the server checks the key


@implementer(IOpenSSLClientConnectionCreator)
class ClientKeys:
    """
    One Ed25519 key and self-signed certificate per client connection, made before the first
    connect, and the one client context they share: TLS 1.3 only, a certificate required of
    the server, no tickets, idle buffers released (as L{NodeTLS}'s, but one context for all).

    @ivar identifiers: the identifier each key derives, by connection index.
    """

    def __init__(self, count: int) -> None:
        self.identifiers: list[str] = []
        self._credentials: list[tuple[X509, PKey]] = []
        for _ in range(count):
            key = Ed25519PrivateKey.generate()
            self.identifiers.append(identifier_for_public_key(key))
            self._credentials.append((X509.from_cryptography(certificate_for_key(key)),
                                      PKey.from_cryptography_key(key)))
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.set_verify(SSL.VERIFY_PEER, _accept_any_chain)
        context.set_options(SSL.OP_NO_TICKET)
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        self._context = context

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A client connection with the key of the client protocol it carries."""
        certificate, key = self._credentials[tlsProtocol.wrappedProtocol.index]
        connection = SSL.Connection(self._context, None)
        connection.use_certificate(certificate)
        connection.use_privatekey(key)
        return connection


class Launcher:
    """
    Opens connections, C{concurrency} at a time, spread over loopback source addresses; over
    TLS each with its own key from C{keys}.
    """

    def __init__(self, reactor: Any, port: int, total: int, concurrency: int,
                 make: Callable[[Launcher, int], Protocol], budget: float,
                 keys: ClientKeys | None = None, speaks_p2pnet: bool = True) -> None:
        self.reactor = reactor
        self.port = port
        self.total = total
        self.concurrency = concurrency
        self.make = make
        self.keys = keys
        self.speaks_p2pnet = speaks_p2pnet
        self.deadline = time.perf_counter() + budget
        self.started = self.in_flight = self.succeeded = self.failed = 0
        self.protocols: list[Protocol] = []
        self.finished = False
        self.hold = False
        self._cpu0, self._t0 = cpu_seconds(), time.perf_counter()

    def identifier(self, index: int) -> str:
        """Over TLS the identifier the connection's key derives; over TCP one of our choice."""
        return self.keys.identifiers[index] if self.keys is not None else f"{index:032x}"

    def fill(self) -> None:
        while (self.in_flight < self.concurrency and self.started < self.total
               and time.perf_counter() < self.deadline):
            index = self.started
            self.started += 1
            self.in_flight += 1
            factory: ClientFactory = _OneShotFactory(self, index)
            if self.keys is not None:
                factory = TLSMemoryBIOFactory(self.keys, True, factory, self.reactor)
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
        self.index = index
        self.reported = False
        self.open = False

    def connectionMade(self) -> None:
        self.open = True
        self.launcher.protocols.append(self)
        # Over TLS, Twisted holds this until the handshake is done.
        self.transport.write(identity_frame(self.launcher.identifier(self.index)))

    def dataReceived(self, data: bytes) -> None:
        if not self.reported:
            self.reported = True
            self.launcher.done(True)

    def connectionLost(self, reason: object = None) -> None:
        self.open = False
        if not self.reported:
            self.reported = True
            self.launcher.done(False)


def client_keys(flavor: str, total: int) -> ClientKeys | None:
    """Keys for C{total} TLS clients (said with C{KEYS} when made), or None over TCP."""
    if not is_tls(flavor):
        return None
    started = time.perf_counter()
    keys = ClientKeys(total)
    say("KEYS", total, f"{time.perf_counter() - started:.3f}")
    return keys


def mem_clients_setup(flavor: str, port: int, total: int, concurrency: int,
                      budget: float) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        start_logging("clients")
        keys = client_keys(flavor, total)
        say("LAUNCHING")
        launcher = Launcher(reactor, port, total, concurrency, MemClient, budget, keys)
        launcher.fill()

        def keepalive() -> None:
            # Stay clear of the server's idle timeout (90 s) should a run be slow.
            frame = _CODEC.encode(PureMessagePacket("keepalive"))
            for protocol in launcher.protocols:
                if protocol.open:
                    protocol.transport.write(frame)

        from twisted.internet.task import LoopingCall

        loop = LoopingCall(keepalive)
        loop.clock = reactor
        loop.start(20.0, now=False)
        return lambda line: None

    return setup


class HandshakeClient(Protocol):
    """
    A light client of the handshake figure: sends its Identity at once (over TLS Twisted sends
    it once the TLS handshake is done), checks nothing of the server, and closes once the
    server's peer list arrives: the server sends it when it trusts us.  Against the plain
    baseline, it sends nothing and closes on the server's first bytes.
    """

    def __init__(self, launcher: Launcher, index: int) -> None:
        self.launcher = launcher
        self.index = index
        self.buffer = bytearray()
        self.reported = False

    def connectionMade(self) -> None:
        if self.launcher.speaks_p2pnet:
            self.transport.write(identity_frame(self.launcher.identifier(self.index)))

    def dataReceived(self, data: bytes) -> None:
        if not self.launcher.speaks_p2pnet:
            self.finish(True)
            return
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 4 and not self.reported:
            length = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + length:
                return
            head = bytes(buffer[4 : 4 + min(length, 24)])
            del buffer[: 4 + length]
            if head.startswith(b'{"type":"PeerGroup"'):
                self.finish(True)
            elif head.startswith(b'{"type":"Disconnect"'):
                self.finish(False)

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


def hs_clients_setup(flavor: str, port: int, total: int, concurrency: int, budget: float,
                     hold: bool) -> Callable[[Any], Callable[[str], None]]:
    def setup(reactor: Any) -> Callable[[str], None]:
        start_logging("clients")
        keys = client_keys(flavor, total)
        say("LAUNCHING")
        launcher = Launcher(reactor, port, total, concurrency, HandshakeClient, budget, keys,
                            speaks_p2pnet=is_ours(flavor))
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
    keep = ["--tls-buffers", "keep"] if options.tls_buffers == "keep" else []
    server = Child("--mode", "mem-server", "--flavor", flavor, "--channels", channels, *keep)
    clients = None
    try:
        port, rss0 = (int(x) for x in server.expect("READY", 30))
        clients = Child("--mode", "mem-clients", "--flavor", flavor, "--port", port,
                        "--channels", channels, "--concurrency", options.concurrency,
                        "--budget", options.budget)
        clients.expect("LAUNCHING", 300)  # TLS clients make their keys first
        started = time.perf_counter()
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


def handshake_run(flavor: str, options: argparse.Namespace,
                  profile: str | None = None) -> dict[str, Any]:
    """
    C{options.handshakes} handshakes against a fresh C{flavor} server; with C{profile}, the
    server runs under cProfile and dumps its statistics to that path.
    """
    total = options.handshakes
    server = Child("--mode", "hs-server", "--flavor", flavor, "--channels", total)
    clients = None
    try:
        port, _ = server.expect("READY", 30)
        clients = Child("--mode", "hs-clients", "--flavor", flavor, "--port", port,
                        "--channels", total, "--concurrency", options.concurrency,
                        "--budget", options.budget, *(["--hold"] if options.hold else []))
        clients.expect("LAUNCHING", 300)
        if profile:
            server.ask("prof-start cpu", "PROFILING")
        ok, failed, client_busy = clients.expect("CLIENTS", options.budget + 60)
        time.sleep(0.5)
        if profile:
            server.ask(f"prof-stop {profile}", "PROFILED", 120)
        fields = server.ask("measure", "TRUSTS")
        trusts, span, cpu = int(fields[0]), float(fields[1]), float(fields[6])
        return {"trusts": trusts, "span": span, "rate": (trusts - 1) / span if span else 0.0,
                "cpu_each": cpu / (trusts - 1) if trusts > 1 else 0.0,
                "busy": cpu / span if span else 0.0,
                "handshakes_failed": int(fields[2]), "refused": int(fields[3]),
                "client_ok": int(ok), "client_failed": int(failed), "warnings": int(fields[5]),
                "client_busy": float(client_busy), "group": fields[7]}
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
    print(f"\nMany channels to one server (server and clients in two processes, "
          f"fd limit {limit}, {options.concurrency} connections in flight)")
    flavors = flavors_for(options.transport)
    if options.only in (None, "memory"):
        run_memory(options, flavors, channels, results)
    if options.only in (None, "handshakes"):
        run_handshakes(options, [f for f in flavors if f != "plain-tcp"], results)


def run_memory(options: argparse.Namespace, flavors: list[str], channels: int,
               results: dict[str, Any]) -> None:
    runs: dict[str, dict[str, Any]] = {}
    buffers = ("; TLS contexts keep idle buffers (--tls-buffers keep)"
               if options.tls_buffers == "keep" else "")
    print(f"  memory: idle trusted channels to one server, RSS delta / channels{buffers}")
    for flavor in flavors:
        target = channels
        twin = "ours-" + flavor.split("-")[1]
        if not is_ours(flavor) and twin in runs:
            # A baseline holds as many as ours managed, for a like-for-like figure.
            target = max(runs[twin]["channels"], 1)
        run = runs[flavor] = many_channels_run(flavor, target, options)
        note = ""
        if run["channels"] < target:
            note = f"  ONLY {run['channels']:,} of {target:,} within {options.budget:.0f} s"
        print(f"  {LABELS[flavor]:10s} {run['channels']:6,d} channels in "
              f"{run['seconds']:5.1f} s ({run['channels'] / run['seconds']:6,.0f}/s); RSS "
              f"{run['rss0'] / 1024:5.1f} -> {run['rss1'] / 1024:6.1f} MiB: "
              f"{run['per_channel'] / 1024:5.2f} KiB per channel{note}"
              + (f" ({run['warnings']} warnings)" if run["warnings"] else ""), flush=True)
    memory = results.setdefault("memory", {})
    for flavor, run in runs.items():
        memory[flavor] = {"kib": run["per_channel"] / 1024, "channels": run["channels"],
                          "target": channels}
    for a, b in (("ours-tcp", "plain-tcp"), ("ours-tls", "plain-tls"), ("ours-tls", "ours-tcp"),
                 ("plain-tls", "plain-tcp")):
        if a in runs and b in runs:
            print(f"  {'':10s} {LABELS[a]} / {LABELS[b]}: "
                  f"{runs[a]['per_channel'] / max(runs[b]['per_channel'], 1.0):.2f}x the memory "
                  f"per channel ({(runs[a]['per_channel'] - runs[b]['per_channel']) / 1024:+.2f}"
                  f" KiB)")


def run_handshakes(options: argparse.Namespace, flavors: list[str],
                   results: dict[str, Any]) -> None:
    """
    The handshake figure, C{options.handshake_rounds} rounds; each round runs every flavor
    once, in an order that rotates from round to round.  Rates and CPU are medians of rounds;
    the ratio ours/TLS : plain/TLS is the median of the per-round ratios.
    """
    how = ("clients hold their channels open" if options.hold else
           f"each client closes once trusted, at most {options.concurrency} open")
    rounds = options.handshake_rounds
    print(f"  handshakes, {options.handshakes:,} per server ({how}), {rounds} round(s), flavors "
          f"rotating; light clients, each TLS connection with its own key:")
    runs: dict[str, list[dict[str, Any]]] = {flavor: [] for flavor in flavors}
    for index in range(rounds):
        for flavor in flavors[index % len(flavors):] + flavors[: index % len(flavors)]:
            hs = handshake_run(flavor, options)
            what = "handshakes completed" if not is_ours(flavor) else "trusted"
            print(f"  {LABELS[flavor]:10s} {hs['trusts']:,} {what} on the server in "
                  f"{hs['span']:.2f} s: {hs['rate']:,.0f}/s ({hs['handshakes_failed']} failed, "
                  f"{hs['refused']} refused at accept; clients saw {hs['client_ok']} ok, "
                  f"{hs['client_failed']} failed"
                  + (f"; {hs['warnings']} warnings" if hs["warnings"] else "")
                  + (f"; key exchange {hs['group']}" if is_tls(flavor) else "") + ")")
            if hs["cpu_each"]:
                print(f"  {'':10s} server CPU {hs['cpu_each'] * 1e6:,.0f} us per handshake "
                      f"(busy {hs['busy']:.0%} of the run; clients {hs['client_busy']:.0%}): "
                      f"{1 / hs['cpu_each']:,.0f}/s on one core", flush=True)
                runs[flavor].append(hs)
    figures = results.setdefault("handshakes", {})
    for flavor, done in runs.items():
        if not done:
            continue
        cpu = statistics.median(hs["cpu_each"] for hs in done)
        figures[flavor] = {"rate": statistics.median(hs["rate"] for hs in done),
                           "cpu_us": cpu * 1e6, "one_core": 1 / cpu, "group": done[0]["group"],
                           "complete": all(hs["trusts"] >= options.handshakes for hs in done),
                           "rounds": [1 / hs["cpu_each"] for hs in done]}
    if rounds > 1:
        for flavor, figure in figures.items():
            print(f"  {LABELS[flavor]:10s} median of {len(figure['rounds'])} rounds: "
                  f"{figure['cpu_us']:,.0f} us per handshake, {figure['one_core']:,.0f}/s on one "
                  f"core (rounds: {', '.join(f'{r:,.0f}' for r in figure['rounds'])})")
    if "ours-tls" in figures and "plain-tls" in figures:
        ours, plain = figures["ours-tls"]["cpu_us"], figures["plain-tls"]["cpu_us"]
        pairs = zip(runs["ours-tls"], runs["plain-tls"])
        ratio = statistics.median(a["cpu_each"] / b["cpu_each"] for a, b in pairs)
        figures["ours-tls"]["ratio"] = 1 / ratio
        print(f"  {'':10s} ours/TLS costs the server {ours - plain:,.0f} us more per handshake "
              f"than a plain Twisted TLS accept ({ratio:.2f}x, median of the rounds' ratios)")


def profile_handshakes(options: argparse.Namespace, top: int = 30) -> None:
    """
    One run of the handshake figure per TLS flavor with the server under cProfile (in CPU
    time); print the top functions by own time, and the share of the server's time spent in
    our code, in Twisted's TLS, in OpenSSL's handshake and in the reactor.
    """
    import pstats
    import tempfile

    for flavor in (f for f in flavors_for(options.transport) if f != "plain-tcp"):
        path = os.path.join(tempfile.gettempdir(), f"bench_network.handshakes.{flavor}.prof")
        hs = handshake_run(flavor, options, profile=path)
        print(f"\n  profile: {LABELS[flavor]} handshake server, {hs['trusts']:,} handshakes "
              f"({path}), CPU time, by own time:")
        stats = pstats.Stats(path, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(top)
        total = sum(row[2] for row in stats.stats.values())  # own time of every function
        shares: dict[str, float] = {}
        for (filename, _, name), row in stats.stats.items():
            shares[_area(filename, name)] = shares.get(_area(filename, name), 0.0) + row[2]
        print(f"  own time by area ({total:.2f} s in all, {total / max(hs['trusts'], 1) * 1e6:,.0f}"
              f" us per handshake under the profiler):")
        for area, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
            print(f"    {seconds / total:6.1%}  {area}")


def _area(filename: str, name: str) -> str:
    """Which part of the stack a profiled function belongs to."""
    if "SSL_do_handshake" in name:
        return "OpenSSL handshake (SSL_do_handshake)"
    if "_openssl" in name or "OpenSSL/" in filename:
        return "other OpenSSL and pyOpenSSL"
    if "cryptography" in filename or "_rust" in name:
        return "cryptography (certificate parsing)"
    if "p2pnet_tx" in filename:
        return "p2pnet_tx"
    if "automat" in filename:
        return "automat (our lifecycle machines)"
    if "zope/interface" in filename:
        return "zope.interface (Twisted's TLS wrapper declares the transport's interfaces)"
    if "twisted/protocols/tls" in filename or "_tls_legacy" in filename:
        return "Twisted TLS (TLSMemoryBIOProtocol)"
    if "twisted" in filename:
        return "Twisted reactor, TCP, logging"
    if "socket" in name or "epoll" in name or "select" in name:
        return "system calls (socket, epoll)"
    return "other (stdlib, builtins)"
