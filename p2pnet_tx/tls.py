# -*- test-case-name: tests.test_tls -*-
"""
TLS 1.3 for the p2pnet wire, mutual and bound to the node key, as libp2p's TLS handshake is.

Each node presents a self-signed X.509 certificate whose public key is its own Ed25519 node key,
and asks its peer for one.  The certificate chain is not checked (there is no authority): what
matters is the key, which the TLS handshake proves the peer holds (its CertificateVerify is
signed with it), on this very connection.  After the handshake, code checks that key
(L{peer_public_key}): it must be Ed25519, and the peer's identifier must derive from it
(L{p2pnet_tx.identity.identifier_for_public_key}).  L{proven_key} gives both at once; a
channel keeps what it returns (L{PeerChannel.proven_key
<p2pnet_tx.channel.PeerChannel.proven_key>}), so the certificate is parsed and the identifier
derived once per connection, whoever asks.  A relayed or replayed handshake cannot
pass: the proof is the handshake of the connection it arrived on.

L{NodeTLS} holds what a network needs, built once: the certificate, a server and a client
context (pyOpenSSL, through Twisted's L{TLSMemoryBIOFactory}), the server factory wrapper
(L{NodeTLS.server_factory}) and the client endpoint wrapper (L{NodeTLS.client_endpoint}).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from p2pnet_tx.errors import InvalidPeerCertificate
from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes

__all__ = [
    "NodeTLS",
    "ProvenKey",
    "TLSServerFactory",
    "certificate_for_key",
    "is_tls",
    "peer_public_key",
    "proven_key",
]

# A certificate here carries a key, not a validity claim: nobody checks its dates.  These are
# fixed so that a certificate depends on the key alone ("no well-defined expiration date",
# RFC 5280 section 4.1.2.5).
_NOT_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def certificate_for_key(private_key: Ed25519PrivateKey) -> x509.Certificate:
    """
    Make the self-signed certificate a node presents: its public key is the node key, its
    subject and issuer the node's identifier.  Build it once per node: it costs a signature.
    """
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, identifier_for_public_key(private_key)),
    ])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .sign(private_key, None)
    )


def _accept_any_chain(
    connection: SSL.Connection, certificate: Any, error: int, depth: int, ok: int
) -> bool:
    # Self-signed by design: the chain proves nothing here.  The key is checked in code once
    # the handshake is over (peer_public_key), where the identifier it must derive is known.
    return True


def is_tls(transport: object) -> bool:
    """Whether C{transport} is a TLS connection that can show its peer's certificate."""
    return callable(getattr(transport, "getPeerCertificate", None))


def peer_public_key(transport: object) -> bytes:
    """
    The raw Ed25519 public key the peer of a TLS connection proved it holds.

    @param transport: a TLS transport whose handshake is complete.
    @return: the 32 raw key bytes.
    @raise InvalidPeerCertificate: if the transport is not TLS, the handshake is not over, the
        peer presented no certificate, or the certificate's key is not Ed25519.
    """
    if not is_tls(transport):
        raise InvalidPeerCertificate("the connection is not TLS")
    certificate = transport.getPeerCertificate()  # type: ignore[attr-defined]
    if certificate is None:
        raise InvalidPeerCertificate("the peer presented no certificate")
    if not isinstance(certificate, x509.Certificate):
        certificate = certificate.to_cryptography()
    key = certificate.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidPeerCertificate(
            f"the peer's certificate holds a {type(key).__name__}, not an Ed25519 key"
        )
    return public_key_bytes(key)


@attrs.frozen
class ProvenKey:
    """
    The Ed25519 key the peer of a TLS connection proved it holds, and the identifier it derives.

    @ivar public_key: the 32 raw key bytes.
    @ivar identifier: the identifier derived from it (L{identifier_for_public_key}).
    """

    public_key: bytes
    identifier: str


def proven_key(transport: object) -> ProvenKey:
    """
    The key the peer of a TLS connection proved it holds (L{peer_public_key}) and the
    identifier it derives.  It parses the certificate and hashes the key: ask the channel
    instead (L{PeerChannel.proven_key<p2pnet_tx.channel.PeerChannel.proven_key>}), which
    keeps the answer for its connection.

    @param transport: a TLS transport whose handshake is complete.
    @raise InvalidPeerCertificate: as L{peer_public_key}.
    """
    key = peer_public_key(transport)
    return ProvenKey(key, identifier_for_public_key(key))


class TLSServerFactory(TLSMemoryBIOFactory):
    """
    A L{TLSMemoryBIOFactory} that keeps its wrapped factory's refusals: when the wrapped
    factory's C{buildProtocol} returns C{None} (admission control), so does this one, before
    any TLS work and before a byte is read.  (Twisted's L{WrappingFactory
    <twisted.protocols.policies.WrappingFactory>} would wrap the C{None}.)
    """

    def buildProtocol(self, addr: IAddress) -> TLSMemoryBIOProtocol | None:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped)


@implementer(IStreamClientEndpoint)
class _TLSClientEndpoint:
    """An endpoint whose connections run TLS as the client; C{connect} fires with the
    wrapped protocol, as L{twisted.internet.endpoints.wrapClientTLS} does, but on the
    network's clock."""

    def __init__(self, tls: NodeTLS, endpoint: IStreamClientEndpoint) -> None:
        self._tls = tls
        self._endpoint = endpoint

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        wrapper = TLSMemoryBIOFactory(self._tls, True, factory, self._tls.clock)
        return self._endpoint.connect(wrapper).addCallback(lambda tls: tls.wrappedProtocol)


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLClientConnectionCreator)
class NodeTLS:
    """
    A node's TLS: its certificate and contexts, made once, and the wrappers that put its
    connections under TLS 1.3.

    @param private_key: the node key; the certificate carries its public half.
    @param clock: where Twisted's TLS transport schedules its write batching.

    @ivar certificate: the node's certificate (L{certificate_for_key}).
    @ivar public_key: the node's raw public key.
    """

    def __init__(self, private_key: Ed25519PrivateKey, clock: IReactorTime) -> None:
        self.clock = clock
        self.public_key = public_key_bytes(private_key)
        self.certificate = certificate_for_key(private_key)
        self._server_context = self._context(private_key)
        self._client_context = self._context(private_key)

    def _context(self, private_key: Ed25519PrivateKey) -> SSL.Context:
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.use_certificate(self.certificate)
        context.use_privatekey(private_key)
        context.check_privatekey()
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any_chain)
        # No resumption: every connection proves its key with a full handshake.
        context.set_options(SSL.OP_NO_TICKET)
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        # OpenSSL frees a connection's read and write buffers (about 34 KiB each way) while it
        # is idle, as Twisted's CertificateOptions has it: most peer channels are idle most of
        # the time (docs/performance.md, "TLS").
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        return context

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """A server-side OpenSSL connection (L{IOpenSSLServerConnectionCreator})."""
        return SSL.Connection(self._server_context, None)

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """A client-side OpenSSL connection (L{IOpenSSLClientConnectionCreator})."""
        return SSL.Connection(self._client_context, None)

    def server_factory(self, factory: IProtocolFactory) -> TLSServerFactory:
        """Wrap a server factory: its connections run TLS as the server."""
        return TLSServerFactory(self, False, factory, self.clock)

    def client_endpoint(self, endpoint: IStreamClientEndpoint) -> IStreamClientEndpoint:
        """Wrap a client endpoint: its connections run TLS as the client."""
        return _TLSClientEndpoint(self, endpoint)
