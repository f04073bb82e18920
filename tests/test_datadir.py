"""
Tests for L{p2pnet_tx.datadir}: what a node keeps on disk.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
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

    def assert_unusable(self, call: Any, name: str, advice: str) -> None:
        with self.assertRaises(DataDirError) as caught:
            call()
        message = str(caught.exception)
        self.assertIn(str(self.data_dir.path / name), message)
        self.assertIn(advice, message)
        self.assertNotIn("\n", message)

    def test_state_that_matters_is_an_error_saying_what_to_do(self) -> None:
        """An unreadable or corrupt key, token or block list is a one-line DataDirError that
        names the file and says what to do."""
        key = self.data_dir.path / "node.key"
        key.write_bytes(b"")
        self.assert_unusable(self.data_dir.private_key, "node.key", "restore it from a backup")
        key.unlink()
        key.mkdir()
        self.assert_unusable(self.data_dir.private_key, "node.key", "Is a directory")
        token = self.data_dir.path / "control.token"
        token.write_bytes(b"two words\x1b\n")
        self.assert_unusable(self.data_dir.control_token, "control.token", "remove it")
        self.assert_unusable(self.data_dir.read_control_token, "control.token", "remove it")
        token.unlink()
        token.mkdir()
        self.assert_unusable(self.data_dir.control_token, "control.token", "Is a directory")
        blocks = self.data_dir.path / "blocked.json"
        for bad in ("", '{"ips": ["10.0', "5", "null", "[]", '{"ips": 5}', '{"ips": "10.0.0.1"}',
                    '{"identifiers": [1]}', "[" * 100_000):
            blocks.write_text(bad)
            self.assert_unusable(self.data_dir.blocked, "blocked.json", "move it away")

    def test_unwritable_file_is_an_error(self) -> None:
        """A write that fails (here: a directory where the file goes) is a DataDirError,
        and no temporary file is left."""
        (self.data_dir.path / "blocked.json").mkdir()
        with self.assertRaises(DataDirError) as caught:
            self.data_dir.save_blocked(["10.0.0.7"], [])
        self.assertIn("cannot write", str(caught.exception))
        self.assertEqual([p.name for p in self.data_dir.path.iterdir()], ["blocked.json"])


class CorruptCacheTests(SynchronousTestCase):
    """A corrupt known_peers.json is moved aside with a warning; the node goes on."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)  # 2027-01-15T08:00:00Z
        self.data_dir = NodeDataDir(self.mktemp(), self.clock).ensure()
        self.file = self.data_dir.path / "known_peers.json"
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_corrupt_file_moved_aside(self) -> None:
        """An empty, truncated or wrongly-typed file yields no peers, is moved to
        known_peers.json.corrupt-<UTC time> (numbered if that is taken) and warned about."""
        cases = ["", '[{"address": "10.0.0.1", "po', "5", '{"address": "10.0.0.1"}', "null",
                 "\xff\xfe", "[" * 100_000]
        for n, bad in enumerate(cases):
            self.file.write_text(bad, encoding="latin-1")
            self.assertEqual(self.data_dir.known_peers(), [], bad[:20])
            self.assertFalse(self.file.exists())
            moved = "known_peers.json.corrupt-20270115T080000Z" + (f"-{n}" if n else "")
            self.assertEqual((self.data_dir.path / moved).read_text(encoding="latin-1"), bad)
        warnings = [e for e in self.logged if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), len(cases))
        self.assertEqual(warnings[0]["path"], str(self.file))
        self.assertIn("not valid JSON", warnings[0]["why"])
        self.assertIn("not a JSON list but int", warnings[2]["why"])
        self.assertEqual(warnings[-1]["moved"], f"known_peers.json.corrupt-20270115T080000Z-{n}")

    def test_wrong_entries_moved_aside_valid_kept(self) -> None:
        """A list with entries that are not peers keeps its valid peers, and the file is
        moved aside so that the next save writes a clean one."""
        self.file.write_text('[{"address": "10.0.0.1", "port": 0}, 7, ["x"], '
                             '{"address": "10.0.0.2", "port": 5}]')
        self.assertEqual(self.data_dir.known_peers(), [GenericPeer("10.0.0.2", 5)])
        self.assertFalse(self.file.exists())
        [warning] = [e for e in self.logged if e["log_level"] == LogLevel.warn]
        self.assertIn("3 of 4 entries", warning["why"])

    def test_unreadable_file_moved_aside(self) -> None:
        """A known_peers.json that cannot be read (a directory) is moved aside too."""
        self.file.mkdir()
        self.assertEqual(self.data_dir.known_peers(), [])
        self.assertTrue((self.data_dir.path / "known_peers.json.corrupt-20270115T080000Z")
                        .is_dir())
        self.data_dir.save_known_peers([GenericPeer("10.0.0.2", 5)])
        self.assertEqual(self.data_dir.known_peers(), [GenericPeer("10.0.0.2", 5)])

    def test_valid_file_untouched(self) -> None:
        """A valid file is read as is, with no warning."""
        self.data_dir.save_known_peers([GenericPeer("10.0.0.2", 5, "b")])
        self.assertEqual(self.data_dir.known_peers(), [GenericPeer("10.0.0.2", 5, "b")])
        self.assertTrue(self.file.exists())
        self.assertEqual([e for e in self.logged if e["log_level"] >= LogLevel.warn], [])

    def test_control_url(self) -> None:
        """The control URL is written for clients and removed on stop."""
        self.assertIsNone(self.data_dir.control_url())
        self.data_dir.save_control_url("http://127.0.0.1:8765")
        self.assertEqual(self.data_dir.control_url(), "http://127.0.0.1:8765")
        self.data_dir.save_control_url(None)
        self.assertIsNone(self.data_dir.control_url())


class NamePinsFileTests(SynchronousTestCase):
    """name_pins.json: the pins of --pin-names, saved on every change."""

    def test_missing_is_empty_and_changes_are_saved(self) -> None:
        data_dir = NodeDataDir(self.mktemp()).ensure()
        pins = data_dir.name_pins()
        self.assertEqual(len(pins), 0)
        pins.check("alice", "bciqa")
        self.assertEqual(data_dir.name_pins().get("alice"), "bciqa")
        pins.unpin("alice")
        self.assertIsNone(data_dir.name_pins().get("alice"))

    def test_corrupt_is_an_error_naming_the_file(self) -> None:
        data_dir = NodeDataDir(self.mktemp()).ensure()
        (data_dir.path / "name_pins.json").write_text("[]")
        with self.assertRaises(DataDirError) as caught:
            data_dir.name_pins()
        self.assertIn("name_pins.json", str(caught.exception))
        self.assertIn("move it away", str(caught.exception))

    def test_failed_save_is_logged_and_the_pin_holds(self) -> None:
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        data_dir = NodeDataDir(self.mktemp()).ensure()
        pins = data_dir.name_pins()
        (data_dir.path / "name_pins.json").mkdir()  # the file cannot be replaced now
        pins.check("alice", "bciqa")
        self.assertEqual(pins.get("alice"), "bciqa")
        errors = [e for e in logged if e.get("log_level") == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("name_pins.json", errors[0]["error"])
