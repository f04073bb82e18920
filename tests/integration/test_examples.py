"""
docs/examples/first_node.py, the script of docs/tutorials/first-node.md, on a real reactor and
loopback.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from p2pnet_tx.identity import IDENTIFIER_LENGTH

FIRST_NODE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "first_node.py"
IDENTIFIER = f"bciq[a-z2-7]{{{IDENTIFIER_LENGTH - 4}}}"
"""An identifier derived from a key, as the tutorial shows them."""


@pytest_twisted.ensureDeferred
async def test_first_node_main() -> None:
    """main() starts two nodes; the first hears the second's greeting; both stop."""
    spec = importlib.util.spec_from_file_location("first_node", FIRST_NODE)
    assert spec is not None and spec.loader is not None
    first_node = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(first_node)
    heard = await Deferred.fromCoroutine(first_node.main(reactor))
    assert re.fullmatch(f"{IDENTIFIER} says 'hello'", heard), heard


def test_first_node_script() -> None:
    """C{python docs/examples/first_node.py} prints what the tutorial shows and exits 0."""
    result = subprocess.run([sys.executable, str(FIRST_NODE)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(f"({IDENTIFIER}) heard: ({IDENTIFIER}) says 'hello'\n", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert match.group(1) != match.group(2), "two nodes, two keys, two identifiers"
