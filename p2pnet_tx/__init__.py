"""
p2pnet_tx: a peer-to-peer networking toolkit for Twisted, a port of P2PNet.
"""

from p2pnet_tx._version import __version__
from p2pnet_tx.errors import (
    FrameTooLarge,
    FramingError,
    InvalidPeer,
    MalformedPacket,
    P2PNetError,
    TooMuchGarbage,
    UnknownPacketType,
)
from p2pnet_tx.interfaces import ICodec, IFrameDecoder, IPeer
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    DisconnectPacket,
    IdentifierPacket,
    NetworkTask,
    PacketType,
    PureMessagePacket,
    TaskType,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.wire import get_codec

__all__ = [
    "__version__",
    "CollectionSharePacket",
    "DataPayloadFormat",
    "DataTransmissionPacket",
    "DisconnectPacket",
    "FrameTooLarge",
    "FramingError",
    "GenericPeer",
    "ICodec",
    "IFrameDecoder",
    "IPeer",
    "IdentifierPacket",
    "InvalidPeer",
    "MalformedPacket",
    "NetworkTask",
    "P2PNetError",
    "PacketType",
    "PureMessagePacket",
    "TaskType",
    "TooMuchGarbage",
    "UnknownPacketType",
    "get_codec",
]
