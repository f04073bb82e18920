"""
The examples of the documentation run as documented.

Every fenced Python block of README.md and of the pages under docs/ runs here: the blocks of
one page run in order in one namespace, as a reader would type them.  A block that is a
fragment (signatures only, say) is marked in the page, on the line before its fence, with
C{<!-- not-run: the reason -->}.  Every file of docs/examples/ is run by a test named in
L{EXAMPLE_TESTS}.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from twisted.application.service import IService
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.persisted.sob import loadValueFromFile
from twisted.trial.unittest import SynchronousTestCase

import p2pnet_tx.testing
from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.errors import ChannelClosed, HandshakeTimeout, TrustRefused
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.service import PeerNetworkService
from p2pnet_tx.testing import (
    RecordingHandler,
    complete_tcp_connection,
    connected_channels,
)
from p2pnet_tx.tls import is_tls
from p2pnet_tx.trust import key_trust, never_trust

from . import test_trust
from .integration import test_examples

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"


def load_example(name: str, filename: str | None = None) -> ModuleType:
    """Import C{docs/examples/<name>.py} (not in a package), registered as C{name}."""
    path = EXAMPLES / (filename or name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- Fenced Python blocks ----------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->$")


@attrs.frozen
class Block:
    """
    One fenced Python block of a page.

    @ivar line: the line number of its first line of code (1-based).
    @ivar not_run: why it is not run, if its page says so.
    """

    page: Path
    line: int
    code: str
    not_run: str | None


def _is_python(info: str) -> bool:
    words = info.replace("{code-block}", "").split()
    return bool(words) and words[0] in ("python", "py", "python3")


def python_blocks(page: Path, text: str | None = None) -> list[Block]:
    """Return the fenced Python blocks of a Markdown page, in order."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening.group("fence")
        end = index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence)
            and lines[end].strip().strip(fence[0]) == ""
        ):
            end += 1
        if _is_python(opening.group("info")):
            before = [line.strip() for line in lines[:index] if line.strip()]
            marker = _NOT_RUN.match(before[-1]) if before else None
            blocks.append(Block(page, index + 2, "\n".join(lines[index + 1 : end]) + "\n",
                                marker.group("reason") if marker else None))
        index = end + 1
    return blocks


def _trust_page_names() -> dict[str, Any]:
    """
    What docs/trust.md takes for granted: its example's module (the HMAC protocol's helpers),
    the global reactor, and a protocol to call C{my_trust}: the page's own example.
    """
    from twisted.internet import reactor

    from p2pnet_tx.network import PeerNetwork

    example = load_example("custom_trust")
    names = {name: value for name, value in vars(example).items() if not name.startswith("__")}
    names.update(
        reactor=reactor, PeerNetwork=PeerNetwork, Clock=Clock, PeerChannel=PeerChannel,
        PacketHandleProtocol=PacketHandleProtocol, connected_channels=connected_channels,
        my_trust=example.shared_secret_trust(b"our network key"),
    )
    return names


PRELUDES: dict[str, Callable[[], dict[str, Any]]] = {
    "docs/trust.md": _trust_page_names,
}
"""For a page whose blocks use names its prose introduced: the names, by page."""


def documentation_pages() -> list[Path]:
    """README.md and every Markdown page under docs/ (the built site aside)."""
    pages = [ROOT / "README.md"]
    pages += [page for page in sorted(DOCS.rglob("*.md")) if "_build" not in page.parts]
    return pages


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.fixture
def reader_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """
    What a reader has: a home directory (here the test's own, since examples may write to
    C{~}), and the files of docs/examples/ importable by name, as modules of their project.
    """
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield tmp_path


@pytest.mark.parametrize("page", documentation_pages(), ids=_page_id)
def test_page_examples_run(page: Path, reader_setup: Path) -> None:
    """Every fenced Python block of the page runs, in order, without an error."""
    prelude = PRELUDES.get(_page_id(page), dict)
    namespace: dict[str, Any] = {"print": lambda *args, **kwargs: None, **prelude()}
    for block in python_blocks(page):
        if block.not_run is not None:
            continue
        # Padded so that a traceback names the line of the page.
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        exec(code, namespace)


def test_pages_have_their_blocks() -> None:
    """The pages known to hold Python examples are found to hold them, runnable."""
    counts = {_page_id(page): len([b for b in python_blocks(page) if b.not_run is None])
              for page in documentation_pages()}
    assert counts["README.md"] >= 1
    assert counts["docs/wire.md"] >= 2
    assert counts["docs/trust.md"] >= 3
    assert counts["docs/embedding.md"] >= 1
    assert set(PRELUDES) <= set(counts)


