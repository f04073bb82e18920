"""
Tests for L{p2pnet_tx.files.manifest}: building, encoding and strictly reading manifests.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.files.manifest import (
    CHUNK_SIZE,
    MAX_CHUNKS,
    MAX_FILE_SIZE,
    Manifest,
    ManifestError,
    ManifestHasher,
    chunk_size_for,
    manifest_of,
)

KiB = 1024


class ManifestTests(SynchronousTestCase):
    """A manifest lists the file's chunks' hashes and reads back only if it holds together."""

    def setUp(self) -> None:
        self.path = Path(self.mktemp())
        self.data = os.urandom(5 * KiB + 17)
        self.path.write_bytes(self.data)

    def test_chunker(self) -> None:
        """Chunks are chunk_size long but the last; each hash is that chunk's SHA-256."""
        manifest = manifest_of(str(self.path), chunk_size=2 * KiB)
        self.assertEqual((manifest.name, manifest.size, manifest.count),
                         (self.path.name, 5 * KiB + 17, 3))
        self.assertEqual(manifest.sha256, hashlib.sha256(self.data).hexdigest())
        for index in range(3):
            chunk = self.data[index * 2 * KiB:(index + 1) * 2 * KiB]
            self.assertEqual(manifest.chunk_length(index), len(chunk))
            self.assertEqual(manifest.chunk_hashes[index], hashlib.sha256(chunk).digest())
            self.assertTrue(manifest.verify_chunk(index, chunk))
        self.assertEqual(manifest.chunk_length(2), KiB + 17)
        self.assertFalse(manifest.verify_chunk(0, b"\0" * 2 * KiB))
        self.assertFalse(manifest.verify_chunk(2, self.data[4 * KiB:] + b"x"))
        self.assertRaises(IndexError, manifest.chunk_length, 3)

    def test_hasher_steps(self) -> None:
        """The hasher yields once per chunk, then holds the manifest."""
        hasher = ManifestHasher(str(self.path), chunk_size=KiB)
        self.assertEqual(len(list(hasher)), 6)
        self.assertEqual(hasher.manifest, manifest_of(str(self.path), chunk_size=KiB))

    def test_round_trip(self) -> None:
        """to_json and from_json are inverses."""
        manifest = manifest_of(str(self.path), chunk_size=KiB)
        self.assertEqual(Manifest.from_json(manifest.to_json()), manifest)

    def test_chunk_size_for(self) -> None:
        """256 KiB chunks up to MAX_CHUNKS of them, then larger; too large refused."""
        self.assertEqual(chunk_size_for(0), CHUNK_SIZE)
        self.assertEqual(chunk_size_for(MAX_CHUNKS * CHUNK_SIZE), CHUNK_SIZE)
        self.assertEqual(chunk_size_for(MAX_CHUNKS * CHUNK_SIZE + 1), 2 * CHUNK_SIZE)
        self.assertRaises(ManifestError, chunk_size_for, MAX_FILE_SIZE + 1)

    def test_bad_manifests(self) -> None:
        """Every field is checked; the error says which."""
        good = manifest_of(str(self.path), chunk_size=KiB).to_json()
        cases = [
            ({"size": -1}, "size"),
            ({"size": "1"}, "size"),
            ({"size": True}, "size"),
            ({"size": good["size"] + KiB}, "chunk hashes"),
            ({"sha256": "AB" * 32}, "sha256"),
            ({"sha256": None}, "sha256"),
            ({"chunk_size": 1000}, "chunk_size"),
            ({"chunk_size": 1024 * 1024}, "chunk_size"),
            ({"chunks": "!!"}, "base64"),
            ({"chunks": base64.b64encode(b"x" * 33).decode()}, "32-byte"),
            ({"name": ""}, "empty"),
            ({"name": 5}, "string"),
            ({"name": "a\x00"}, "NUL"),
            ({"chunks": "A" * (MAX_CHUNKS * 44)}, "too long"),
        ]
        for change, word in cases:
            with self.assertRaises(ManifestError) as caught:
                Manifest.from_json({**good, **change})
            self.assertIn(word, str(caught.exception), change)
        for bad in (None, [], "x", {"size": 1}):
            self.assertRaises(ManifestError, Manifest.from_json, bad)

    @given(st.dictionaries(
        st.sampled_from(["name", "size", "sha256", "chunk_size", "chunks", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.lists(st.integers()))))
    def test_from_json_only_raises_manifest_error(self, obj: dict) -> None:
        """Arbitrary JSON objects either read or raise ManifestError, nothing else."""
        try:
            Manifest.from_json(obj)
        except ManifestError:
            pass
