"""
File transfer throughput: a file between two real C{twistd -n p2pnet} nodes on loopback, SHA-256
verification included, against a plain Twisted L{Int32StringReceiver} sending the same bytes in
256 KiB frames with no hashing (a plain loop of C{sendString}, the receiver writing them to a
file), in one run; over TLS and over plaintext TCP.  (The plain TLS pair uses the same TLS 1.3
contexts as a node, L{NodeTLS}.)

    python benchmarks/bench_files.py [--size 1G] [--transport tls|tcp|both]

Ours: node A is sent C{POST /api/files}; the time runs from A's transfer start (A hashes the
file first: the manifest) to B's transfer end (every chunk verified, the whole file hashed,
moved into place), both as the nodes report them.  "transfer only" leaves A's hashing out
(from B's offer to B's end).  CPU is both node processes' user+system time over the transfer
(from /proc), per MiB.  Plain: two child processes of this script; the time runs from the
sender's connection to the receiver's last byte written; CPU is both processes' own over
the same span (from their connection on, so start-up and imports are left out).

The target (issue 12): ours at no less than 0.5x the plain throughput.  Prints one table.
Loopback figures on a shared 2-core machine are indicative only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
FRAME = 256 * 1024


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as file:
        for i in range(0, size, MiB):
            file.write((i.to_bytes(8, "big") + block)[: min(MiB, size - i)])


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- The plain baseline's children --------------------------------------------------------------


def plain_receiver(port_file: str, out: str, size: int, tls: bool) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import Int32StringReceiver

    class Receiver(Int32StringReceiver):
        MAX_LENGTH = 2 * FRAME

        def connectionMade(self) -> None:
            self.file = open(out, "wb")  # noqa: SIM115 - closed when the last byte is in
            self.got = 0
            self.cpu = _cpu_now()

        def stringReceived(self, data: bytes) -> None:
            self.file.write(data)
            self.got += len(data)
            if self.got >= size:
                self.file.close()
                print(json.dumps({"end": time.time(), "cpu": _cpu_now() - self.cpu}),
                      flush=True)
                self.transport.loseConnection()
                reactor.callLater(0.1, reactor.stop)

    factory = Factory.forProtocol(Receiver)
    if tls:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from p2pnet_tx.tls import NodeTLS

        factory = TLSMemoryBIOFactory(NodeTLS(Ed25519PrivateKey.generate(), reactor), False,
                                      factory, reactor)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    Path(port_file).write_text(str(port.getHost().port))
    reactor.run()


def plain_sender(port: int, source: str, tls: bool) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory
    from twisted.protocols.basic import Int32StringReceiver

    class Sender(Int32StringReceiver):
        def connectionMade(self) -> None:
            self.start = time.time()
            self.cpu = _cpu_now()
            with open(source, "rb") as file:  # what a user writes: a plain loop of sendString
                for data in iter(lambda: file.read(FRAME), b""):
                    self.sendString(data)

        def connectionLost(self, reason: object = None) -> None:
            print(json.dumps({"start": self.start, "cpu": _cpu_now() - self.cpu}), flush=True)
            reactor.stop()

    factory = ClientFactory.forProtocol(Sender)
    if tls:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from p2pnet_tx.tls import NodeTLS

        factory = TLSMemoryBIOFactory(NodeTLS(Ed25519PrivateKey.generate(), reactor), True,
                                      factory, reactor)
    reactor.connectTCP("127.0.0.1", port, factory)
    reactor.run()


def run_plain(work: Path, source: Path, size: int, tls: bool) -> dict[str, float]:
    out, port_file = work / "plain.out", work / "plain.port"
    port_file.unlink(missing_ok=True)
    me = [sys.executable, __file__]
    flag = ["--tls"] if tls else []
    receiver = subprocess.Popen([*me, "--role", "plain-recv", "--port-file", str(port_file),
                                 "--out", str(out), "--size", str(size), *flag],
                                stdout=subprocess.PIPE, text=True)
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.05)
    sender = subprocess.Popen([*me, "--role", "plain-send", "--port", port_file.read_text(),
                               "--source", str(source), *flag], stdout=subprocess.PIPE, text=True)
    received = json.loads(receiver.communicate(timeout=900)[0].strip().splitlines()[-1])
    sent = json.loads(sender.communicate(timeout=60)[0].strip().splitlines()[-1])
    assert out.stat().st_size == size
    out.unlink()
    seconds = received["end"] - sent["start"]
    return {"seconds": seconds, "cpu": received["cpu"] + sent["cpu"]}


# -- Ours: two twistd nodes ------------------------------------------------------------------


class Node:
    def __init__(self, data_dir: Path, transport: str, peer: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
                "--pidfile=", "p2pnet", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
                "--control", f"tcp:{free_port()}:interface=127.0.0.1",
                "--data-dir", str(data_dir), "--log-level", "warn"]
        if transport == "tcp":
            args += ["--transport", "tcp", "--trust", "ping"]
        if peer is not None:
            args += ["--peer", f"127.0.0.1:{peer}"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        import urllib.request

        url = (self.data_dir / "control.url").read_text().strip().rstrip("/") + path
        token = (self.data_dir / "control.token").read_text().strip()
        request = urllib.request.Request(
            url, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def until(self, method: str, path: str, accept: Any, timeout: float,
              interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = self.api(method, path)
                if accept(body):
                    return body
            except (OSError, ValueError):
                pass
            time.sleep(interval)
        raise SystemExit(f"timed out waiting for {path} on {self.data_dir}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def run_ours(work: Path, source: Path, size: int, transport: str) -> dict[str, float]:
    b = Node(work / "b", transport)
    a = Node(work / "a", transport, peer=b.port)
    try:
        for node in (a, b):
            node.until("GET", "/api/status", lambda s: s["counts"]["trusted"] == 1, 60)
        cpu_before = cpu_of(a.process.pid) + cpu_of(b.process.pid)
        a.api("POST", "/api/files", {"path": str(source), "to": None})

        def received(body: Any) -> Any:
            return [t for t in body["transfers"] if t["direction"] == "receive"
                    and t["state"] in ("done", "failed", "refused", "cancelled")]

        [done] = received(b.until("GET", "/api/transfers", received, 900))
        cpu = cpu_of(a.process.pid) + cpu_of(b.process.pid) - cpu_before
        [sent] = [t for t in a.api("GET", "/api/transfers")["transfers"]]
        assert done["state"] == "done", done
        assert done["sha256"] == sent["sha256"] and done["size"] == size
        Path(done["path"]).unlink()
        return {"seconds": done["finished"] - sent["started"], "cpu": cpu,
                "transfer_seconds": done["finished"] - done["started"]}
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(work / "a", ignore_errors=True)
        shutil.rmtree(work / "b", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="file size (e.g. 64M, 1G)")
    parser.add_argument("--transport", default="both", choices=["tls", "tcp", "both"])
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--tls", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = parse_size(args.size)
    if args.role == "plain-recv":
        return plain_receiver(args.port_file, args.out, size, args.tls)
    if args.role == "plain-send":
        return plain_sender(args.port, args.source, args.tls)
    transports = ["tls", "tcp"] if args.transport == "both" else [args.transport]
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        work = Path(tmp)
        source = work / "source.bin"
        make_file(source, size)
        hashlib.sha256(source.read_bytes()[:1])  # warm the page cache a little
        mib = size / MiB
        print(f"# bench_files: {mib:.0f} MiB over loopback, {os.cpu_count()} cores, "
              f"Python {sys.version.split()[0]}")
        print(f"{'transport':<10}{'what':<26}{'MB/s':>9}{'CPU s/MiB':>12}")
        for transport in transports:
            plain = run_plain(work, source, size, transport == "tls")
            ours = run_ours(work, source, size, transport)
            for label, figures in (("plain Int32StringReceiver", plain),
                                   ("p2pnet files (verified)", ours)):
                print(f"{transport:<10}{label:<26}{size / 1e6 / figures['seconds']:>9.1f}"
                      f"{figures['cpu'] / mib:>12.5f}")
            print(f"{transport:<10}{'  transfer only':<26}"
                  f"{size / 1e6 / ours['transfer_seconds']:>9.1f}")
            ratio = plain["seconds"] / ours["seconds"]
            verdict = "met" if ratio >= 0.5 else "MISSED"
            print(f"{transport:<10}ratio ours/plain {ratio:.2f}x (target >= 0.50x: {verdict})")


if __name__ == "__main__":
    main()
