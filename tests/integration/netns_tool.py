"""
What the LAN discovery tests do inside a namespace, other than running a node: a raw TCP
listener that reports each connection, and senders of crafted datagrams.  Run as a script
(C{ip netns exec NS python netns_tool.py COMMAND ...}); each command ends by itself.

  listen PORT SECONDS      accept TCP on PORT, print "accepted HOST" per connection, close it
  announce TO ADDRESS PORT [COPIES [GAP]]
                           send COPIES (1) copies of one signed announcement (a fresh key)
                           naming ADDRESS:PORT to TO (HOST:UDPPORT), GAP (0) seconds apart
  dotnet TO ADDRESS PORT   send a .NET discovery datagram naming ADDRESS:PORT
  flood TO COUNT           send COUNT junk datagrams of 100 bytes
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import deferLater, react

from p2pnet_tx.discovery.announcement import encode_announcement


def _destination(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class _Report(Protocol):
    def connectionMade(self) -> None:
        print("accepted", self.transport.getPeer().host, flush=True)
        self.transport.abortConnection()


async def listen(reactor, port: str, seconds: str) -> None:
    reactor.listenTCP(int(port), Factory.forProtocol(_Report))
    print("listening", flush=True)
    await deferLater(reactor, float(seconds), lambda: None)


def _sender(reactor):
    port = reactor.listenUDP(0, DatagramProtocol())
    port.setBroadcastAllowed(True)
    return port


async def announce(reactor, to: str, address: str, port: str, copies: str = "1",
                   gap: str = "0") -> None:
    sender = _sender(reactor)
    data = encode_announcement(Ed25519PrivateKey.generate(), address, int(port),
                               reactor.seconds(), os.urandom(16))
    for number in range(int(copies)):
        if number:
            await deferLater(reactor, float(gap), lambda: None)
        sender.write(data, _destination(to))
        print("sent", number + 1, flush=True)


async def dotnet(reactor, to: str, address: str, port: str) -> None:
    # The datagram of P2PNet/DicoveryChannels/LANDiscoveryChannelBase.cs (UniqueIdentifier():
    # the IdentifierPacket serialized with System.Text.Json), written out here by hand.
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    data = (f'{{"Message":"discovery","Data":{int(port)},"IP":"{address}",'
            f'"SourceOriginIdentifier":"peer_one","SourceOriginTime":"{when}"}}').encode()
    _sender(reactor).write(data, _destination(to))
    print("sent", flush=True)


async def flood(reactor, to: str, count: str) -> None:
    sender = _sender(reactor)
    destination = _destination(to)
    junk = b"\x00" * 100
    sent = 0
    for number in range(int(count)):
        try:
            sender.write(junk, destination)
            sent += 1
        except OSError:  # the socket's buffer is full: let the reactor drain it
            await deferLater(reactor, 0.001, lambda: None)
        if number % 500 == 499:
            await deferLater(reactor, 0, lambda: None)
    print("sent", sent, flush=True)


COMMANDS = {"listen": listen, "announce": announce, "dotnet": dotnet, "flood": flood}

if __name__ == "__main__":
    command = COMMANDS[sys.argv[1]]
    react(lambda reactor: Deferred.fromCoroutine(command(reactor, *sys.argv[2:])))
