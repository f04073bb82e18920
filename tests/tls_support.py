"""
Helpers for the TLS tests: TLS clients that are not networks (impostors, relays, peers
without a usable certificate), joined in memory to a network's factory.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IProtocol
from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.test.iosim import FakeTransport, IOPump, connect
from zope.interface import implementer

from p2pnet_tx.tls import NodeTLS

SERVER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 8051)


@implementer(IOpenSSLClientConnectionCreator)
class ClientContext:
    """A TLS 1.3 client context with the certificate and key given, or none at all."""

    def __init__(self, certificate: x509.Certificate | None = None, key: Any = None) -> None:
        self.context = SSL.Context(SSL.TLS_METHOD)
        self.context.set_min_proto_version(SSL.TLS1_3_VERSION)
        if certificate is not None:
            self.context.use_certificate(certificate)
            self.context.use_privatekey(key)
        self.context.set_verify(SSL.VERIFY_PEER, lambda *args: True)

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return SSL.Connection(self.context, None)


def ecdsa_context() -> ClientContext:
    """A client whose self-signed certificate holds a P-256 key, not an Ed25519 one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not ed25519")])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(9999, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return ClientContext(certificate, key)


def node_context(key: Ed25519PrivateKey | None, clock: Any) -> NodeTLS:
    """The TLS of a node with C{key} (a fresh one if None)."""
    return NodeTLS(Ed25519PrivateKey.generate() if key is None else key, clock)


def tls_client(protocol: IProtocol, creator: Any, clock: Any) -> TLSMemoryBIOProtocol:
    """Wrap C{protocol} as the client side of a TLS connection made with C{creator}."""
    factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(lambda: protocol), clock)
    return factory.buildProtocol(SERVER_ADDRESS)


def join(server: IProtocol, client: IProtocol, clock: Any, client_host: str = "127.0.0.2",
         client_port: int = 40000) -> IOPump:
    """Connect two protocols in memory (server at 127.0.0.1:8051), and move the bytes."""
    client_address = IPv4Address("TCP", client_host, client_port)
    pump = connect(server, FakeTransport(server, True, SERVER_ADDRESS, client_address),
                   client, FakeTransport(client, False, client_address, SERVER_ADDRESS),
                   clock=clock)
    pump.flush()
    return pump