class PythonBlocksTests(SynchronousTestCase):
    """python_blocks finds Python fences, their lines and their not-run markers."""

    def test_blocks(self) -> None:
        """Python fences are found with their first code line; other fences are not."""
        text = "\n".join([
            "# Page", "", "```python", "a = 1", "```", "", "```", "not python", "```",
            "````python", "```", "b = 2", "````", "~~~py", "c = 3", "~~~",
        ])
        blocks = python_blocks(Path("page.md"), text)
        self.assertEqual([(b.line, b.code) for b in blocks],
                         [(4, "a = 1\n"), (11, "```\nb = 2\n"), (15, "c = 3\n")])
        self.assertEqual([b.not_run for b in blocks], [None, None, None])

    def test_not_run_marker(self) -> None:
        """A not-run comment right before the fence (blank lines aside) marks the block."""
        text = "\n".join([
            "<!-- not-run: signatures only -->", "", "```python", "def f(): ...", "```",
            "<!-- not-run: -->", "```python", "g()", "```",
        ])
        blocks = python_blocks(Path("page.md"), text)
        self.assertEqual([b.not_run for b in blocks], ["signatures only", None])


# -- The testing helper's own docstring --------------------------------------------------------


class TestingModuleDocstringTests(SynchronousTestCase):
    """The example in p2pnet_tx.testing's docstring (the installed help) runs."""

    def test_docstring_example_runs(self) -> None:
        """The indented block after '::' runs, and its assertion holds."""
        doc = p2pnet_tx.testing.__doc__ or ""
        block = doc.split("::\n", 1)[1].split("\nWhole networks", 1)[0]
        lines = block.splitlines()
        code = "\n".join(line[4:] for line in lines)
        self.assertIn("connected_channels(make, make, clock)", code)
        namespace: dict[str, Any] = {}
        exec(compile(code, "p2pnet_tx.testing docstring", "exec"), namespace)
        self.assertEqual(len(namespace["received"].packets), 1)

    def test_docstring_names_no_test_file(self) -> None:
        """The helper's docs do not send readers to test files that are not installed."""
        source = Path(p2pnet_tx.testing.__file__).read_text(encoding="utf-8")
        self.assertNotRegex(source, r"tests/test_\w+\.py")

    def test_pages_name_no_test_file_for_it(self) -> None:
        """No paragraph of the docs about p2pnet_tx.testing sends readers to tests/."""
        for page in documentation_pages():
            for paragraph in page.read_text(encoding="utf-8").split("\n\n"):
                if "p2pnet_tx.testing" in paragraph:
                    self.assertNotIn("tests/", paragraph, _page_id(page))


# -- docs/examples/ ----------------------------------------------------------------------------


class EmbeddingExampleTests(SynchronousTestCase):
    """docs/embedding.md: two example nodes greet each other."""

    def test_two_nodes_greet(self) -> None:
        """Each node sends a greeting once it trusts the other, and receives the other's."""
        embedding = load_example("embedding")
        reactor = MemoryReactorClock()
        first = embedding.make_node(reactor, "first", listen="tcp:8061")
        second = embedding.make_node(reactor, "second", listen="tcp:8062",
                                     peers=[GenericPeer("10.0.0.1", 8061)])
        first.startService()
        second.startService()
        pump = complete_tcp_connection(reactor)
        pump.flush()
        self.assertEqual(first.received, ["hello from second"])
        self.assertEqual(second.received, ["hello from first"])
        stopped = second.stopService()
        pump.flush()
        self.successResultOf(stopped)
        self.successResultOf(first.stopService())
        self.assertEqual(first.network.active_peer_channels, [])

    def test_tac_builds_application(self) -> None:
        """node.tac defines an application holding a node service."""
        application = loadValueFromFile(str(EXAMPLES / "node.tac"), "application")
        [node] = list(IService(application))
        self.assertIsInstance(node, PeerNetworkService)


class VersionTrust:
    """Two channels joined in memory, each running a trust protocol of version_trust.py."""

    def __init__(self, server_trust: Any, client_trust: Any) -> None:
        self.clock = Clock()
        self.messages = RecordingHandler()
        handlers = PacketHandleProtocol()
        handlers.set_handler(PacketType.MESSAGE, self.messages)
        self.server, self.client, self.pump = connected_channels(
            lambda: PeerChannel("p2pnet", handlers, server_trust, clock=self.clock),
            lambda: PeerChannel("p2pnet", handlers, client_trust, clock=self.clock),
            self.clock,
        )
        self.server_trusted = self.server.when_trusted()
        self.client_trusted = self.client.when_trusted()
        self.pump.flush()


