"""
Sphinx configuration of the p2pnet_tx documentation.

The guides and tutorials are Markdown, read by MyST.  The API reference is built from the
epytext docstrings by pydoctor, through its Sphinx extension (as Twisted's own documentation
is), into C{api/}.  Build it, with warnings as errors, from the checkout:

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import builtins
import logging
import re
from pathlib import Path

from p2pnet_tx._version import __version__

ROOT = Path(__file__).resolve().parent.parent

project = "p2pnet_tx"
author = "the p2pnet_tx developers"
copyright = "2026, the p2pnet_tx developers"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.intersphinx",
    "pydoctor.sphinx_ext.build_apidocs",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "state-machines"]
myst_heading_anchors = 3
# A role naming an API object that does not exist fails the build.
nitpicky = True

html_theme = "alabaster"
html_title = f"p2pnet_tx {release}"
html_theme_options = {
    "description": "Peer-to-peer networking for Twisted",
    # The code is 100 columns wide: room for it beside the sidebar.
    "page_width": "1240px",
    "body_max_width": "none",
}

# -- API reference ---------------------------------------------------------------------------
# pydoctor writes api/ (replacing the placeholder page api/index.md) and an inventory, which
# lets the pages link to it: {py:class}`p2pnet_tx.network.PeerNetwork`.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
pydoctor_url_path = "api/"
pydoctor_args = [
    "--project-name=p2pnet_tx",
    f"--project-version={release}",
    "--project-url=../index.html",
    "--docformat=epytext",
    f"--project-base-dir={ROOT}",
    "--html-output={outdir}/api",
    str(ROOT / "p2pnet_tx"),
]

# Each line pydoctor prints becomes a Sphinx warning: a docstring that does not parse, or a
# link to one of our own objects that does not exist, fails the build.  Links to other
# projects' objects (L{twisted.internet.defer.Deferred}, L{ValueError}) need their inventories
# (--intersphinx), which this build does not fetch: it runs offline.  Such a link is rendered as
# plain text, and pydoctor's complaint about it is shown as information, not as a warning.
_UNRESOLVED = re.compile(r'Cannot find link target for "([\w.]+)"')


def _is_external(name: str) -> bool:
    root = name.split(".", 1)[0]
    if root == "p2pnet_tx":
        return False
    return "." in name or hasattr(builtins, name)


class _ExternalLinksAreInformation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        match = _UNRESOLVED.search(record.getMessage())
        if match is not None and _is_external(match.group(1)):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.nonl = False  # a warning is written without a line end, information with one
        return True


def setup(app: object) -> None:
    logging.getLogger("sphinx.pydoctor.sphinx_ext.build_apidocs").addFilter(
        _ExternalLinksAreInformation()
    )
