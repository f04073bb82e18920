# -*- test-case-name: tests.test_packaging -*-
"""
setup.cfg lists its packages one by one (STYLE.md section 5): every package of p2pnet_tx must be
there, or a non-editable install silently leaves it out.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


class SetupCfgPackagesTests(SynchronousTestCase):
    """The packages setup.cfg ships are exactly the packages in the tree."""

    def test_every_package_is_listed(self) -> None:
        """Each directory of p2pnet_tx with an __init__.py is in setup.cfg, and nothing else."""
        config = configparser.ConfigParser()
        config.read(ROOT / "setup.cfg")
        listed = {line.strip() for line in config["options"]["packages"].splitlines()
                  if line.strip()}
        found = {
            ".".join(init.parent.relative_to(ROOT).parts)
            for init in (ROOT / "p2pnet_tx").rglob("__init__.py")
        }
        self.assertEqual(listed - {"twisted.plugins"}, found)

    def test_no_init_in_twisted_plugins(self) -> None:
        """twisted/plugins/ has no __init__.py: one would hide every other plugin."""
        self.assertFalse((ROOT / "twisted" / "plugins" / "__init__.py").exists())
