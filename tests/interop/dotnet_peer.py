"""
A model of an unmodified .NET P2PNet node (the reference, GitHub P2PNetSuite/P2PNet), built
from its C# source, bugs included: our stand-in for a .NET runtime.  A model kinder than .NET
proves nothing, so each behaviour cites the C# file and method it copies.

L{DotnetNode} is the node (its static C{PeerNetwork} state: KnownPeers, the example
application's handlers); L{DotnetChannel} is one C{PeerChannel}, a Twisted protocol; the
node is also the factory of inbound channels.  Everything runs on the clock given, so unit
tests drive it with L{task.Clock<twisted.internet.task.Clock>} and integration tests with the
reactor.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from p2pnet_tx.packets import DataTransmissionPacket, PureMessagePacket
from p2pnet_tx.wire import get_codec

# DistributionProtocol.cs, PacketTagMap: the order ExtractWholeMessage tries the tags in.
PACKET_TAGS = [
    ("Identity", "<Identity>", "</Identity>"),
    ("Disconnect", "<Disconnect>", "</Disconnect>"),
    ("PeerGroup", "<PeerGroup>", "</PeerGroup>"),
    ("DataTransmit", "<DataTransmit>", "</DataTransmit>"),
    ("Message", "<Message>", "</Message>"),
]
READ_SIZE = 4096  # PeerChannel.cs, ReadIncoming: new byte[4096]
READ_PAUSE = 0.25  # PeerChannel.cs, ReadIncoming: Thread.Sleep(250) after every read
SEND_PAUSE = 0.1  # PeerChannel.cs, SendOutgoing: Thread.Sleep(100) after every write
HANDLER_PAUSE = 0.075  # PeerChannelBase.cs, PacketHandler: Thread.Sleep(75) between passes
PING_INTERVAL = 3.0  # PeerNetwork.cs, DefaultPingHandler: Thread.Sleep(3000)
HELLO = "Hello fellow peer!"  # ExampleApplication/Program.cs, NewPeerAdded

_CODEC = get_codec("dotnet")


class HandlerDied(Exception):
    """What killed a channel's packet handler task (the model records it)."""


