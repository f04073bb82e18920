"""
C{twistd p2pnet --discovery none|lan}, C{--discovery-interval}, C{--discovery-port}: off by
default, a LAN discovery part of the node when asked for, bad values refused with a clear line.
"""

from __future__ import annotations

from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import TestCase

from p2pnet_tx import tap
from p2pnet_tx.discovery import LanDiscoveryService


class DiscoveryOptionsTests(TestCase):
    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions([*argv, "--data-dir", self.mktemp(), "--control", "none"])
        return options

    def refused(self, *argv: str) -> str:
        with self.assertRaises(usage.UsageError) as raised:
            self.parse(*argv)
        return str(raised.exception)

    def test_off_by_default(self) -> None:
        """A node announces nothing unless asked: no discovery part."""
        options = self.parse()
        self.assertEqual(options["discovery"], "none")
        self.assertIsNone(options["discovery-config"])
        self.assertNotIn("discovery", tap.makeService(options).namedServices)

    def test_lan(self) -> None:
        """--discovery lan adds the part, with the interval and port given."""
        options = self.parse("--discovery", "lan", "--discovery-interval", "2.5",
                             "--discovery-port", "9004")
        part = tap.makeService(options).getServiceNamed("discovery")
        self.assertIsInstance(part, LanDiscoveryService)
        self.assertEqual((part.config.interval, part.config.port, part.format),
                         (2.5, 9004, "p2pnet"))

    def test_lan_dotnet(self) -> None:
        """With --wire dotnet the part speaks .NET's discovery."""
        options = self.parse("--discovery", "lan", "--wire", "dotnet")
        part = tap.makeService(options).getServiceNamed("discovery")
        self.assertEqual(part.format, "dotnet")

    def test_bad_values(self) -> None:
        """Unknown modes, intervals out of range and bad ports are usage errors that say
        what is allowed; --discovery-port means nothing on the dotnet wire."""
        self.assertIn("must be one of none, lan", self.refused("--discovery", "wan"))
        for interval in ("0", "0.1", "abc", "nan", "7200"):
            with self.subTest(interval=interval):
                self.assertIn("0.5 to 3600", self.refused("--discovery-interval", interval))
        for port in ("0", "65536", "x"):
            with self.subTest(port=port):
                self.assertIn("1-65535", self.refused("--discovery-port", port))
        self.assertIn(".NET's discovery ports",
                      self.refused("--wire", "dotnet", "--discovery-port", "9004"))

    def test_config_file(self) -> None:
        """The options can come from the TOML configuration file."""
        config = Path(self.mktemp())
        config.write_text('discovery = "lan"\ndiscovery-interval = 3\ndiscovery-port = 9005\n')
        options = self.parse("--config", str(config))
        self.assertEqual((options["discovery-config"].interval,
                          options["discovery-config"].port), (3.0, 9005))

    def test_help_mentions_it(self) -> None:
        """--help lists the options."""
        text = str(tap.Options())
        for name in ("--discovery=", "--discovery-interval=", "--discovery-port="):
            self.assertIn(name, text)
