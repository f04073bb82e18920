# -*- test-case-name: tests.test_datadir -*-
"""
L{NodeDataDir}: what a node keeps on disk so that a restart loses nothing.

The directory holds the node's Ed25519 key and the control API token (both mode 0600), the
known peers and the block list (JSON), and the URL the control API listens on.  Every file is
replaced atomically, and flushed to the disk before it replaces the old one, so that a full
disk is an error when the file is written, not a loss at the next start.  The files are small
and local, so they are read and written directly.

The known peers are a cache: a copy that cannot be read or is corrupt is moved aside
(C{known_peers.json.corrupt-<UTC time>}) with a warning, and the node starts without it.  The
key, the token and the block list matter: one that cannot be read or is corrupt is a
L{DataDirError} whose message names the file and says what to do.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pnet_tx.errors import P2PNetError
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.pins import NamePins, PinsCorrupt

KEY_FILE = "node.key"
TOKEN_FILE = "control.token"
PEERS_FILE = "known_peers.json"
BLOCKS_FILE = "blocked.json"
CONTROL_URL_FILE = "control.url"
PINS_FILE = "name_pins.json"

DEFAULT_DATA_DIR = "~/.p2pnet"
"""Where a node keeps its files unless told otherwise."""

_ADVICE = {
    KEY_FILE: "restore it from a backup, or move it away to start with a new identity",
    TOKEN_FILE: "remove it, and the node makes a new one when it starts",
    BLOCKS_FILE: "fix it, or move it away to start with no saved blocks",
    PINS_FILE: "fix it, or move it away to pin every name afresh on first use",
}

_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,1024}")
"""What a control token may be: the characters of an HTTP bearer token (RFC 6750)."""

_MAX_SET_ASIDE = 100

_MISSING = object()
"""What L{NodeDataDir._read_json} returns for a file that does not exist."""


class DataDirError(P2PNetError):
    """The data directory or one of its files cannot be used; the message says which and why."""


class NodeDataDir:
    """
    The data directory of one node.

    @param path: the directory; created (mode 0700) if missing.
    @param clock: the time in the name of a corrupt file moved aside; by default the global
        reactor.
    """

    log = Logger()

    def __init__(
        self, path: str | os.PathLike[str] = DEFAULT_DATA_DIR, clock: IReactorTime | None = None
    ) -> None:
        self.path = Path(os.path.expanduser(os.fspath(path)))
        self._clock = clock

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
                f.flush()
                os.fsync(f.fileno())  # a full disk shows here, not after the rename
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except OSError as e:
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass  # the first error is the one to report
            raise DataDirError(f"cannot write {target}: {e.strerror}") from None

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise DataDirError(self._unusable(name, f"cannot read it: {e.strerror}")) from None

    def _unusable(self, name: str, why: str) -> str:
        """Return the message for an unusable file: which, why, and what to do."""
        advice = _ADVICE.get(name)
        return f"{self.path / name}: {why}" + (f"; {advice}" if advice else "")

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
            raise DataDirError(self._unusable(KEY_FILE, f"not a usable key ({e})")) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise DataDirError(self._unusable(KEY_FILE, "not an Ed25519 key"))
        return key

    def control_token(self) -> str:
        """
        Return the control API token, creating it (mode 0600) on first use.

        @raise DataDirError: if the token file cannot be read or holds no valid token.
        """
        token = self._read(TOKEN_FILE)
        if token is None or not token.strip():
            new = secrets.token_urlsafe(32)
            self._write(TOKEN_FILE, new.encode() + b"\n")
            return new
        return self._valid_token(token)

    def read_control_token(self) -> str | None:
        """
        Return the control API token if there is one (for clients); never create it.

        @raise DataDirError: if the token file cannot be read or holds no valid token.
        """
        token = self._read(TOKEN_FILE)
        return self._valid_token(token) if token and token.strip() else None

    def _valid_token(self, raw: bytes) -> str:
        token = raw.decode("ascii", "replace").strip()
        if not _TOKEN.fullmatch(token):
            raise DataDirError(self._unusable(TOKEN_FILE, "not a valid control token"))
        return token

    def _read_json(self, name: str) -> Any:
        raw = self._read(name)
        if raw is None:
            return _MISSING
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise DataDirError(self._unusable(name, f"not valid JSON ({e})")) from None

    def known_peers(self) -> list[GenericPeer]:
        """
        Return the saved known peers.  They are a cache: a file that cannot be read, is not
        a JSON list, or holds entries that are not valid peers is moved aside (with a
        warning), and the valid entries, if any, are returned.
        """
        try:
            raw = (self.path / PEERS_FILE).read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            self._set_aside(PEERS_FILE, f"cannot read it: {e.strerror}",
                            "starting without known peers")
            return []
        try:
            entries = json.loads(raw)
        except (ValueError, RecursionError) as e:
            self._set_aside(PEERS_FILE, f"not valid JSON: {e}", "starting without known peers")
            return []
        if not isinstance(entries, list):
            self._set_aside(PEERS_FILE, f"not a JSON list but {type(entries).__name__}",
                            "starting without known peers")
            return []
        peers = []
        for entry in entries:
            try:
                peers.append(GenericPeer(entry["address"], entry["port"], entry.get("identifier")))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
        if len(peers) < len(entries):
            self._set_aside(PEERS_FILE,
                            f"{len(entries) - len(peers)} of {len(entries)} entries are not peers",
                            f"keeping the {len(peers)} valid ones")
        return peers

    def _set_aside(self, name: str, why: str, outcome: str) -> None:
        """Move a corrupt cache file out of the way, so that the next save starts afresh."""
        source = self.path / name
        clock = self._clock
        if clock is None:
            from twisted.internet import reactor as clock
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.seconds()))
        names = (f"{name}.corrupt-{stamp}" + (f"-{n}" if n else "") for n in range(_MAX_SET_ASIDE))
        target = next((self.path / n for n in names if not (self.path / n).exists()), None)
        try:
            if target is None:
                raise OSError(f"{_MAX_SET_ASIDE} copies are already there")
            os.replace(source, target)
        except OSError as e:
            self.log.warn("{path} is unusable ({why}) and cannot be moved aside ({error}); "
                          "{outcome}", path=str(source), why=why, outcome=outcome,
                          error=e.strerror or str(e))
            return
        self.log.warn("{path} was unusable ({why}): moved it to {moved}; {outcome}",
                      path=str(source), why=why, moved=target.name, outcome=outcome)

    def save_known_peers(self, peers: list[GenericPeer]) -> None:
        """Replace the saved known peers."""
        entries = [
            {"address": p.address, "port": p.port, "identifier": p.identifier} for p in peers
        ]
        self._write(PEERS_FILE, json.dumps(entries, indent=1).encode(), 0o644)

    def blocked(self) -> tuple[list[str], list[str]]:
        """
        Return the saved block list: C{(ips, identifiers)}.

        @raise DataDirError: if the file cannot be read or is not a block list.
        """
        saved = self._read_json(BLOCKS_FILE)
        if saved is _MISSING:
            return [], []
        if not isinstance(saved, dict):
            raise DataDirError(self._unusable(BLOCKS_FILE, "not a JSON object"))
        lists = []
        for key in ("ips", "identifiers"):
            values = saved.get(key, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise DataDirError(self._unusable(BLOCKS_FILE, f'"{key}" is not a list of strings'))
            lists.append(values)
        return lists[0], lists[1]

    def save_blocked(self, ips: list[str], identifiers: list[str]) -> None:
        """Replace the saved block list."""
        body = json.dumps({"ips": ips, "identifiers": identifiers}, indent=1).encode()
        self._write(BLOCKS_FILE, body, 0o644)

    def name_pins(self) -> NamePins:
        """
        Return the saved name pins (L{NamePins}); each change is saved at once.  A change that
        cannot be saved is logged as an error: the pin holds until the node stops.

        @raise DataDirError: if the file cannot be read or is not a pin list: pins are
            security state, never silently emptied.
        """
        raw = self._read(PINS_FILE)
        pins = NamePins()
        if raw is not None:
            try:
                pins = NamePins.from_json(raw)
            except PinsCorrupt as e:
                raise DataDirError(self._unusable(PINS_FILE, str(e))) from None
        pins.changed = lambda: self._save_pins(pins)
        return pins

    def _save_pins(self, pins: NamePins) -> None:
        try:
            self._write(PINS_FILE, pins.to_json(), 0o644)
        except DataDirError as e:
            self.log.error("name pin not saved: {error}", error=str(e))

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
