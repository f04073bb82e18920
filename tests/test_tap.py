"""
Tests for L{p2pnet_tx.tap} and the twistd dropin: options, errors, the service they build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.application.service import Application, IServiceMaker
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from p2pnet_tx import tap
from p2pnet_tx.datadir import NodeDataDir
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.peer import GenericPeer, HostnamePeer
from p2pnet_tx.service import PeerNetworkService
from p2pnet_tx.trust import KeyTrust

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class PluginTests(TestCase):
    """The p2pnet dropin is installed where twistd finds it."""

    def test_service_maker_discovered(self) -> None:
        """Twisted's plugin system finds a service maker named p2pnet."""
        names = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("p2pnet", names)
        self.assertEqual(names["p2pnet"].module, "p2pnet_tx.tap")

    def test_twistd_help_lists_p2pnet(self) -> None:
        """C{twistd --help} lists the p2pnet command."""
        result = subprocess.run(TWISTD + ["--help"], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"\n\s+p2pnet\s+Run a P2PNet peer\.")

    def test_bad_option_is_one_line_error(self) -> None:
        """A bad option ends twistd with a non-zero status and an error line, no traceback."""
        result = subprocess.run(TWISTD + ["-n", "p2pnet", "--wire", "carrier-pigeon"],
                                capture_output=True, text=True, timeout=60)
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertIn("--wire: unknown wire format 'carrier-pigeon'", output)
        self.assertNotIn("Traceback", output)

    def test_bad_option_prints_no_usage(self) -> None:
        """A bad option prints the error line and where to find the usage, not the usage
        text, and exits with status 1."""
        result = subprocess.run(TWISTD + ["-n", "p2pnet", "--listen", "8052"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.stderr.splitlines(), [
            "twistd p2pnet: --listen: bad endpoint '8052': Unknown endpoint type: '8052'; "
            "write tcp:8052 to listen on TCP port 8052",
            "Run 'twistd p2pnet --help' for usage.",
        ])

    def test_corrupt_state_is_one_line_on_stderr(self) -> None:
        """twistd with a corrupt key or an unreadable token exits non-zero with one line on
        stderr naming the file, and no traceback (the block list takes the same path: see
        test_corrupt_state_is_one_line_exit)."""
        for name, content in (("node.key", b"-----BEGIN"), ("control.token", None)):
            data_dir = self.mktemp()
            os.makedirs(data_dir)
            path = os.path.join(data_dir, name)
            if content is None:
                os.mkdir(path)  # unreadable
            else:
                with open(path, "wb") as f:
                    f.write(content)
            result = subprocess.run(TWISTD + ["-n", "--pidfile=", "p2pnet", "--listen",
                                              "tcp:0:interface=127.0.0.1", "--data-dir", data_dir],
                                    check=False, capture_output=True, text=True, timeout=60)
            self.assertNotEqual(result.returncode, 0)
            self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
            self.assertIn(name, result.stderr)
            self.assertTrue(result.stderr.startswith("twistd p2pnet: "), result.stderr)
            self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_port_in_use_is_one_line_error(self) -> None:
        """A listen port that is taken ends twistd with status 1 and one line, no traceback."""
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = subprocess.run(
                TWISTD + ["-n", "--pidfile=", "p2pnet", "--listen",
                          f"tcp:{port}:interface=127.0.0.1", "--control", "none",
                          "--data-dir", self.mktemp()],
                capture_output=True, text=True, timeout=60,
            )
        self.assertEqual(result.returncode, 1)
        output = result.stdout + result.stderr
        self.assertIn(f"twistd p2pnet: cannot listen on 127.0.0.1:{port}", output)
        self.assertNotIn("Traceback", output)


class OptionsTests(SynchronousTestCase):
    """Parsing and validating the options of C{twistd p2pnet}."""

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv) + ["--data-dir", self.mktemp()])
        return options

    def test_defaults(self) -> None:
        """The defaults start a key-trusting p2pnet node over TLS on tcp:8051."""
        options = self.parse()
        self.assertEqual(options["listen"], "tcp:8051")
        self.assertEqual(options["trust"], "key")
        self.assertEqual(options["transport"], "tls")
        self.assertEqual(options["wire"], "p2pnet")
        self.assertIsNone(options["name"])
        self.assertEqual(options["control"], "tcp:8765:interface=127.0.0.1")
        self.assertEqual(options["peers"], [])

    def test_repeatable_options(self) -> None:
        """--peer and --block-ip may be given several times."""
        options = self.parse("--peer", "127.0.0.1:8051", "--peer", "[::1]:8052",
                             "--block-ip", "10.0.0.7", "--block-ip", "::FFFF:10.0.0.8")
        self.assertEqual(options["peers"], [GenericPeer("127.0.0.1", 8051),
                                            GenericPeer("::1", 8052)])
        self.assertEqual(options["block-ips"], ["10.0.0.7", "::ffff:a00:8"])

    def test_bad_values(self) -> None:
        """Each bad value is a UsageError that names the option."""
        cases = {
            "--peer": ["--peer", "somewhere"],
            "--block-ip": ["--block-ip", "999.1.1.1"],
            "--wire": ["--wire", "morse"],
            "--trust": ["--trust", "blind"],
            "--name": ["--name", "x" * 300],
            "--transport": ["--transport", "carrier-pigeon"],
            "--listen": ["--listen", "nonsense:1"],
            "--control": ["--control", "tcp:notaport"],
        }
        for option, argv in cases.items():
            with self.assertRaises(UsageError) as caught:
                self.parse(*argv)
            self.assertIn(option, str(caught.exception))

    def test_transport_defaults(self) -> None:
        """The dotnet wire defaults to tcp and ping trust; tcp with p2pnet takes ping or none."""
        options = self.parse("--wire", "dotnet")
        self.assertEqual((options["transport"], options["trust"]), ("tcp", "ping"))
        options = self.parse("--transport", "tcp", "--trust", "none")
        self.assertEqual((options["transport"], options["trust"]), ("tcp", "none"))

    def test_insecure_combinations(self) -> None:
        """Key trust over tcp, TLS with dotnet, tcp without a trust choice: clear errors."""
        cases = [
            (["--transport", "tcp", "--trust", "key"], "--trust ping or none"),
            (["--transport", "tcp"], "--trust ping or none"),
            (["--wire", "dotnet", "--transport", "tls"], "no TLS"),
        ]
        for argv, message in cases:
            with self.assertRaises(UsageError) as caught:
                self.parse(*argv)
            self.assertIn(message, str(caught.exception))

    def test_identifier_is_deprecated_alias_of_name(self) -> None:
        """--identifier sets the display name, with one warning however often it is given."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        options = self.parse("--identifier", "alpha", "-i", "beta")
        self.assertEqual(options["name"], "beta")
        warnings = [e for e in logged if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("--name", warnings[0]["log_format"])


class MakeServiceTests(SynchronousTestCase):
    """makeService builds the node the options describe."""

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv) + ["--data-dir", self.mktemp()])
        return options

    def test_builds_node(self) -> None:
        """The options become a PeerNetworkService whose network follows them."""
        data_dir = self.mktemp()
        options = tap.Options()
        options.parseOptions(["--data-dir", data_dir, "--name", "alpha",
                              "--peer", "127.0.0.1:8052", "--allow-enhanced",
                              "--block-ip", "10.0.0.7", "--wire", "dotnet", "--trust", "ping"])
        service = tap.makeService(options)
        self.assertIsInstance(service, PeerNetworkService)
        network = service.network
        self.assertIsInstance(network, PeerNetwork)
        self.assertEqual(network.display_name, "alpha")
        self.assertEqual(network.wire, "dotnet")
        self.assertEqual(network.transport, "tcp")
        self.assertTrue(network.policy.allow_enhanced_packet_exchange)
        self.assertTrue(network.policy.is_blocked_ip("10.0.0.7"))
        self.assertEqual([k.peer for k in service.keepers], [GenericPeer("127.0.0.1", 8052)])
        self.assertEqual(os.stat(os.path.join(data_dir, "node.key")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(data_dir, "control.token")).st_mode & 0o777, 0o600)

    def test_key_is_kept(self) -> None:
        """A second start from the same data directory has the same identity, over TLS."""
        data_dir = self.mktemp()
        identifiers = []
        for _ in range(2):
            options = tap.Options()
            options.parseOptions(["--data-dir", data_dir, "--name", "alpha"])
            network = tap.makeService(options).network
            self.assertEqual((network.transport, network.display_name), ("tls", "alpha"))
            identifiers.append(network.identifier)
        self.assertEqual(identifiers[0], identifiers[1])
        self.assertTrue(identifiers[0].startswith("bciq"))

    def test_hints(self) -> None:
        """Endpoint errors say what to write; a data dir that is a file says so."""
        for value, hint in (("8052", "write tcp:8052"),
                            ("127.0.0.1:8052", "write tcp:8052:interface=127.0.0.1"),
                            ("nonsense:1", "e.g. tcp:8051")):
            with self.assertRaises(UsageError) as caught:
                self.parse("--listen", value)
            self.assertIn(hint, str(caught.exception))
        afile = self.mktemp()
        with open(afile, "w") as f:
            f.write("x")
        with self.assertRaises(UsageError) as caught:
            tap.Options().parseOptions(["--data-dir", afile])
        self.assertIn("is a file, not a directory", str(caught.exception))
        self.assertNotIn("File exists", str(caught.exception))

    def test_bad_option_leaves_no_data_dir(self) -> None:
        """A start refused for a bad option creates no data directory."""
        data_dir = self.mktemp()
        with self.assertRaises(UsageError):
            tap.Options().parseOptions(["--data-dir", data_dir, "--listen", "8052"])
        self.assertFalse(os.path.exists(data_dir))

    def test_peer_by_host_name(self) -> None:
        """--peer takes a host name as well as an address."""
        options = self.parse("--peer", "localhost:8051", "--peer", "node-b.example.:9")
        self.assertEqual(options["peers"], [HostnamePeer("localhost", 8051),
                                            HostnamePeer("node-b.example.", 9)])

    def test_unusable_data_dir(self) -> None:
        """A data directory that cannot be created is a UsageError, not a traceback."""
        blocker = self.mktemp()
        with open(blocker, "w") as f:
            f.write("not a directory")
        options = tap.Options()
        with self.assertRaises(UsageError) as caught:
            options.parseOptions(["--data-dir", os.path.join(blocker, "sub")])
        self.assertIn("--data-dir", str(caught.exception))

    def test_corrupt_known_peers_do_not_stop_the_node(self) -> None:
        """A corrupt known_peers.json (a cache) is no error: the node is built, and its
        start moves the file aside."""
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        with open(os.path.join(data_dir, "known_peers.json"), "w") as f:
            f.write("5")
        options = tap.Options()
        options.parseOptions(["--data-dir", data_dir, "--control", "none"])
        service = tap.makeService(options)
        service.load_state()
        self.assertEqual(service.network.known_peers, {})
        self.assertEqual([name for name in os.listdir(data_dir) if "known_peers" in name],
                         [name for name in os.listdir(data_dir) if ".corrupt-" in name])

    def test_corrupt_state_is_one_line_exit(self) -> None:
        """A corrupt key, token or block list ends option parsing with SystemExit and one
        line that names the file and says what to do."""
        cases = {"node.key": ("garbage", "restore it from a backup"),
                 "control.token": ("a b c", "remove it"),
                 "blocked.json": ('{"ips": 5}', "move it away")}
        for name, (content, advice) in cases.items():
            data_dir = self.mktemp()
            os.makedirs(data_dir)
            with open(os.path.join(data_dir, name), "w") as f:
                f.write(content)
            with self.assertRaises(SystemExit) as caught:
                tap.Options().parseOptions(["--data-dir", data_dir])
            message = str(caught.exception.code)
            self.assertTrue(message.startswith("twistd p2pnet: "), message)
            self.assertIn(os.path.join(data_dir, name), message)
            self.assertIn(advice, message)

    def test_pin_names(self) -> None:
        """
        --pin-names makes key trust pin names in name_pins.json: a pin made is saved at once
        and the next start finds it.
        """
        data_dir = self.mktemp()
        options = tap.Options()
        options.parseOptions(["--data-dir", data_dir, "--pin-names"])
        trust = tap.makeService(options).network.trust_protocol
        self.assertIsInstance(trust, KeyTrust)
        assert isinstance(trust, KeyTrust)
        self.assertIsNotNone(trust.name_pins)
        assert trust.name_pins is not None
        self.assertTrue(trust.name_pins.check("alice", "bciqalice"))
        options = tap.Options()
        options.parseOptions(["--data-dir", data_dir, "--pin-names"])
        self.assertEqual(options["name-pins"].get("alice"), "bciqalice")

    def test_pin_names_needs_key_trust(self) -> None:
        """Without key trust there is no key to pin a name to: a UsageError says so."""
        with self.assertRaises(UsageError) as caught:
            tap.Options().parseOptions(["--data-dir", self.mktemp(), "--pin-names",
                                        "--trust", "none"])
        self.assertIn("--pin-names needs --trust key", str(caught.exception))

    def test_corrupt_pins_are_one_line_exit(self) -> None:
        """Corrupt name pins (security state) stop the start with one line naming the file."""
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        with open(os.path.join(data_dir, "name_pins.json"), "w") as f:
            f.write('{"alice": 5}')
        with self.assertRaises(SystemExit) as caught:
            tap.Options().parseOptions(["--data-dir", data_dir, "--pin-names"])
        message = str(caught.exception.code)
        self.assertIn(os.path.join(data_dir, "name_pins.json"), message)
        self.assertIn("move it away", message)

    def test_control_max_connections(self) -> None:
        """--control-max-connections sets the control API's limit (64 by default)."""
        options = tap.Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        self.assertEqual(options["control-max-connections"], 64)
        options = tap.Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--control-max-connections", "5"])
        service = tap.makeService(options)
        self.assertEqual(service.control.site.max_connections, 5)
        for bad in ("0", "many"):
            with self.assertRaises(UsageError) as caught:
                tap.Options().parseOptions(["--data-dir", self.mktemp(),
                                            "--control-max-connections", bad])
            self.assertIn("control-max-connections", str(caught.exception))


