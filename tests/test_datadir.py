"""
Tests for L{p2pnet_tx.datadir}: what a node keeps on disk.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.datadir import DataDirError, NodeDataDir
from p2pnet_tx.peer import GenericPeer


class NodeDataDirTests(SynchronousTestCase):
    """Keys, tokens, peers and blocks survive a restart; bad files are clear errors."""

    def setUp(self) -> None:
        self.data_dir = NodeDataDir(self.mktemp()).ensure()

    def test_directory_private(self) -> None:
        """The directory is created readable by its owner only."""
        self.assertEqual(os.stat(self.data_dir.path).st_mode & 0o777, 0o700)

    def test_key_created_once(self) -> None:
        """The key is created on first use (mode 0600) and the same key is read back."""
        from p2pnet_tx.trust import public_key_bytes

        first = self.data_dir.private_key()
        self.assertEqual(os.stat(self.data_dir.path / "node.key").st_mode & 0o777, 0o600)
        self.assertEqual(public_key_bytes(self.data_dir.private_key()), public_key_bytes(first))

    def test_token_created_once(self) -> None:
        """The control token is created once, mode 0600, and clients can read it."""
        self.assertIsNone(self.data_dir.read_control_token())
        token = self.data_dir.control_token()
        self.assertGreaterEqual(len(token), 32)
        self.assertEqual(self.data_dir.control_token(), token)
        self.assertEqual(self.data_dir.read_control_token(), token)
        self.assertEqual(os.stat(self.data_dir.path / "control.token").st_mode & 0o777, 0o600)

    def test_known_peers_round_trip(self) -> None:
        """Known peers are saved and restored; entries that no longer validate are skipped."""
        peers = [GenericPeer("10.0.0.1", 8051, "a"), GenericPeer("::1", 9)]
        self.data_dir.save_known_peers(peers)
        self.assertEqual(self.data_dir.known_peers(), peers)
        (self.data_dir.path / "known_peers.json").write_text(
            '[{"address": "10.0.0.1", "port": 0}, {"address": "10.0.0.2", "port": 5}]')
        self.assertEqual(self.data_dir.known_peers(), [GenericPeer("10.0.0.2", 5)])

    def test_blocks_round_trip(self) -> None:
        """The block list is saved and restored."""
        self.data_dir.save_blocked(["10.0.0.7"], ["bad"])
        self.assertEqual(self.data_dir.blocked(), (["10.0.0.7"], ["bad"]))

    def test_corrupt_files_are_clear_errors(self) -> None:
        """A corrupt key or JSON file raises DataDirError naming the file."""
        (self.data_dir.path / "node.key").write_bytes(b"garbage")
        with self.assertRaises(DataDirError) as caught:
            self.data_dir.private_key()
        self.assertIn("node.key", str(caught.exception))
        (self.data_dir.path / "blocked.json").write_text("{oops")
        self.assertRaises(DataDirError, self.data_dir.blocked)

    def test_control_url(self) -> None:
        """The control URL is written for clients and removed on stop."""
        self.assertIsNone(self.data_dir.control_url())
        self.data_dir.save_control_url("http://127.0.0.1:8765")
        self.assertEqual(self.data_dir.control_url(), "http://127.0.0.1:8765")
        self.data_dir.save_control_url(None)
        self.assertIsNone(self.data_dir.control_url())
