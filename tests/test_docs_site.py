"""
The configuration of the documentation site (docs/conf.py): pydoctor's complaints fail the
build, except those about links to other projects, which an offline build cannot resolve.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

CONF = Path(__file__).resolve().parent.parent / "docs" / "conf.py"


def load_conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_conf", CONF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PydoctorMessagesTests(SynchronousTestCase):
    """Which of pydoctor's lines stay warnings (errors under -W) and which become information."""

    def setUp(self) -> None:
        self.filter = load_conf()._ExternalLinksAreInformation()

    def level(self, message: str) -> int:
        record = logging.LogRecord("sphinx.pydoctor", logging.WARNING, __file__, 1, message,
                                   None, None)
        self.assertTrue(self.filter.filter(record))
        return record.levelno

    def test_external_links_are_information(self) -> None:
        """Links to Twisted's, zope's or Python's objects: information."""
        for name in ("twisted.internet.defer.Deferred", "zope.interface.verify.verifyObject",
                     "ValueError"):
            line = f'/src/p2pnet_tx/x.py:5: Cannot find link target for "{name}"'
            self.assertEqual(self.level(line), logging.INFO, name)

    def test_our_own_broken_links_stay_warnings(self) -> None:
        """A missing object of ours, or a bare name that resolves nowhere: a warning."""
        for name in ("p2pnet_tx.network.NoSuchThing", "drain", "MemoryReactorClock"):
            line = f'/src/p2pnet_tx/x.py:5: Cannot find link target for "{name}"'
            self.assertEqual(self.level(line), logging.WARNING, name)

    def test_docstring_errors_stay_warnings(self) -> None:
        """A docstring that does not parse is a warning."""
        line = "/src/p2pnet_tx/x.py:5: bad docstring: Improper paragraph indentation."
        self.assertEqual(self.level(line), logging.WARNING)

    def test_pydoctor_arguments(self) -> None:
        """pydoctor reads p2pnet_tx's epytext and writes the reference under api/."""
        conf = load_conf()
        self.assertIn("--docformat=epytext", conf.pydoctor_args)
        self.assertIn("--html-output={outdir}/api", conf.pydoctor_args)
        self.assertEqual(Path(conf.pydoctor_args[-1]).name, "p2pnet_tx")
        self.assertEqual(conf.pydoctor_url_path, "api/")
