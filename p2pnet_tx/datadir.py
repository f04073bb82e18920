# -*- test-case-name: tests.test_datadir -*-
"""
L{NodeDataDir}: what a node keeps on disk so that a restart loses nothing.

The directory holds the node's Ed25519 key and the control API token (both mode 0600), the
known peers and the block list (JSON), and the URL the control API listens on.  Every file is
replaced atomically.  The files are small and local, so they are read and written directly.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from p2pnet_tx.errors import P2PNetError
from p2pnet_tx.peer import GenericPeer

KEY_FILE = "node.key"
TOKEN_FILE = "control.token"
PEERS_FILE = "known_peers.json"
BLOCKS_FILE = "blocked.json"
CONTROL_URL_FILE = "control.url"

DEFAULT_DATA_DIR = "~/.p2pnet"
"""Where a node keeps its files unless told otherwise."""


class DataDirError(P2PNetError):
    """The data directory or one of its files cannot be used; the message says which and why."""


class NodeDataDir:
    """
    The data directory of one node.

    @param path: the directory; created (mode 0700) if missing.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> None:
        self.path = Path(os.path.expanduser(os.fspath(path)))

    def ensure(self) -> NodeDataDir:
        """
        Create the directory if it does not exist.

        @raise DataDirError: if it cannot be created or is not a directory.
        """
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise DataDirError(f"cannot use data directory {self.path}: {e.strerror}") from None
        return self

    def _write(self, name: str, data: bytes, mode: int = 0o600) -> None:
        target = self.path / name
        temporary = target.with_name(f".{name}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except OSError as e:
            raise DataDirError(f"cannot write {target}: {e.strerror}") from None

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise DataDirError(f"cannot read {self.path / name}: {e.strerror}") from None

    def private_key(self) -> Ed25519PrivateKey:
        """Return the node's key, creating it (mode 0600) on first use."""
        pem = self._read(KEY_FILE)
        if pem is None:
            key = Ed25519PrivateKey.generate()
            self._write(
                KEY_FILE,
                key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
            )
            return key
        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise DataDirError(f"{self.path / KEY_FILE} is not a usable key: {e}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise DataDirError(f"{self.path / KEY_FILE} is not an Ed25519 key")
        return key

    def control_token(self) -> str:
        """Return the control API token, creating it (mode 0600) on first use."""
        token = self._read(TOKEN_FILE)
        if token is None or not token.strip():
            new = secrets.token_urlsafe(32)
            self._write(TOKEN_FILE, new.encode() + b"\n")
            return new
        return token.decode("ascii", "replace").strip()

    def read_control_token(self) -> str | None:
        """Return the control API token if there is one (for clients); never create it."""
        token = self._read(TOKEN_FILE)
        return token.decode("ascii", "replace").strip() if token else None

    def _read_json(self, name: str) -> Any:
        raw = self._read(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise DataDirError(f"{self.path / name} is not valid JSON: {e}") from None

    def known_peers(self) -> list[GenericPeer]:
        """Return the saved known peers; entries that no longer validate are skipped."""
        peers = []
        for entry in self._read_json(PEERS_FILE) or []:
            try:
                peers.append(GenericPeer(entry["address"], entry["port"], entry.get("identifier")))
            except (KeyError, TypeError, ValueError):
                continue
        return peers

    def save_known_peers(self, peers: list[GenericPeer]) -> None:
        """Replace the saved known peers."""
        entries = [
            {"address": p.address, "port": p.port, "identifier": p.identifier} for p in peers
        ]
        self._write(PEERS_FILE, json.dumps(entries, indent=1).encode(), 0o644)

    def blocked(self) -> tuple[list[str], list[str]]:
        """Return the saved block list: C{(ips, identifiers)}."""
        saved = self._read_json(BLOCKS_FILE) or {}
        if not isinstance(saved, dict):
            raise DataDirError(f"{self.path / BLOCKS_FILE} is not a JSON object")
        ips = [ip for ip in saved.get("ips", []) if isinstance(ip, str)]
        identifiers = [i for i in saved.get("identifiers", []) if isinstance(i, str)]
        return ips, identifiers

    def save_blocked(self, ips: list[str], identifiers: list[str]) -> None:
        """Replace the saved block list."""
        body = json.dumps({"ips": ips, "identifiers": identifiers}, indent=1).encode()
        self._write(BLOCKS_FILE, body, 0o644)

    def control_url(self) -> str | None:
        """Return the URL of the running node's control API, if one is written."""
        raw = self._read(CONTROL_URL_FILE)
        return raw.decode("ascii", "replace").strip() if raw else None

    def save_control_url(self, url: str | None) -> None:
        """Write (or, with None, remove) the URL of the control API."""
        if url is None:
            try:
                (self.path / CONTROL_URL_FILE).unlink()
            except FileNotFoundError:
                pass
            return
        self._write(CONTROL_URL_FILE, url.encode() + b"\n", 0o644)
