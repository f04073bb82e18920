"""
Tests for L{p2pnet_tx.config} and C{twistd p2pnet --config}: TOML options, the command line
winning, and one-line errors naming the file and the key.
"""

from __future__ import annotations

import os

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx import tap
from p2pnet_tx.config import CONFIG_KEYS, ConfigError, read_config
from p2pnet_tx.peer import GenericPeer, HostnamePeer


class ReadConfigTests(SynchronousTestCase):
    """read_config checks every key and value."""

    def write(self, text: str | bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return path

    def test_keys_are_the_options(self) -> None:
        """Every key is a long option of twistd p2pnet, with its dashes."""
        long_options = {name.rstrip("=") for name in tap.Options().longOpt}
        self.assertEqual(set(CONFIG_KEYS) - long_options, set())

    def test_values(self) -> None:
        """Strings, lists of strings (a single string is a list of one), an integer, booleans."""
        path = self.write('listen = "tcp:8052"\npeer = "localhost:8051"\nblock-ip = ["10.0.0.7"]\n'
                          'control-max-connections = 8\npin-names = true\n')
        self.assertEqual(read_config(path), {
            "listen": "tcp:8052", "peer": ["localhost:8051"], "block-ip": ["10.0.0.7"],
            "control-max-connections": 8, "pin-names": True})

    def test_errors_name_file_and_key(self) -> None:
        """Unknown keys, wrong types, bad TOML and unreadable files: one line, naming the
        file (and the key)."""
        cases = [
            ('lissen = "tcp:1"\n', "unknown key 'lissen'"),
            ('data_dir = "/x"\n', "with dashes, e.g. data-dir"),
            ("listen = 8052\n", "key 'listen' must be a string, not an integer"),
            ('peer = [1, "a:1"]\n', "key 'peer' must be a list of strings, not a list"),
            ('control-max-connections = "8"\n', "must be an integer, not a string"),
            ("control-max-connections = true\n", "must be an integer, not a boolean"),
            ('pin-names = "yes"\n', "key 'pin-names' must be true or false"),
            ("listen = \n", "is not valid TOML"),
            (b"listen = '\xff'\n", "is not valid TOML"),
        ]
        for text, says in cases:
            path = self.write(text)
            error = self.assertRaises(ConfigError, read_config, path)
            self.assertIn(path, str(error), text)
            self.assertIn(says, str(error), text)
            self.assertNotIn("\n", str(error))
        missing = self.mktemp()
        error = self.assertRaises(ConfigError, read_config, missing)
        self.assertIn(f"cannot read config file {missing}", str(error))
        directory = self.mktemp()
        os.makedirs(directory)
        self.assertIn("cannot read", str(self.assertRaises(ConfigError, read_config, directory)))


class ConfigOptionTests(SynchronousTestCase):
    """twistd p2pnet --config: the file fills in what the command line does not give."""

    def parse(self, config: str, *argv: str) -> tap.Options:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(config)
        options = tap.Options()
        options.parseOptions(["--config", path, *argv])
        return options

    def test_file_applies(self) -> None:
        """Every kind of key reaches the options."""
        data_dir = self.mktemp()
        options = self.parse(
            f'listen = "tcp:8052"\npeer = ["localhost:8051", "10.0.0.1:2"]\nname = "second"\n'
            f'data-dir = "{data_dir}"\ncontrol = "none"\nlog-level = "warn"\n'
            f'allow-enhanced = true\nblock-ip = ["10.0.0.7"]\ncontrol-max-connections = 3\n')
        self.assertEqual(options["listen"], "tcp:8052")
        self.assertEqual(options["peers"], [HostnamePeer("localhost", 8051),
                                            GenericPeer("10.0.0.1", 2)])
        self.assertEqual((options["name"], options["control"], options["log-level"]),
                         ("second", "none", "warn"))
        self.assertEqual((options["allow-enhanced"], options["block-ips"]), (1, ["10.0.0.7"]))
        self.assertEqual(options["control-max-connections"], 3)
        self.assertEqual(options["data-dir"], data_dir)

    def test_command_line_wins(self) -> None:
        """An option given on the command line (long or short) wins over the file; a
        repeatable one replaces the file's list."""
        data_dir = self.mktemp()
        options = self.parse(
            'listen = "tcp:8052"\nname = "file"\npeer = ["10.0.0.1:1"]\n'
            'data-dir = "/nonexistent/never"\nlog-level = "error"\n',
            "-l", "tcp:9000", "--name", "cli", "--peer", "10.0.0.2:2", "--data-dir", data_dir,
            "--log-level=debug")
        self.assertEqual((options["listen"], options["name"]), ("tcp:9000", "cli"))
        self.assertEqual(options["peers"], [GenericPeer("10.0.0.2", 2)])
        self.assertEqual((options["data-dir"], options["log-level"]), (data_dir, "debug"))

    def test_bad_values_name_file_and_key(self) -> None:
        """A value the option refuses is a UsageError naming the file and the key."""
        for text, says in (('peer = ["nowhere"]\n', "key 'peer': 'nowhere' is not HOST:PORT"),
                           ('control-max-connections = 0\n', "key 'control-max-connections'"),
                           ('log-level = "loud"\n', "--log-level must be one of"),
                           ('wire = "morse"\n', "--wire")):
            error = self.assertRaises(UsageError, self.parse, text, "--data-dir", self.mktemp())
            self.assertIn(says, str(error), text)