class VersionTrustExampleTests(SynchronousTestCase):
    """docs/examples/version_trust.py, the protocols of docs/tutorials/custom-trust.md."""

    def setUp(self) -> None:
        self.example = load_example("version_trust")

    def test_loopback_only(self) -> None:
        """Peers on loopback addresses are trusted; a peer from elsewhere is refused."""
        pair = VersionTrust(self.example.loopback_only, self.example.loopback_only)
        self.successResultOf(pair.server_trusted)
        channel = PeerChannel("p2pnet", trust_protocol=self.example.loopback_only,
                              clock=Clock())
        channel.makeConnection(StringTransport())  # the peer is 192.168.1.1
        self.failureResultOf(channel.when_trusted(), TrustRefused)

    def test_same_version(self) -> None:
        """Same version: both trust; the handlers never see the version messages."""
        pair = VersionTrust(self.example.version_trust(3), self.example.version_trust(3))
        self.successResultOf(pair.server_trusted)
        self.successResultOf(pair.client_trusted)
        self.assertEqual(pair.messages.calls, [])
        self.assertEqual(len(pair.server.on_data_received), 0)
        pair.client.send_message("after the handshake")
        pair.pump.flush()
        self.assertEqual([p.message for p in pair.messages.packets], ["after the handshake"])

    def test_other_version(self) -> None:
        """Versions 3 and 4 refuse each other and both channels close."""
        pair = VersionTrust(self.example.version_trust(3), self.example.version_trust(4))
        self.failureResultOf(pair.server_trusted, TrustRefused)
        self.failureResultOf(pair.client_trusted, TrustRefused)
        self.assertTrue(pair.server.is_closed and pair.client.is_closed)

    def test_silent_peer(self) -> None:
        """A peer that never says its version is dropped at the handshake deadline."""
        clock = Clock()
        channel = PeerChannel("p2pnet", trust_protocol=self.example.version_trust(3),
                              clock=clock)
        channel.makeConnection(StringTransport())
        trusted = channel.when_trusted()
        clock.advance(channel.limits.handshake_timeout)
        self.failureResultOf(trusted, HandshakeTimeout)
        self.assertEqual(len(channel.on_data_received), 0)

    def test_all_of_key_and_version(self) -> None:
        """
        Key trust and the version check together, between two networks over TLS in memory:
        trusted, each holding the key the other's TLS handshake proved; the handlers never see
        the version messages.
        """
        pair = NetworkPair(self.example.all_of(key_trust(), self.example.version_trust(3)),
                           self.example.all_of(key_trust(), self.example.version_trust(3)))
        channel = pair.client_channel()
        self.assertTrue(is_tls(channel.transport))
        self.assertTrue(channel.is_trusted)
        self.assertEqual(channel.peer.identifier, pair.server.identifier)
        self.assertEqual(channel.properties["public_key"], pair.server.tls.public_key)
        [inbound] = pair.server.active_peer_channels
        self.assertTrue(inbound.is_trusted)
        self.assertEqual(inbound.properties["public_key"], pair.client.tls.public_key)
        self.assertEqual(pair.messages.calls, [])

    def test_all_of_refuses_if_one_refuses(self) -> None:
        """If one protocol refuses, the peer is refused and the others are stopped."""
        pair = VersionTrust(self.example.all_of(never_trust, self.example.version_trust(3)),
                            self.example.version_trust(3))
        self.failureResultOf(pair.server_trusted, TrustRefused)
        self.failureResultOf(pair.client_trusted, ChannelClosed)
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_all_of_key_and_other_version(self) -> None:
        """Over TLS, with keys both sides accept, versions 3 and 4 still refuse each other."""
        pair = NetworkPair(self.example.all_of(key_trust(), self.example.version_trust(3)),
                           self.example.all_of(key_trust(), self.example.version_trust(4)))
        self.assertEqual(pair.server.active_peer_channels, [])
        self.assertEqual(pair.client.active_peer_channels, [])
        # The first side to hear the other's version refuses it and closes the connection.
        self.assertGreaterEqual(pair.server.counters["handshakes_failed"]
                                + pair.client.counters["handshakes_failed"], 1)

    def test_all_of_key_over_tcp_refuses_everyone(self) -> None:
        """
        What custom-trust.md says of plaintext TCP: key trust alone is a ValueError there, and
        inside all_of (which the network cannot see into) it refuses every peer.
        """
        with self.assertRaisesRegex(ValueError, "key trust needs the tls transport"):
            PeerNetwork(MemoryReactorClock(), transport="tcp", trust_protocol=key_trust())
        pair = NetworkPair(self.example.all_of(key_trust(), self.example.version_trust(3)),
                           self.example.all_of(key_trust(), self.example.version_trust(3)),
                           transport="tcp")
        self.assertEqual(pair.server.active_peer_channels, [])
        self.assertEqual(pair.client.active_peer_channels, [])
        self.assertEqual(pair.client.counters["handshakes_failed"], 1)
        pair = NetworkPair(self.example.version_trust(3), self.example.version_trust(3),
                           transport="tcp")
        self.assertTrue(pair.client_channel().is_trusted)
        self.assertFalse(is_tls(pair.client_channel().transport))