class DotnetChannel(Protocol):
    """
    One .NET C{PeerChannel} (P2PNet/Peers/PeerChannel.cs and PeerChannelBase.cs).

    @ivar trusted: C{_isTrustedPeer}: whether .NET trusts us.
    @ivar successful_pings: DefaultPingHandler's count of reads containing "Ping from".
    @ivar handler_error: what killed the packet handler, or None while it runs.
    @ivar messages: the texts of the Messages the handler handled.
    @ivar data: the DataTransmit packets the handler handled.
    @ivar peer_groups: the PeerGroup objects the handler handled.
    @ivar reads: the chunks each read returned, as text.
    """

    def __init__(self, node: DotnetNode) -> None:
        self.node = node
        self.clock: IReactorTime = node.clock
        self.trusted = False
        self.successful_pings = 0
        self._post_test = False
        self.handler_error: Exception | None = None
        self.messages: list[str] = []
        self.data: list[DataTransmissionPacket] = []
        self.peer_groups: list[dict[str, Any]] = []
        self.reads: list[str] = []
        self.closed = False
        self._kernel = bytearray()  # what the socket holds, not yet read
        self._received_data = ""  # ReadIncoming's receivedData
        self._reader_sleeping = False
        self._outgoing: deque[bytes] = deque()  # PeerChannelBase.OutgoingDataQueue
        self._sender_sleeping = False
        self._packet_queue: deque[tuple[str, str]] = deque()  # PeerChannelBase.packetQueue
        self._handler_call: IDelayedCall | None = None
        self._ping_call: IDelayedCall | None = None

    # -- Opening: PeerNetwork.AddPeer's channelize() and PeerChannel.OpenPeerChannel ----------

    def connectionMade(self) -> None:
        peer_ip = self.transport.getPeer().host
        # PeerNetwork.cs, AddPeer/channelize: the peer's IP joins KnownPeers, never to leave.
        self.node.known_ips.add(peer_ip)
        self.node.channels.append(self)
        # PeerChannel.OpenPeerChannel: the trust protocol starts at once (DefaultPingHandler's
        # loop sends its first ping before its first Sleep(3000)).
        self._ping_loop()
        # PeerNetwork.cs, channelize: OnPeerAdded; the example application's NewPeerAdded
        # answers it with "Hello fellow peer!".
        self.load_outgoing(self.node.message(HELLO))

    def _ping_loop(self) -> None:
        # PeerNetwork.cs, DefaultPingHandler: while (!IsTrustedPeer) { ping; Sleep(3000); }
        self._ping_call = None
        if self.trusted or self.closed:
            return
        self.load_outgoing(self._ping())
        self._ping_call = self.clock.callLater(self.node.ping_interval, self._ping_loop)

    def _ping(self) -> PureMessagePacket:
        # PeerNetwork.cs, DefaultPingHandler: $"Ping from {PeerNetwork.LocalIPV4Address}"
        return self.node.message(f"Ping from {self.node.local_ip}")

    # -- Sending: PeerChannelBase.LoadOutgoingData and PeerChannel.SendOutgoing ---------------

    def load_outgoing(self, packet: Any) -> None:
        """LoadOutgoingData: serialize, wrap in tags, queue (no bound: a ConcurrentQueue)."""
        self._outgoing.append(_CODEC.encode(packet) if not isinstance(packet, bytes) else packet)
        if not self._sender_sleeping:
            self._send_next()

    def _send_next(self) -> None:
        # SendOutgoing: while (TryDequeue) { stream.WriteAsync(...); finally Sleep(100); }
        self._sender_sleeping = False
        if self.closed or not self._outgoing:
            return
        self.transport.write(self._outgoing.popleft())
        self._sender_sleeping = True
        self.clock.callLater(SEND_PAUSE, self._send_next)

    # -- Reading: PeerChannel.ReadIncoming ---------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self._kernel += data
        if not self._reader_sleeping:
            self._read()

    def _read(self) -> None:
        self._reader_sleeping = False
        if not self._kernel:
            return  # ReadAsync waits for bytes: dataReceived calls again
        chunk = bytes(self._kernel[:READ_SIZE])
        del self._kernel[:READ_SIZE]
        # Encoding.UTF8.GetString(buffer, 0, bytesRead): each read decoded on its own.
        new_data = chunk.decode("utf-8", "replace")
        self.reads.append(new_data)
        self._received_data += new_data
        # while (IsValidMessageFormat(receivedData)) { ...; receivedData = ""; }: one packet
        # per read at most, and the whole buffer is wiped after it.
        if _is_valid_message_format(self._received_data):
            kind, body = _extract_whole_message(self._received_data)
            if body:
                self._packet_queue.append((kind, body))
                self._schedule_handler()
                self._on_data_received(new_data)
            self._received_data = ""  # wipe receivedData ~ ~ ~
        self._reader_sleeping = True
        self.clock.callLater(READ_PAUSE, self._read)  # Thread.Sleep(250)

    def _on_data_received(self, data: str) -> None:
        # PeerNetwork.cs, DefaultPingHandler: dataReceivedHandler, then postTestDataReceivedHandler.
        # The event carries the read's chunk (newData), not the packet.
        if "Ping from" not in data:
            return
        if self._post_test:
            self.load_outgoing(self._ping())  # answer: "peer is still waiting for pings"
            return
        self.successful_pings += 1
        if 3 <= self.successful_pings < 6:
            self.trusted = True  # TrustPeer(): "Peer passed trust test."
        elif self.successful_pings >= 5:
            self._post_test = True  # swap event handlers (from the 6th on)

    # -- Handling: PeerChannelBase.PacketHandler and PacketHandleProtocol -------------------------

    def _schedule_handler(self) -> None:
        if self._handler_call is None and self.handler_error is None:
            self._handler_call = self.clock.callLater(HANDLER_PAUSE, self._handle_packets)

    def _handle_packets(self) -> None:
        self._handler_call = None
        while self._packet_queue and self.handler_error is None:
            kind, body = self._packet_queue.popleft()
            try:
                self._handle(kind, body)
            except Exception as e:  # noqa: BLE001
                # PacketHandler has no try/catch: an exception faults the Task, whose loop ends.
                # Nothing is ever handled on this channel again.
                self.handler_error = e

    def _handle(self, kind: str, body: str) -> None:
        # PeerChannelBase.cs, Handle*Packet: the gates (AllowDefaultCommunication is true,
        # AllowEnhancedPacketExchange false in the example application).
        if kind == "Message":
            # PacketHandleProtocol.HandlePureMessagePacket: Deserialize<PureMessagePacket>
            obj = _deserialize(body)
            self.messages.append(obj.get("Message"))
        elif kind == "Disconnect":
            # DistributionProtocol.Deserialize<DisconnectPacket>: no serializer context for it.
            raise HandlerDied(
                "No serializer context found for type P2PNet.NetworkPackets.DisconnectPacket"
            )
        elif not self.trusted:
            return  # enhanced packet exchange: dropped until .NET trusts the peer
        elif kind == "PeerGroup":
            self.peer_groups.append(_deserialize(body))  # ProcessPeerList (no dial modelled)
        elif kind == "DataTransmit":
            # DistributionHandler.EnqueueIncomingDataPacket: Deserialize<DataTransmissionPacket>
            _deserialize(body)
            [packet] = _CODEC.decoder(1 << 30).feed(b"<DataTransmit>" + body.encode()
                                                   + b"</DataTransmit>")
            if not isinstance(packet, DataTransmissionPacket):
                raise HandlerDied(str(packet))
            self.data.append(packet)
        elif kind == "Identity":
            _deserialize(body)  # HandleIdentityPacket: AddPeer (no dial modelled)

    # -- Closing --------------------------------------------------------------------------------

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # ReadAsync returns 0 bytes forever after; the channel stays in ActivePeerChannels, the
        # IP in KnownPeers (PeerNetwork.cs: nothing prunes it).
        self.closed = True
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.cancel()
        if self._handler_call is not None and self._handler_call.active():
            self._handler_call.cancel()