@implementer(IStreamServerEndpoint)
class _LateEndpoint:
    """An endpoint whose listen the test ends."""

    def __init__(self) -> None:
        self.result: Deferred[Any] = Deferred()

    def listen(self, factory: Any) -> Deferred[Any]:
        return self.result


class TwistdNodeTests(SynchronousTestCase):
    """The node twistd runs never runs without its peer port."""

    def test_taken_port_is_one_line(self) -> None:
        """A port taken at start ends twistd with SystemExit and one line."""

        class Taken(MemoryReactorClock):
            def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
                raise CannotListenError("127.0.0.1", 8051, OSError(98, "Address in use"))

        node = tap._TwistdNode(PeerNetwork(Taken()), listen="tcp:8051")
        with self.assertRaises(SystemExit) as caught:
            node.privilegedStartService()
        self.assertEqual(str(caught.exception),
                         "twistd p2pnet: cannot listen on 127.0.0.1:8051: [Errno 98] "
                         "Address in use: is another node running there? Choose another port "
                         "with --listen tcp:PORT")

    def test_failed_start_removes_the_new_data_dir(self) -> None:
        """A start that fails removes the data directory it created, key and token with it
        (and the parents it created); a directory that existed is left as it was."""

        class Taken(MemoryReactorClock):
            def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
                raise CannotListenError("127.0.0.1", 8051, OSError(98, "Address in use"))

        top = Path(self.mktemp())
        for created, path in ((top, top / "sub" / "node"), (None, Path(self.mktemp()))):
            data_dir = NodeDataDir(path).ensure()
            data_dir.private_key()
            data_dir.control_token()
            node = tap._TwistdNode(PeerNetwork(Taken()), listen="tcp:8051", data_dir=data_dir,
                                   created_data_dir=created)
            with self.assertRaises(SystemExit):
                node.privilegedStartService()
            if created is None:
                self.assertEqual(sorted(os.listdir(path)), ["control.token", "node.key"])
            else:
                self.assertFalse(top.exists())

    def test_log_level_filters_twistd_observer(self) -> None:
        """Set as a child of twistd's application, the node gives it twistd's observer
        behind a filter at the log level (unless the application has an observer)."""
        seen: list[dict[str, Any]] = []
        node = tap._TwistdNode(PeerNetwork(MemoryReactorClock()), listen=_LateEndpoint(),
                               log_level=LogLevel.warn, log_observer=lambda: seen.append)
        application = Application("test")
        node.setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error):
            observer({"log_level": level, "log_namespace": "test", "log_format": ""})
        self.assertEqual([e["log_level"] for e in seen], [LogLevel.warn, LogLevel.error])
        mine = object()
        other = Application("other")
        other.setComponent(ILogObserver, mine)
        tap._TwistdNode(PeerNetwork(MemoryReactorClock()), listen=_LateEndpoint(),
                        log_observer=lambda: seen.append).setServiceParent(other)
        self.assertIs(other.getComponent(ILogObserver), mine)

    def test_late_listen_failure_stops_reactor(self) -> None:
        """A listen that fails once the reactor runs is logged as critical and stops it."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        reactor = MemoryReactorClock()
        endpoint = _LateEndpoint()
        node = tap._TwistdNode(PeerNetwork(reactor), listen=endpoint)
        node.privilegedStartService()
        node.startService()
        self.assertFalse(reactor.hasStopped)
        endpoint.result.errback(CannotListenError("", 80, OSError("gone")))
        self.assertTrue(reactor.hasStopped)
        [event] = [e for e in logged if e["log_level"] == LogLevel.critical]
        self.assertIn("gone", event["why"])

    def test_stop_before_listening_is_quiet(self) -> None:
        """Stopping before a slow listen completes does not stop the reactor."""
        reactor = MemoryReactorClock()
        node = tap._TwistdNode(PeerNetwork(reactor), listen=_LateEndpoint())
        node.privilegedStartService()
        self.successResultOf(node.stopService())
        self.assertFalse(reactor.hasStopped)


class BootstrapOptionsTests(SynchronousTestCase):
    """The bootstrap client's options: --bootstrap, --bootstrap-mode, --authority-key,
    --bootstrap-api."""

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv) + ["--data-dir", self.mktemp()])
        return options

    def test_bootstrap_part(self) -> None:
        """Each --bootstrap URL is a client of the node's "bootstrap" part, in authority
        mode with the key given."""
        import base64

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from p2pnet_tx.identity import public_key_bytes

        key = base64.b64encode(public_key_bytes(Ed25519PrivateKey.generate())).decode()
        options = self.parse("--bootstrap", "http://127.0.0.1:5070", "--bootstrap",
                             "https://seed.example/", "--bootstrap-mode", "authority",
                             "--authority-key", key, "--control", "none")
        self.assertEqual(options["bootstrap"], ["http://127.0.0.1:5070", "https://seed.example"])
        service = tap.makeService(options)
        part = service.getServiceNamed("bootstrap")
        self.assertEqual([c.url for c in part.clients], options["bootstrap"])
        self.assertIsNotNone(part.runner)
        self.assertEqual(part.status()["mode"], "authority")
        # Tasks relayed by peers go to the same runner: a forged one is counted there.
        from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket
        from p2pnet_tx.peer import GenericPeer
        from p2pnet_tx.tasks import TaskType, new_task, sign_task

        forged = sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, now=0),
                           Ed25519PrivateKey.generate())
        relay = type("Relay", (), {"peer": GenericPeer("192.0.2.7", 8051)})()
        service.getServiceNamed("files").distribution.data_received(
            relay, DataTransmissionPacket(json.dumps(forged).encode(), DataPayloadFormat.TASK))
        self.assertEqual(part.status()["tasks.rejected.forged"], 1)

    def test_no_bootstrap_no_part(self) -> None:
        """Without --bootstrap the node has no bootstrap part."""
        service = tap.makeService(self.parse("--control", "none"))
        self.assertRaises(KeyError, service.getServiceNamed, "bootstrap")

    def test_bad_values(self) -> None:
        """Bad values are UsageErrors naming the option and what to do."""
        cases = {
            "--bootstrap": ["--bootstrap", "127.0.0.1:5070"],
            "--bootstrap-mode": ["--bootstrap-mode", "dictator"],
            "--bootstrap-api": ["--bootstrap-api", "soap"],
            "--authority-key": ["--bootstrap-mode", "authority"],
        }
        for option, argv in cases.items():
            with self.assertRaises(UsageError) as caught:
                self.parse(*argv)
            self.assertIn(option, str(caught.exception))
        with self.assertRaises(UsageError) as caught:
            self.parse("--bootstrap-mode", "authority", "--authority-key", "nope")
        self.assertIn("--authority-key", str(caught.exception))
        self.assertIn("base64", str(caught.exception))
