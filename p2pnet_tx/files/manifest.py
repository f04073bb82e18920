# -*- test-case-name: tests.test_files_manifest -*-
"""
L{Manifest}: what a file offer says about the file, and how it is checked.

A manifest names the file (a name the receiver neutralises, see L{p2pnet_tx.files.names}),
its size, the SHA-256 of the whole file, the chunk size, and the SHA-256 of every chunk, so
each chunk verifies on arrival and a resumed transfer trusts only chunks already verified.
On the wire it is a JSON object::

    {"name": "report.pdf", "size": 1048576, "sha256": "<64 hex>",
     "chunk_size": 262144, "chunks": "<base64 of the 32-byte chunk digests, in order>"}

L{Manifest.from_json} checks every field strictly: a peer's manifest that does not parse is
refused with the reason, never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any

import attrs

from p2pnet_tx.errors import P2PNetError
from p2pnet_tx.files.names import UnsafeName, check_name

__all__ = [
    "CHUNK_SIZE",
    "MAX_CHUNKS",
    "MAX_CHUNK_SIZE",
    "MAX_FILE_SIZE",
    "Manifest",
    "ManifestError",
    "ManifestHasher",
    "chunk_size_for",
    "manifest_of",
]

CHUNK_SIZE = 256 * 1024
"""The chunk size a sender uses for files up to L{MAX_CHUNKS} chunks of it (4 GiB)."""

MIN_CHUNK_SIZE = 1024
"""The smallest chunk size a manifest may declare."""

MAX_CHUNK_SIZE = 512 * 1024
"""The largest chunk size a manifest may declare (a chunk frame must fit a trusted frame)."""

MAX_CHUNKS = 16384
"""The most chunks a manifest may list: its JSON then fits in well under 1 MiB."""

MAX_FILE_SIZE = MAX_CHUNKS * MAX_CHUNK_SIZE
"""The largest file that can be offered (8 GiB)."""

DIGEST_SIZE = 32

_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII).fullmatch
_READ_SIZE = 1024 * 1024


class ManifestError(P2PNetError, ValueError):
    """A manifest that does not parse or does not hold together; the message says why."""


def chunk_size_for(size: int) -> int:
    """
    The chunk size a sender uses for a file of C{size} bytes: L{CHUNK_SIZE}, doubled while
    the file would need more than L{MAX_CHUNKS} chunks.

    @raise ManifestError: if the file is larger than L{MAX_FILE_SIZE}.
    """
    if size > MAX_FILE_SIZE:
        raise ManifestError(f"the file has {size} bytes; at most {MAX_FILE_SIZE} can be sent")
    chunk_size = CHUNK_SIZE
    while -(-size // chunk_size) > MAX_CHUNKS:
        chunk_size *= 2
    return chunk_size


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if type(value) is not kind:
        got = "missing" if name not in obj else type(value).__name__
        raise ManifestError(f"manifest field {name!r} must be {kind.__name__}, not {got}")
    return value


@attrs.frozen
class Manifest:
    """
    A file's name, size and hashes.

    @ivar name: the name the sender gives the file (unsafe until neutralised).
    @ivar size: its size in bytes.
    @ivar sha256: the SHA-256 of the whole file, lowercase hex.
    @ivar chunk_size: the size of every chunk but the last (which may be shorter).
    @ivar chunk_hashes: the 32-byte SHA-256 digest of each chunk, in order.
    """

    name: str
    size: int
    sha256: str
    chunk_size: int
    chunk_hashes: tuple[bytes, ...]

    def __attrs_post_init__(self) -> None:
        try:
            check_name(self.name)
        except UnsafeName as e:
            raise ManifestError(str(e)) from None
        if type(self.size) is not int or not 0 <= self.size <= MAX_FILE_SIZE:
            raise ManifestError(f"size must be 0 to {MAX_FILE_SIZE} bytes, not {self.size!r}")
        if type(self.sha256) is not str or not _HEX64(self.sha256):
            raise ManifestError("sha256 must be 64 lowercase hex digits")
        if (
            type(self.chunk_size) is not int
            or not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE
            or not _is_power_of_two(self.chunk_size)
        ):
            raise ManifestError(
                f"chunk_size must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}, "
                f"not {self.chunk_size!r}")
        expected = -(-self.size // self.chunk_size)
        if expected > MAX_CHUNKS:
            raise ManifestError(f"{expected} chunks (at most {MAX_CHUNKS})")
        if len(self.chunk_hashes) != expected:
            raise ManifestError(
                f"{len(self.chunk_hashes)} chunk hashes for {expected} chunks of "
                f"{self.chunk_size} bytes in {self.size}")
        if any(type(h) is not bytes or len(h) != DIGEST_SIZE for h in self.chunk_hashes):
            raise ManifestError("every chunk hash must be 32 bytes")

    @property
    def count(self) -> int:
        """The number of chunks."""
        return len(self.chunk_hashes)

    def chunk_length(self, index: int) -> int:
        """
        The length of chunk C{index}.

        @raise IndexError: if there is no such chunk.
        """
        if not 0 <= index < self.count:
            raise IndexError(f"chunk {index} out of range 0-{self.count - 1}")
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def verify_chunk(self, index: int, data: bytes | memoryview) -> bool:
        """Whether C{data} is chunk C{index}: the right length and the right SHA-256."""
        return (
            len(data) == self.chunk_length(index)
            and hashlib.sha256(data).digest() == self.chunk_hashes[index]
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest as the JSON object of the wire."""
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "chunk_size": self.chunk_size,
            "chunks": base64.b64encode(b"".join(self.chunk_hashes)).decode("ascii"),
        }

    @classmethod
    def from_json(cls, obj: object) -> Manifest:
        """
        Read and check a manifest's JSON object.

        @raise ManifestError: saying what is wrong.
        """
        if type(obj) is not dict:
            raise ManifestError(f"a manifest must be an object, not {type(obj).__name__}")
        name = obj.get("name")
        size = _field(obj, "size", int)
        sha256 = _field(obj, "sha256", str)
        chunk_size = _field(obj, "chunk_size", int)
        text = _field(obj, "chunks", str)
        if len(text) > (MAX_CHUNKS * DIGEST_SIZE * 4) // 3 + 4:
            raise ManifestError(f"the chunk list is too long (at most {MAX_CHUNKS} chunks)")
        try:
            digests = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ManifestError("manifest field 'chunks' is not valid base64") from None
        if len(digests) % DIGEST_SIZE:
            raise ManifestError("manifest field 'chunks' is not a list of 32-byte digests")
        hashes = tuple(
            digests[i : i + DIGEST_SIZE] for i in range(0, len(digests), DIGEST_SIZE)
        )
        return cls(name, size, sha256, chunk_size, hashes)  # type: ignore[arg-type]


