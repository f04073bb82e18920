"""
Tests for L{p2pnet_tx.files.store}: partial files, their saved state, room, placing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.files.manifest import manifest_of
from p2pnet_tx.files.store import FileStore, OutgoingRecord

KiB = 1024


class StoreTests(SynchronousTestCase):
    """What a store keeps, and what it refuses."""

    def setUp(self) -> None:
        self.tmp = Path(self.mktemp())
        self.store = FileStore(self.tmp / "files", min_free=0).ensure()
        self.source = self.tmp / "src.bin"
        self.data = os.urandom(4 * KiB + 10)
        self.source.write_bytes(self.data)
        self.manifest = manifest_of(str(self.source), chunk_size=KiB)

    def chunk(self, index: int) -> bytes:
        return self.data[index * KiB:(index + 1) * KiB]

    def test_layout(self) -> None:
        """files/, files/.partial and files/.outgoing, the hidden ones private."""
        self.assertTrue((self.tmp / "files").is_dir())
        self.assertEqual(os.stat(self.store.partial_dir).st_mode & 0o777, 0o700)
        self.assertEqual(os.stat(self.store.outgoing_dir).st_mode & 0o777, 0o700)

    def test_partial_whole(self) -> None:
        """Chunks written in any order verify, hash and move into place."""
        partial = self.store.partial("peer", "0123456789ab", self.manifest)
        partial.open()
        self.assertEqual(partial.missing(), [[0, 5]])
        for index in (0, 1, 3, 4, 2):
            partial.write_chunk(index, self.chunk(index))
        self.assertTrue(partial.complete)
        self.assertEqual(partial.verified_bytes, len(self.data))
        for _ in partial.hash_rest():
            pass
        self.assertEqual(partial.sha256(), hashlib.sha256(self.data).hexdigest())
        path = partial.finish()
        self.assertEqual(path, self.tmp / "files" / "src.bin")
        self.assertEqual(path.read_bytes(), self.data)
        self.assertEqual(os.listdir(self.store.partial_dir), [])

    def test_state_survives(self) -> None:
        """Only checkpointed chunks are verified for a new run; the rest are needed."""
        partial = self.store.partial("peer", "0123456789ab", self.manifest)
        partial.open()
        partial.write_chunk(0, self.chunk(0))
        partial.write_chunk(1, self.chunk(1))
        partial.checkpoint()
        partial.write_chunk(3, self.chunk(3))  # written, never checkpointed: a kill here
        [loaded] = self.store.load_partials()
        self.assertEqual((loaded.peer, loaded.transfer_id), ("peer", "0123456789ab"))
        self.assertEqual(loaded.manifest, self.manifest)
        self.assertEqual(loaded.missing(), [[2, 5]])
        self.assertEqual(loaded.verified_bytes, 2 * KiB)

    def test_bad_state_set_aside(self) -> None:
        """A state file that does not read is renamed .bad, with the others still loaded."""
        good = self.store.partial("peer", "0123456789ab", self.manifest)
        good.open()
        (self.store.partial_dir / "junk.json").write_text("{")
        bad_flags = self.store.partial("peer", "0123456789ac", self.manifest)
        bad_flags.open()
        state = json.loads(bad_flags.state_path.read_text())
        state["verified"] = "AAAA"
        bad_flags.state_path.write_text(json.dumps(state))
        loaded = self.store.load_partials()
        self.assertEqual([p.transfer_id for p in loaded], ["0123456789ab"])
        self.assertTrue((self.store.partial_dir / "junk.bad").exists())

    def test_partial_names_are_hashes(self) -> None:
        """A partial file's name comes from the sender and id, never the offered name."""
        partial = self.store.partial("../../x", "0123456789ab", self.manifest)
        self.assertEqual(partial.data_path.parent, self.store.partial_dir)
        self.assertRegex(partial.data_path.name, r"^[0-9a-f]{32}\.part$")

    def test_discard(self) -> None:
        """discard deletes the data and the state."""
        partial = self.store.partial("peer", "0123456789ab", self.manifest)
        partial.open()
        partial.discard()
        self.assertEqual(os.listdir(self.store.partial_dir), [])

    def test_place_never_overwrites(self) -> None:
        """A taken name gets " (1)", " (2)"...; the existing file is untouched."""
        (self.tmp / "files" / "a.txt").write_text("old")
        for expected in ("a (1).txt", "a (2).txt"):
            source = self.store.partial_dir / "x.part"
            source.write_text("new")
            self.assertEqual(self.store.place(source, "a.txt").name, expected)
        self.assertEqual((self.tmp / "files" / "a.txt").read_text(), "old")
        source = self.store.partial_dir / "y.part"
        source.write_text("z")
        self.assertEqual(self.store.place(source, "../../evil").parent, self.tmp / "files")

    def test_quota(self) -> None:
        """Finished and partial files count against the quota."""
        self.store.quota = 10 * KiB
        (self.tmp / "files" / "old").write_bytes(b"x" * 4 * KiB)
        partial = self.store.partial("peer", "0123456789ab", self.manifest)
        partial.open()  # reserves its whole size
        self.assertIsNone(self.store.refusal(KiB))
        refusal = self.store.refusal(2 * KiB)
        assert refusal is not None
        self.assertIn("over quota", refusal)

    def test_free_disk(self) -> None:
        """min_free is kept free on the disk."""
        self.store.min_free = 2**62
        refusal = self.store.refusal(1)
        assert refusal is not None
        self.assertIn("not enough free disk", refusal)

    def test_outgoing_records(self) -> None:
        """Outgoing records are saved, loaded and forgotten; a bad one is dropped."""
        record = OutgoingRecord("0123456789ab", "peer", str(self.source), self.manifest)
        self.store.save_outgoing(record)
        (self.store.outgoing_dir / "bad.json").write_text("[]")
        self.assertEqual(self.store.load_outgoing(), [record])
        self.store.forget_outgoing("0123456789ab")
        self.assertEqual(self.store.load_outgoing(), [])
