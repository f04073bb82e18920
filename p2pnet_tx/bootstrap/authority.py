# -*- test-case-name: tests.test_bootstrap_authority -*-
"""
The bootstrap server's secrets, in its data directory, and the signing of its tasks.

The data directory (C{~/.p2pnet-bootstrap} by default) holds the authority key
(C{authority.key}, PEM, mode 0600), the admin token that logs an operator in to the dashboard
(C{admin.token}, mode 0600) and the database.  Both secrets are made on first use and written
as the node's data directory writes its own (L{p2pnet_tx.datadir}: atomically, flushed).

An L{Authority} signs tasks with the key as the lead's C{/v1} spec says
(L{p2pnet_tx.tasks.sign_task}); in trustless mode it signs nothing.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from p2pnet_tx.datadir import DataDirError, NodeDataDir
from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.tasks import AuthorityTask, new_task, sign_task

__all__ = [
    "ADMIN_TOKEN_FILE",
    "AUTHORITY_KEY_FILE",
    "DEFAULT_DATA_DIR",
    "TASK_TTL",
    "Authority",
    "BootstrapDataDir",
]

DEFAULT_DATA_DIR = "~/.p2pnet-bootstrap"
"""Where a bootstrap server keeps its files unless told otherwise."""

AUTHORITY_KEY_FILE = "authority.key"
ADMIN_TOKEN_FILE = "admin.token"

TASK_TTL = 3600.0
"""Seconds a task the server queues stays valid (and queued, if not delivered)."""


class BootstrapDataDir(NodeDataDir):
    """
    The data directory of a bootstrap server: a node's data directory (the same safe writes)
    with the server's own two files.

    @param path: the directory; created (mode 0700) by C{ensure()}.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> None:
        super().__init__(path)

    def authority_key(self) -> Ed25519PrivateKey:
        """
        Return the authority key, creating it (mode 0600) on first use.

        @raise DataDirError: if the file cannot be read or holds no Ed25519 key.
        """
        pem = self._read(AUTHORITY_KEY_FILE)
        if pem is None:
            key = Ed25519PrivateKey.generate()
            self._write(AUTHORITY_KEY_FILE,
                        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            return key
        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise DataDirError(f"{self.path / AUTHORITY_KEY_FILE}: not a usable key ({e}); "
                               "restore it from a backup: nodes trust this key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise DataDirError(f"{self.path / AUTHORITY_KEY_FILE}: not an Ed25519 key")
        return key

    def admin_token(self) -> str:
        """
        Return the admin token, creating it (mode 0600) on first use.

        @raise DataDirError: if the file cannot be read or holds no valid token.
        """
        raw = self._read(ADMIN_TOKEN_FILE)
        if raw is None or not raw.strip():
            token = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")
            self._write(ADMIN_TOKEN_FILE, token.encode("ascii") + b"\n")
            return token
        token = raw.decode("ascii", "replace").strip()
        if not token.isascii() or not token.isprintable() or " " in token or len(token) > 1024:
            raise DataDirError(f"{self.path / ADMIN_TOKEN_FILE}: not a valid token; remove "
                               "it, and the server makes a new one when it starts")
        return token


class Authority:
    """
    The server's mode and, in authority mode, its key and the tasks it signs.

    @param mode: C{"trustless"} or C{"authority"}.
    @param key: the authority key (required in authority mode, ignored otherwise).
    @ivar public_key: the 32 raw bytes of the public key in authority mode, else C{None}.
    @ivar identifier: the identifier of the key in authority mode, else C{""}.
    @raise ValueError: for an unknown mode, or authority mode without a key.
    """

    def __init__(self, mode: str, key: Ed25519PrivateKey | None = None) -> None:
        if mode not in ("trustless", "authority"):
            raise ValueError(f"mode must be trustless or authority, not {mode!r}")
        if mode == "authority" and key is None:
            raise ValueError("authority mode needs the authority key")
        self.mode = mode
        self._key = key if mode == "authority" else None
        self.public_key = None if self._key is None else public_key_bytes(self._key)
        self.identifier = "" if self._key is None else identifier_for_public_key(self._key)

    @property
    def signs(self) -> bool:
        """Whether this server queues signed tasks (authority mode)."""
        return self._key is not None

    @property
    def public_key_text(self) -> str | None:
        """The base64 of the public key, or C{None} in trustless mode."""
        return None if self.public_key is None else base64.b64encode(self.public_key).decode()

    def task(self, task_type: int, data: dict[str, str], *, now: float,
             target: str = "*") -> tuple[AuthorityTask, dict[str, Any]]:
        """
        Make and sign a task valid for L{TASK_TTL} seconds from C{now}.

        @return: the task and its signed JSON (C{{"task": ..., "signature": ...}}).
        @raise RuntimeError: in trustless mode.
        """
        if self._key is None:
            raise RuntimeError("a trustless server signs no tasks")
        task = new_task(task_type, data, now=now, ttl=TASK_TTL, target=target)
        return task, sign_task(task, self._key)

    def sign_bytes(self, data: bytes) -> str:
        """
        The base64 of the Ed25519 signature of C{data} (for the .NET API's C{Signature}
        fields, which .NET cannot check: it expects PGP).

        @raise RuntimeError: in trustless mode.
        """
        if self._key is None:
            raise RuntimeError("a trustless server signs nothing")
        return base64.b64encode(self._key.sign(data)).decode("ascii")