class CustomTrustOnNetworksTests(SynchronousTestCase):
    """docs/examples/custom_trust.py on networks over TLS, as its docstring says it runs."""

    def test_same_secret_over_tls(self) -> None:
        """Same secret: trusted, inside the TLS session whose key the network holds."""
        example = load_example("custom_trust")
        pair = NetworkPair(example.shared_secret_trust(b"k"), example.shared_secret_trust(b"k"))
        channel = pair.client_channel()
        self.assertTrue(channel.is_trusted)
        self.assertTrue(is_tls(channel.transport))
        self.assertEqual(channel.properties["public_key"], pair.server.tls.public_key)
        self.assertEqual(pair.messages.calls, [])

    def test_other_secret_over_tls(self) -> None:
        """Different secrets: no channel survives."""
        example = load_example("custom_trust")
        pair = NetworkPair(example.shared_secret_trust(b"k"), example.shared_secret_trust(b"j"))
        self.assertEqual(pair.client.active_peer_channels, [])
        self.assertEqual(pair.server.active_peer_channels, [])


class NetworkPair:
    """
    Two networks on one memory reactor, the client connected to the server: over TLS (the
    networks' default) their TLS handshake runs in memory.
    """

    def __init__(self, server_trust: Any, client_trust: Any, **options: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.server = PeerNetwork(self.reactor, trust_protocol=server_trust, **options)
        self.client = PeerNetwork(self.reactor, trust_protocol=client_trust, **options)
        self.messages = RecordingHandler()
        self.server.handlers.set_handler(PacketType.MESSAGE, self.messages)
        self.server.listen("tcp:8051")
        self.client.connect(GenericPeer("127.0.0.1", 8051)).addErrback(lambda failure: None)
        pump = complete_tcp_connection(self.reactor)
        assert pump is not None
        pump.flush()

    def client_channel(self) -> PeerChannel:
        """The client's one channel, to the server."""
        [channel] = self.client.active_peer_channels
        return channel


# The tests the testing tutorial shows, collected and run here as any test of this suite.
load_example("echo")  # test_echo.py imports it as "echo"
_test_echo = load_example("test_echo")
EchoTests = _test_echo.EchoTests
StrictEchoTests = _test_echo.StrictEchoTests
DelayedEchoTests = _test_echo.DelayedEchoTests
HostileInputTests = _test_echo.HostileInputTests
EchoNetworkTests = _test_echo.EchoNetworkTests


EXAMPLE_TESTS: dict[str, list[Any]] = {
    "custom_trust.py": [test_trust.CustomTrustExampleTests, CustomTrustOnNetworksTests],
    "echo.py": [EchoTests, StrictEchoTests, DelayedEchoTests, EchoNetworkTests],
    "embedding.py": [EmbeddingExampleTests],
    "first_node.py": [test_examples.test_first_node_main, test_examples.test_first_node_script],
    "node.tac": [EmbeddingExampleTests],
    "test_echo.py": [EchoTests, StrictEchoTests, DelayedEchoTests, HostileInputTests,
                     EchoNetworkTests],
    "version_trust.py": [VersionTrustExampleTests],
}
"""Each file of docs/examples/ and the test classes that run it."""


def test_every_example_file_is_run() -> None:
    """Every file of docs/examples/ has tests that run it: test classes or test functions."""
    files = {path.name for path in EXAMPLES.iterdir() if path.is_file()}
    assert files == set(EXAMPLE_TESTS), "add the new example's tests to EXAMPLE_TESTS"
    for name, tests in EXAMPLE_TESTS.items():
        for test in tests:
            if isinstance(test, type):
                assert any(attr.startswith("test_") for attr in vars(test)), (name, test)
            else:
                assert test.__name__.startswith("test_"), (name, test)

