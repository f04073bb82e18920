# -*- test-case-name: tests.test_packaging -*-
"""
Packaging: setup.cfg lists its packages one by one (STYLE.md section 5), so every package of
p2pnet_tx must be there or a non-editable install silently leaves it out; pyproject.toml names
the build system; the sdist carries the license and everything the tests, the docs and the
benchmarks need (CI builds it, unpacks it and runs its tests against the installed wheel).
"""

from __future__ import annotations

import configparser
import tomllib
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


class LicenseTests(SynchronousTestCase):
    """The license setup.cfg declares is the one the LICENSE file holds."""

    def test_mit_license_file(self) -> None:
        """LICENSE is the MIT license of the p2pnet_tx developers, as setup.cfg says."""
        text = (ROOT / "LICENSE").read_text(encoding="utf-8")
        self.assertTrue(text.startswith("MIT License\n"))
        self.assertIn("Copyright (c) 2026 the p2pnet_tx developers", text)
        self.assertIn("Permission is hereby granted, free of charge", text)
        config = configparser.ConfigParser()
        config.read(ROOT / "setup.cfg")
        self.assertEqual(config["metadata"]["license"], "MIT")


class BuildSystemTests(SynchronousTestCase):
    """pyproject.toml names the build system; the metadata stays in setup.cfg."""

    def test_build_system_table(self) -> None:
        """The build backend is setuptools', with a setuptools that builds editable wheels."""
        with open(ROOT / "pyproject.toml", "rb") as f:
            pyproject = tomllib.load(f)
        self.assertEqual(pyproject["build-system"]["build-backend"], "setuptools.build_meta")
        self.assertEqual(pyproject["build-system"]["requires"], ["setuptools >= 64"])
        self.assertNotIn("project", pyproject)

    def test_extras(self) -> None:
        """The docs and dist extras that CI installs exist, with the tools it runs."""
        config = configparser.ConfigParser()
        config.read(ROOT / "setup.cfg")
        extras = config["options.extras_require"]

        def names(extra: str) -> set[str]:
            return {line.split()[0] for line in extras[extra].splitlines() if line.strip()}

        self.assertEqual(names("docs"), {"sphinx", "myst-parser", "pydoctor"})
        self.assertEqual(names("dist"), {"build", "twine"})


class ManifestTests(SynchronousTestCase):
    """MANIFEST.in puts into the sdist what its tests, docs and benchmarks need."""

    def setUp(self) -> None:
        self.rules = [line.split() for line in
                      (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines()
                      if line.strip() and not line.startswith("#")]

    def test_directories(self) -> None:
        """tests/ (with integration/ and conftest.py), docs/ and benchmarks/ are grafted."""
        grafted = {rule[1] for rule in self.rules if rule[0] == "graft"}
        self.assertEqual(grafted, {"tests", "docs", "benchmarks"})
        for needed in ("tests/conftest.py", "tests/integration/__init__.py",
                       "docs/conf.py", "docs/examples", "benchmarks"):
            self.assertTrue((ROOT / needed).exists(), needed)

    def test_files_and_exclusions(self) -> None:
        """LICENSE is included; built docs, bytecode and the plugin cache are left out."""
        included = {name for rule in self.rules if rule[0] == "include" for name in rule[1:]}
        self.assertIn("LICENSE", included)
        self.assertIn(["prune", "docs/_build"], self.rules)
        excluded = {name for rule in self.rules if rule[0] == "global-exclude"
                    for name in rule[1:]}
        self.assertEqual(excluded, {"*.py[cod]", "dropin.cache"})