def _deserialize(body: str) -> dict[str, Any]:
    # System.Text.Json: one JSON object, or a JsonException.
    value = json.loads(body)
    if not isinstance(value, dict):
        raise HandlerDied(f"not a JSON object: {body[:60]!r}")
    return value


def _is_valid_message_format(text: str) -> bool:
    # PeerChannelBase.IsValidMessageFormat: any opening and closing tag of one type, anywhere.
    return any(opening in text and closing in text for _, opening, closing in PACKET_TAGS)


def _extract_whole_message(text: str) -> tuple[str, str]:
    # PeerChannelBase.ExtractWholeMessage: the first type in PacketTagMap order whose two tags
    # both occur; its Data is the WHOLE buffer with every occurrence of those tags removed.
    for kind, opening, closing in PACKET_TAGS:
        if opening in text and closing in text:
            start = text.index(opening) + len(opening)
            if text.find(closing, start) < 0:
                return "BADPACKET", ""  # a closing tag only before the opening one
            return kind, text.replace(opening, "").replace(closing, "")
    return "BADPACKET", ""


class DotnetNode(Factory):
    """
    A .NET node: C{PeerNetwork}'s static state and the example application, and the factory
    of its inbound channels (PeerNetwork.cs, AcceptClientsAsync and handleInboundConnection).

    @param clock: the clock every timer runs on.
    @param ping_interval: DefaultPingHandler's sleep (3 s; other values model clock skew).
    @param local_ip: C{PeerNetwork.LocalIPV4Address}, quoted in its pings.
    @ivar known_ips: KnownPeers, by IP: added on every channel, never removed.
    @ivar channels: ActivePeerChannels, closed ones included (nothing removes them).
    @ivar refused: the connections refused because their IP was known.
    """

    def __init__(self, clock: IReactorTime, ping_interval: float = PING_INTERVAL,
                 local_ip: str = "127.0.0.1") -> None:
        self.clock = clock
        self.ping_interval = ping_interval
        self.local_ip = local_ip
        self.known_ips: set[str] = set()
        self.channels: list[DotnetChannel] = []
        self.refused = 0
        self.identifier = "dotnet_node"  # PeerNetwork.Identifier

    def message(self, text: str) -> PureMessagePacket:
        """new PureMessagePacket(text): NetworkPacket's defaults are the node's identifier and
        DateTime.UtcNow."""
        return PureMessagePacket(text, source_origin_identifier=self.identifier)

    def buildProtocol(self, addr: Any) -> DotnetChannel | None:
        # handleInboundConnection: "Duplicate connection attempt from existing peer. Ignoring."
        # A known IP is refused (client.Dispose()), whatever its port.
        if addr.host in self.known_ips:
            self.refused += 1
            return None
        return DotnetChannel(self)

    def dialer(self, host: str) -> ClientFactory | None:
        """
        The factory of an outbound channel to C{host} (PeerNetwork.AddPeer with no client), or
        None if KnownPeers already holds C{host}: AddPeer returns without dialling.
        """
        if host in self.known_ips:
            self.refused += 1
            return None
        node = self

        class _Dial(ClientFactory):
            def buildProtocol(self, addr: Any) -> DotnetChannel:
                return DotnetChannel(node)

        return _Dial()

    @property
    def trusted_channels(self) -> list[DotnetChannel]:
        """TrustedPeerChannels: the open channels whose peer .NET trusts."""
        return [c for c in self.channels if c.trusted and not c.closed]

    def send_message(self, text: str) -> None:
        """LoadOutgoingData(new PureMessagePacket(text)) on every open channel."""
        for channel in self.channels:
            if not channel.closed:
                channel.load_outgoing(self.message(text))

    def distribute_file(self, data: bytes) -> None:
        """
        DistributionHandler.DistributeFileAsync: the file's bytes, untagged, in one
        DataTransmit to every trusted channel (DistributeData).
        """
        frame = _untagged_file_frame(data, self.identifier)
        for channel in self.trusted_channels:
            channel.load_outgoing(frame)


def _untagged_file_frame(data: bytes, identifier: str) -> bytes:
    # DistributeFileAsync sets Data to the file's bytes: no <File> tags (the constructor that
    # adds them is not used); STJ writes a byte[] as plain base64.
    body = ('{"Data":"' + base64.b64encode(data).decode() + '","DataType":0,'
            '"SourceOriginIdentifier":"' + identifier + '",'
            '"SourceOriginTime":"2026-11-23T18:56:42.1234567Z"}')
    return b"<DataTransmit>" + body.encode() + b"</DataTransmit>"


__all__ = ["DotnetChannel", "DotnetNode", "HandlerDied"]
