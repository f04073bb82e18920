# -*- test-case-name: tests.test_files_store -*-
"""
L{FileStore}: where received files go, and what survives a restart.

Layout under the node's data directory::

    files/                    finished files, each under a safe name (names.py)
    files/.partial/K.part     a file being received, written in place, chunk by chunk
    files/.partial/K.json     its state: the sender, the transfer id, the manifest and the
                              chunks verified (only chunks whose bytes were fsynced first)
    files/.outgoing/ID.json   a file being sent: where it is, to whom, its manifest

C{K} is a hash of the sender and the transfer id, never a name a peer chose.  A finished
file is moved into C{files/} only once the SHA-256 of the whole file matches the manifest,
with a link that never replaces an existing file (a name taken gets C{" (1)"}...).

The store refuses an offer that would take C{files/} (finished plus reserved partial files)
past its quota, or leave less than C{min_free} bytes free on the disk.  All of it is plain
blocking file I/O of at most one chunk per call, on the reactor thread: a chunk is 256 KiB.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
from twisted.logger import Logger

from p2pnet_tx.files.manifest import Manifest, ManifestError
from p2pnet_tx.files.names import safe_name

__all__ = ["FileStore", "OutgoingRecord", "Partial"]

_log = Logger(namespace="p2pnet_tx.files.store")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write C{data} to C{path} through a temporary file, fsynced, then renamed over it."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _fsync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Partial:
    """
    A file being received: its data file, the chunks verified so far, and the running
    SHA-256 of the chunks verified in order from the first.

    @ivar peer: the sender's identifier.
    @ivar transfer_id: the sender's transfer id.
    @ivar manifest: what the sender offered.
    @ivar verified: one flag per chunk.
    """

    def __init__(self, store: FileStore, peer: str, transfer_id: str, manifest: Manifest,
                 verified: bytearray | None = None) -> None:
        self.store = store
        self.peer = peer
        self.transfer_id = transfer_id
        self.manifest = manifest
        self.verified = verified if verified is not None else bytearray(manifest.count)
        self.verified_count = sum(1 for flag in self.verified if flag)
        key = hashlib.sha256(f"{peer}\n{transfer_id}".encode()).hexdigest()[:32]
        self.data_path = store.partial_dir / f"{key}.part"
        self.state_path = store.partial_dir / f"{key}.json"
        self._fd: int | None = None
        self._whole = hashlib.sha256()
        self._hashed = 0  # chunks 0.._hashed-1 are in _whole
        self._unsynced = 0

    @property
    def verified_bytes(self) -> int:
        """The bytes of the chunks verified so far."""
        manifest = self.manifest
        full = self.verified_count
        if full and self.verified[-1]:
            return (full - 1) * manifest.chunk_size + manifest.chunk_length(manifest.count - 1)
        return full * manifest.chunk_size

    @property
    def complete(self) -> bool:
        """Whether every chunk is verified."""
        return self.verified_count == self.manifest.count

    def missing(self) -> list[list[int]]:
        """The chunks still needed, as C{[start, end)} ranges."""
        ranges: list[list[int]] = []
        for index, done in enumerate(self.verified):
            if done:
                continue
            if ranges and ranges[-1][1] == index:
                ranges[-1][1] = index + 1
            else:
                ranges.append([index, index + 1])
        return ranges

    def open(self) -> None:
        """Open (creating, at its full size) the data file, and save the state."""
        if self._fd is not None:
            return
        self._fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size != self.manifest.size:
            os.ftruncate(self._fd, self.manifest.size)
        self.checkpoint(force=True)

    def write_chunk(self, index: int, data: bytes | memoryview) -> None:
        """
        Write chunk C{index}, already verified against the manifest, and mark it verified
        (on disk at the next L{checkpoint}).
        """
        assert self._fd is not None
        offset = index * self.manifest.chunk_size
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written
        if not self.verified[index]:
            self.verified[index] = 1
            self.verified_count += 1
        self._unsynced += 1
        if index == self._hashed:
            self._whole.update(data)
            self._hashed += 1

    def checkpoint(self, force: bool = False) -> None:
        """
        Make the chunks written so far durable: fsync the data, then save the state that
        lists them as verified.  Without C{force}, only when chunks were written since.
        """
        if not force and not self._unsynced:
            return
        if self._fd is not None:
            os.fsync(self._fd)
        self._unsynced = 0
        state = {
            "peer": self.peer,
            "id": self.transfer_id,
            "manifest": self.manifest.to_json(),
            "verified": base64.b64encode(bytes(self.verified)).decode("ascii"),
        }
        _write_atomically(self.state_path, json.dumps(state).encode("utf-8"))

    def hash_rest(self) -> Iterator[None]:
        """
        Hash what the running hash has not seen, from the disk, one chunk a step (run it
        under a Cooperator); then L{sha256} is the whole file's.
        """
        manifest = self.manifest
        assert self._fd is not None
        while self._hashed < manifest.count:
            index = self._hashed
            data = os.pread(self._fd, manifest.chunk_length(index), index * manifest.chunk_size)
            self._whole.update(data)
            self._hashed += 1
            yield None

    def sha256(self) -> str:
        """The SHA-256 of the whole file, once L{hash_rest} is done."""
        return self._whole.hexdigest()

    def finish(self) -> Path:
        """
        Move the verified file into the files directory under a safe name that no file has;
        forget the state.

        @return: the finished file's path.
        """
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        path = self.store.place(self.data_path, self.manifest.name)
        self.state_path.unlink(missing_ok=True)
        return path

    def close(self) -> None:
        """Close the data file, keeping it and its state for a resume."""
        if self._fd is not None:
            try:
                self.checkpoint()
            except OSError as e:
                _log.warn("cannot save the state of {path}: {why}", path=str(self.state_path),
                          why=str(e))
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Close and delete the data file and its state."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.data_path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


@attrs.frozen
class OutgoingRecord:
    """A file being sent, as saved for a restart of the sender."""

    transfer_id: str
    peer: str
    path: str
    manifest: Manifest


class FileStore:
    """
    The files directory of a node.

    @param root: the files directory (C{<data-dir>/files}); created when first needed.
    @param quota: the most bytes the files directory may hold, finished and partial files
        together; None: no quota.
    @param min_free: the bytes that must stay free on the disk after a file is accepted.
    """

    def __init__(self, root: str | Path, quota: int | None = None,
                 min_free: int = 256 * 1024 * 1024) -> None:
        self.root = Path(root)
        self.partial_dir = self.root / ".partial"
        self.outgoing_dir = self.root / ".outgoing"
        self.quota = quota
        self.min_free = min_free

    def ensure(self) -> FileStore:
        """Create the directories (mode 0700 for the hidden ones)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.partial_dir.mkdir(mode=0o700, exist_ok=True)
        self.outgoing_dir.mkdir(mode=0o700, exist_ok=True)
        return self

    # -- Room -------------------------------------------------------------------------------

    def used_bytes(self) -> int:
        """The bytes of the files directory: finished files plus partial files' full sizes."""
        total = 0
        for directory in (self.root, self.partial_dir):
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
        return total

    def refusal(self, size: int) -> str | None:
        """Why a file of C{size} bytes cannot be taken now, or None if it can."""
        if self.quota is not None:
            used = self.used_bytes()
            if used + size > self.quota:
                return (f"over quota: {size} bytes offered, {max(self.quota - used, 0)} of "
                        f"{self.quota} left")
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            free = 0
        if free - size < self.min_free:
            return (f"not enough free disk: {size} bytes offered, {free} free, "
                    f"{self.min_free} kept free")
        return None

    # -- Partial files ----------------------------------------------------------------------

    def partial(self, peer: str, transfer_id: str, manifest: Manifest) -> Partial:
        """A new (or the saved) partial file of this sender's transfer."""
        return Partial(self, peer, transfer_id, manifest)

    def load_partials(self) -> list[Partial]:
        """
        The partial files saved by an earlier run; a state that cannot be read is set aside
        (renamed C{.bad}) with a warning.
        """
        found = []
        for path in sorted(self.partial_dir.glob("*.json")):
            try:
                state = json.loads(path.read_bytes())
                manifest = Manifest.from_json(state["manifest"])
                verified = bytearray(base64.b64decode(state["verified"], validate=True))
                if len(verified) != manifest.count or not isinstance(state["peer"], str):
                    raise ValueError("the chunk flags do not match the manifest")
                partial = Partial(self, state["peer"], str(state["id"]), manifest, verified)
                if partial.state_path != path or not partial.data_path.exists():
                    raise ValueError("its data file is missing")
            except (OSError, ValueError, KeyError, TypeError, ManifestError) as e:
                _log.warn("setting aside the unreadable transfer state {path}: {why}",
                          path=str(path), why=str(e))
                path.replace(path.with_suffix(".bad"))
                continue
            found.append(partial)
        return found

    def place(self, source: Path, name: str) -> Path:
        """
        Move C{source} into the files directory as C{safe_name(name)}, or C{"stem (N).ext"}
        when that name is taken; never replaces a file.
        """
        base = safe_name(name)
        stem, dot, extension = base.rpartition(".")
        if not dot or not stem:
            stem, dot, extension = base, "", ""
        for attempt in range(10000):
            candidate = base if not attempt else f"{stem} ({attempt}){dot}{extension}"
            target = self.root / candidate
            try:
                os.link(source, target)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP):
                    raise
                # No hard links here: the exclusive create keeps the no-clobber rule.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.close(fd)
                os.replace(source, target)
                _fsync_directory(self.root)
                return target
            source.unlink()
            _fsync_directory(self.root)
            return target
        raise FileExistsError(f"no free name for {base} in {self.root}")

    # -- Outgoing records -------------------------------------------------------------------

    def save_outgoing(self, record: OutgoingRecord) -> None:
        """Remember a file being sent, for a restart."""
        data = {"id": record.transfer_id, "peer": record.peer, "path": record.path,
                "manifest": record.manifest.to_json()}
        _write_atomically(self.outgoing_dir / f"{record.transfer_id}.json",
                          json.dumps(data).encode("utf-8"))

    def forget_outgoing(self, transfer_id: str) -> None:
        """Forget a file that is no longer being sent."""
        (self.outgoing_dir / f"{transfer_id}.json").unlink(missing_ok=True)

    def load_outgoing(self) -> list[OutgoingRecord]:
        """The files an earlier run was sending."""
        records = []
        for path in sorted(self.outgoing_dir.glob("*.json")):
            try:
                data: dict[str, Any] = json.loads(path.read_bytes())
                record = OutgoingRecord(str(data["id"]), str(data["peer"]), str(data["path"]),
                                        Manifest.from_json(data["manifest"]))
            except (OSError, ValueError, KeyError, TypeError, ManifestError) as e:
                _log.warn("forgetting the unreadable outgoing transfer {path}: {why}",
                          path=str(path), why=str(e))
                path.unlink(missing_ok=True)
                continue
            records.append(record)
        return records