class ManifestHasher:
    """
    Builds the manifest of a file a piece at a time: iterate it (one step reads and hashes
    one chunk, at most L{MAX_CHUNK_SIZE} bytes) under a Twisted C{Cooperator} so that hashing
    a large file never blocks the reactor for long; L{manifest} then holds the result.

    @param path: the file.
    @param name: the name to offer it under (default: the file's base name).
    @param chunk_size: default: L{chunk_size_for} the file's size.
    @raise OSError: if the file cannot be opened (from the constructor).
    """

    def __init__(self, path: str, name: str | None = None, chunk_size: int | None = None):
        self.path = path
        self._file = open(path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size
        self.chunk_size = chunk_size_for(self.size) if chunk_size is None else chunk_size
        self.name = os.path.basename(path) if name is None else name
        self.manifest: Manifest | None = None
        self.hashed = 0

    def __iter__(self) -> Iterator[None]:
        whole = hashlib.sha256()
        hashes = []
        try:
            while True:
                data = self._file.read(self.chunk_size)
                if not data:
                    break
                whole.update(data)
                hashes.append(hashlib.sha256(data).digest())
                self.hashed += len(data)
                yield None
        finally:
            self._file.close()
        if self.hashed != self.size:
            raise ManifestError(f"{self.path} changed size while it was hashed")
        self.manifest = Manifest(
            self.name, self.size, whole.hexdigest(), self.chunk_size, tuple(hashes)
        )

    def close(self) -> None:
        """Stop: close the file (hashing cannot go on)."""
        self._file.close()


def manifest_of(path: str, name: str | None = None, chunk_size: int | None = None) -> Manifest:
    """Hash C{path} at once and return its manifest (for tests and small files)."""
    hasher = ManifestHasher(path, name, chunk_size)
    for _ in hasher:
        pass
    assert hasher.manifest is not None
    return hasher.manifest
