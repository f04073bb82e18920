# -*- test-case-name: tests.test_bootstrap_client -*-
"""
Building a node's C{bootstrap} part from its options (C{twistd p2pnet --bootstrap URL ...}).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hyperlink import URL
from twisted.internet.defer import Deferred

from p2pnet_tx.bootstrap.client import (
    API_CHOICES,
    DOTNET_MAX_FAILURES,
    MODE_CHOICES,
    BootstrapClient,
    BootstrapService,
)
from p2pnet_tx.bootstrap.dotnet_client import DotNetApi
from p2pnet_tx.bootstrap.http import V1Api
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.task_runner import TaskRunner
from p2pnet_tx.tasks import decode_public_key

__all__ = ["bootstrap_part", "check_url", "read_authority_key"]


def check_url(value: str) -> str:
    """
    Return a bootstrap server's base URL, without a trailing slash.

    @raise ValueError: unless it is an absolute C{http} or C{https} URL with a host.
    """
    try:
        url = URL.from_text(value)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an http:// or https:// URL, e.g. "
                         "http://bootstrap.example:5070")
    return value.rstrip("/")


def read_authority_key(value: str) -> Ed25519PublicKey:
    """
    Read the authority's public key: the base64 of its 32 raw bytes, or the path of a file
    holding that text (as the server writes it; C{GET /v1/authority} also gives it).

    @raise ValueError: saying what is wrong.
    """
    text = value.strip()
    path = Path(value).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the key file {path}: {e}") from None
    try:
        return decode_public_key(text)
    except (ValueError, binascii.Error):
        pass
    if not path.is_file() and ("/" in value or value.startswith(("~", "."))):
        raise ValueError(f"{value!r}: no such file, nor the base64 of a key")
    raise ValueError(
        f"{value[:60]!r} is not the base64 of a 32-byte Ed25519 public key, nor a file "
        "holding one")

def bootstrap_part(
    network: PeerNetwork,
    urls: Sequence[str],
    *,
    reactor: Any,
    mode: str = "trustless",
    authority_key: Ed25519PublicKey | None = None,
    api: str = "v1",
    http: Any = None,
    port: Callable[[], Deferred[int]] | None = None,
) -> BootstrapService:
    """
    Build the C{bootstrap} part of a node: a client per URL, and in authority mode the task
    runner that checks every task against C{authority_key}.

    @param http: a treq-style HTTP client (default: C{treq} on the global reactor's agent).
    @param port: returns a Deferred firing with the node's listening port.
    @raise ValueError: for an unknown mode or API, or authority mode without a key.
    """
    if mode not in MODE_CHOICES:
        raise ValueError(f"the bootstrap mode is one of {', '.join(MODE_CHOICES)}, not {mode!r}")
    if api not in API_CHOICES:
        raise ValueError(f"the bootstrap API is one of {', '.join(API_CHOICES)}, not {api!r}")
    if mode == "authority" and authority_key is None:
        raise ValueError("authority mode needs the authority's public key (--authority-key)")
    if http is None:
        import treq

        http = treq
    runner = TaskRunner(network, authority_key, reactor) if mode == "authority" else None
    clients = []
    for url in urls:
        server: V1Api | DotNetApi
        if api == "dotnet":
            server = DotNetApi(http, url, network.identifier, reactor)
        else:
            server = V1Api(http, url, network.private_key, reactor, network.display_name)
        clients.append(BootstrapClient(
            network, server, reactor, url=url, port=port, runner=runner,
            max_failures=DOTNET_MAX_FAILURES if api == "dotnet" else None,
        ))
    return BootstrapService(clients, runner)
