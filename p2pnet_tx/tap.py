# -*- test-case-name: tests.test_tap -*-
"""
C{twistd p2pnet}: the command-line options of a node and the service they build.

L{Options} raises L{UsageError <twisted.python.usage.UsageError>} for a bad option, as every
twistd plugin's options do; L{TwistdOptions}, which the dropin gives twistd, turns it into the
error line and a pointer to C{--help} (twistd itself would print the whole usage first).
"""

from __future__ import annotations

import getopt
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
)
from twisted.python import usage
from twisted.python.failure import Failure

from p2pnet_tx.bootstrap.client import API_CHOICES, MODE_CHOICES
from p2pnet_tx.bootstrap.part import bootstrap_part, check_url, read_authority_key
from p2pnet_tx.config import ConfigError, read_config
from p2pnet_tx.control import DEFAULT_MAX_CONNECTIONS
from p2pnet_tx.datadir import (
    BLOCKS_FILE,
    CONTROL_URL_FILE,
    DEFAULT_DATA_DIR,
    KEY_FILE,
    PEERS_FILE,
    PINS_FILE,
    TOKEN_FILE,
    DataDirError,
    NodeDataDir,
)
from p2pnet_tx.discovery import DEFAULT_PORT as DEFAULT_DISCOVERY_PORT
from p2pnet_tx.discovery import LanDiscoveryConfig, LanDiscoveryService
from p2pnet_tx.files.node import add_files_part, parse_size
from p2pnet_tx.identity import MAX_DISPLAY_NAME, sanitize_display_name
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.network.security import TRANSPORTS, TRUST_NAMES, resolve_transport
from p2pnet_tx.peer import peer_from_string
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.service import DEFAULT_CONTROL, DEFAULT_LISTEN, PeerNetworkService
from p2pnet_tx.trust import key_trust
from p2pnet_tx.twistd_usage import OneLineUsageErrors
from p2pnet_tx.wire import get_codec
from p2pnet_tx.wire_mode import get_wire_mode

TRUST_CHOICES = TRUST_NAMES

DISCOVERY_CHOICES = ("none", "lan")
"""The values of C{--discovery}."""

_log = Logger(namespace="p2pnet_tx.tap")

LOG_LEVELS = {
    "debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
    "error": LogLevel.error,
}
"""The values of C{--log-level}, and the least level of the events each lets through."""

USAGE_HINT = "Run 'twistd p2pnet --help' for usage."

_DATA_FILES = (KEY_FILE, TOKEN_FILE, BLOCKS_FILE, PEERS_FILE, PINS_FILE, CONTROL_URL_FILE)


def _endpoint_hint(value: str) -> str:
    """What to write instead of an endpoint string that Twisted cannot parse."""
    if value.isdigit():
        return f"; write tcp:{value} to listen on TCP port {value}"
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = ""
    if host and port.isdigit():
        interface = host.replace(":", "\\:")
        return f"; write tcp:{port}:interface={interface} to listen on {value}"
    return "; write a Twisted endpoint string, e.g. tcp:8051 or tcp:8051:interface=127.0.0.1"


def _given_options(options: usage.Options, argv: Sequence[str]) -> set[str]:
    """The long names of the options C{argv} gives (a configuration file must not override
    them); empty if C{argv} does not parse (C{parseOptions} then says why)."""
    try:
        given, _ = getopt.gnu_getopt(list(argv), options.shortOpt, options.longOpt)
    except getopt.GetoptError:
        return set()
    names = set()
    for option, _ in given:
        name = option.lstrip("-")
        names.add(options.synonyms.get(name, name))
    return names


def _connection_limit(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--control-max-connections must be a whole number from 1, not {value!r}")
    return int(value)


class Options(usage.Options):
    """The options of C{twistd p2pnet}."""

    synopsis = "[options]"
    longdesc = (
        "Run a P2PNet peer: accept peers on --listen, keep the --peer peers connected, and "
        "serve the control API (used by p2pnet-ctl) on --control."
    )
    optFlags = [
        ["allow-enhanced", None, "Let untrusted peers send Identity, PeerGroup and data packets."],
        ["no-default-communication", None, "Drop Message and Disconnect from untrusted peers."],
        ["pin-names", None, ("Pin each peer's display name to the first key seen with it "
                             "(name_pins.json in the data dir); refuse another key under it.")],
    ]
    optParameters = [
        ["listen", "l", DEFAULT_LISTEN, "Endpoint to accept peers on (Twisted endpoint string)."],
        ["name", None, None, ("A display name shown to peers (never what they trust; the "
                              "identifier is derived from the node key).")],
        ["wire", "w", "p2pnet", "Wire format: p2pnet or dotnet."],
        ["transport", None, None, ("tls (default for the p2pnet wire) or tcp (plaintext; the "
                                   "only choice for the dotnet wire).")],
        ["trust", "t", None, ("Trust protocol: key (default over tls), ping (default for "
                              "dotnet) or none.")],
        ["data-dir", "d", DEFAULT_DATA_DIR, "Directory for the node key, token, peers, blocks."],
        ["control", "c", DEFAULT_CONTROL, "Endpoint of the control API ('none' to disable)."],
        ["control-max-connections", None, DEFAULT_MAX_CONNECTIONS,
         "Connections the control API keeps open at most.", _connection_limit],
        ["log-level", None, "info", ("Log events of this level and above: debug, info, warn "
                                     "or error (twistd's own log observers).")],
        ["config", None, None, ("A TOML file of options (keys: the long option names); "
                                "options on the command line win.")],
        ["discovery", None, "none", ("Find peers on the LAN: none (default) or lan (UDP "
                                     "broadcast and multicast; see docs/discovery.md).")],
        ["discovery-interval", None, "10", "Seconds between LAN announcements (0.5-3600)."],
        ["discovery-port", None, None, ("UDP port of p2pnet LAN announcements (default 8004; "
                                        "the dotnet wire uses .NET's ports).")],
        ["bootstrap-mode", None, "trustless", ("trustless (learn peers only) or authority "
                                               "(also run tasks signed by --authority-key).")],
        ["authority-key", None, None, ("The bootstrap authority's public key: base64 of its "
                                       "32 raw bytes, or a file holding it.")],
        ["bootstrap-api", None, "v1", "The bootstrap servers' API: v1 or dotnet (P2PBootstrap)."],
        ["files-quota", None, None, "Most bytes <data-dir>/files may hold (e.g. 10G)."],
        ["files-max-size", None, "8G", "Largest file accepted from a peer (e.g. 500M)."],
        ["files-min-free", None, "256M", "Disk space kept free when accepting files."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self._identifier_warned = False
        self._given: set[str] = set()
        self["peers"] = []
        self["block-ips"] = []
        self["bootstrap"] = []

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse the command line, then apply the configuration file (C{--config}) to the
        options the command line does not give.

        @param options: the arguments (default: C{sys.argv[1:]}).
        @raise usage.UsageError: for a bad option or configuration file.
        """
        self._given = _given_options(self, sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def opt_peer(self, value: str) -> None:
        """A peer to keep connected, HOST:PORT, where HOST is an address or a host name
        (repeatable)."""
        try:
            self["peers"].append(peer_from_string(value))
        except ValueError as e:
            raise usage.UsageError(f"--peer: {e}") from None

    def opt_bootstrap(self, value: str) -> None:
        """A bootstrap server to register with, http(s)://HOST:PORT (repeatable)."""
        try:
            self["bootstrap"].append(check_url(value))
        except ValueError as e:
            raise usage.UsageError(f"--bootstrap: {e}") from None

    def opt_identifier(self, value: str) -> None:
        """Deprecated alias of --name: a display name, no longer the node's identifier."""
        if not self._identifier_warned:
            self._identifier_warned = True
            _log.warn("--identifier is deprecated: it sets the display name only (the "
                      "identifier is derived from the node key); use --name")
        self["name"] = value

    opt_i = opt_identifier

    def opt_block_ip(self, value: str) -> None:
        """An IP address to refuse (repeatable)."""
        try:
            self["block-ips"].append(str(ipaddress.ip_address(value)))
        except ValueError:
            raise usage.UsageError(f"--block-ip: {value!r} is not an IP address") from None

    def _apply_config(self) -> None:
        path = self["config"]
        try:
            config = read_config(path)
        except ConfigError as e:
            raise usage.UsageError(f"--config: {e}") from None
        for key, value in config.items():
            if key in self._given:
                continue
            try:
                if key in ("peer", "block-ip", "bootstrap"):
                    for each in value:
                        getattr(self, f"opt_{key.replace('-', '_')}")(each)
                elif key == "control-max-connections":
                    self[key] = _connection_limit(str(value))
                elif isinstance(value, bool):
                    self[key] = int(value)
                else:
                    self[key] = value
            except (usage.UsageError, ValueError) as e:
                message = str(e).removeprefix(f"--{key}: ")
                raise usage.UsageError(f"--config: {path}: key '{key}': {message}") from None

    def _open_data_dir(self) -> NodeDataDir:
        from twisted.internet import reactor

        path = Path(self["data-dir"]).expanduser()
        if path.exists() and not path.is_dir():
            raise usage.UsageError(
                f"--data-dir: {path} is a file, not a directory: give the path of a directory "
                f"(it is created if it does not exist)")
        created = path
        while not created.parent.exists() and created.parent != created:
            created = created.parent
        self["data-dir-created"] = None if path.exists() else created
        try:
            return NodeDataDir(self["data-dir"], reactor).ensure()
        except DataDirError as e:
            raise usage.UsageError(
                f"--data-dir: {e}: give a directory this user can create and write") from None

    def _check_bootstrap(self) -> None:
        if self["bootstrap-mode"] not in MODE_CHOICES:
            raise usage.UsageError(f"--bootstrap-mode must be one of {', '.join(MODE_CHOICES)}")
        if self["bootstrap-api"] not in API_CHOICES:
            raise usage.UsageError(f"--bootstrap-api must be one of {', '.join(API_CHOICES)}")
        key = self["authority-key"]
        if self["bootstrap-mode"] == "authority" and key is None:
            raise usage.UsageError(
                "--bootstrap-mode authority needs --authority-key (the server's public key: "
                "GET /v1/authority, or the file the server writes)")
        try:
            self["authority-public-key"] = None if key is None else read_authority_key(key)
        except ValueError as e:
            raise usage.UsageError(f"--authority-key: {e}") from None

    def postOptions(self) -> None:
        from twisted.internet import reactor

        if self["config"] is not None:
            self._apply_config()
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(
                f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {self['log-level']!r}")
        try:
            get_codec(self["wire"])
            wire_mode = get_wire_mode(self["wire"])
        except ValueError as e:
            raise usage.UsageError(f"--wire: {e}") from None
        if self["transport"] is not None and self["transport"] not in TRANSPORTS:
            raise usage.UsageError(f"--transport must be one of {', '.join(TRANSPORTS)}")
        try:
            self["transport"] = resolve_transport(self["transport"], wire_mode)
        except ValueError as e:
            raise usage.UsageError(f"--transport: {e}") from None
        if self["trust"] is None:
            if self["transport"] == "tcp" and wire_mode.exchanges_identity:
                raise usage.UsageError(
                    "--transport tcp: choose --trust ping or none (key trust cannot be bound "
                    "to a plaintext connection)")
            self["trust"] = "key" if self["transport"] == "tls" else "ping"
        if self["trust"] not in TRUST_CHOICES:
            raise usage.UsageError(f"--trust must be one of {', '.join(TRUST_CHOICES)}")
        if self["trust"] == "key" and self["transport"] != "tls":
            raise usage.UsageError(
                "--trust key needs --transport tls (over plaintext tcp no key can be bound to "
                "the connection): choose --trust ping or none")
        if self["pin-names"] and self["trust"] != "key":
            raise usage.UsageError("--pin-names needs --trust key: only a key can hold a name")
        self._check_bootstrap()
        if self["name"] is not None and sanitize_display_name(self["name"]) is None:
            raise usage.UsageError(
                f"--name: {self['name']!r} is not 1 to {MAX_DISPLAY_NAME} printable characters")
        for name in ("listen", "control"):
            if name == "control" and self["control"] == "none":
                continue
            try:
                serverFromString(reactor, self[name])
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError(
                    f"--{name}: bad endpoint {self[name]!r}: {e}{_endpoint_hint(self[name])}"
                ) from None
        _check_discovery(self)
        for name in ("files-quota", "files-max-size", "files-min-free"):
            if self[name] is not None:
                try:
                    self[name] = parse_size(self[name])
                except ValueError as e:
                    raise usage.UsageError(f"--{name}: {e}") from None
        # Open the data directory last, so that a bad option leaves no directory behind; a
        # bad one is a usage error, and a bad file in it one line on stderr (SystemExit).
        data_dir = self._open_data_dir()
        try:
            self["private-key"] = data_dir.private_key()
            self["control-token"] = (
                data_dir.control_token() if self["control"] != "none" else None
            )
            data_dir.blocked()
            self["name-pins"] = data_dir.name_pins() if self["pin-names"] else None
        except DataDirError as e:
            remove_created_data_dir(self["data-dir-created"], data_dir.path)
            raise SystemExit(f"twistd p2pnet: {e}") from None
        self["data-dir-object"] = data_dir


def _check_discovery(options: Options) -> None:
    """Turn the discovery options into a L{LanDiscoveryConfig} (C{options["discovery-config"]},
    C{None} for C{--discovery none})."""
    options["discovery-config"] = None
    if options["discovery"] not in DISCOVERY_CHOICES:
        raise usage.UsageError(
            f"--discovery must be one of {', '.join(DISCOVERY_CHOICES)}, not "
            f"{options['discovery']!r}")
    try:
        interval = float(options["discovery-interval"])
    except (TypeError, ValueError):
        interval = float("nan")
    if not 0.5 <= interval <= 3600:
        raise usage.UsageError(
            f"--discovery-interval must be a number of seconds from 0.5 to 3600, not "
            f"{options['discovery-interval']!r}")
    port = options["discovery-port"]
    if port is not None:
        if options["wire"] == "dotnet":
            raise usage.UsageError(
                "--discovery-port: the dotnet wire uses .NET's discovery ports (8001-8003 and "
                "3000); the option is for the p2pnet wire")
        if not str(port).isdigit() or not 1 <= int(port) <= 65535:
            raise usage.UsageError(f"--discovery-port must be a UDP port 1-65535, not {port!r}")
    if options["discovery"] == "lan":
        options["discovery-config"] = LanDiscoveryConfig(
            port=DEFAULT_DISCOVERY_PORT if port is None else int(port), interval=interval)


class TwistdOptions(OneLineUsageErrors, Options):
    """
    The options as twistd parses them: a bad option ends twistd with the error line and
    C{Run 'twistd p2pnet --help' for usage.} on stderr, status 1, instead of the whole usage
    text that twistd prints before the error of any plugin.
    """

    command = "twistd p2pnet"
    usage_hint = USAGE_HINT


def remove_created_data_dir(created: Path | None, path: Path) -> None:
    """
    Remove a data directory this start created (with its key and token) because the start
    failed; a directory that existed before is never touched, nor is any file the node did
    not write.

    @param created: the outermost directory this start created, or C{None}.
    @param path: the data directory.
    """
    if created is None:
        return
    for name in _DATA_FILES:
        for file in (path / name, path / f".{name}.tmp"):
            try:
                file.unlink(missing_ok=True)
            except OSError:
                pass
    directory = path
    while True:
        try:
            directory.rmdir()
        except OSError:
            return  # something else is in it: leave it
        if directory == created or directory.parent == directory:
            return
        directory = directory.parent


class _TwistdNode(PeerNetworkService):
    """
    The node as twistd runs it: a port that cannot be bound ends twistd with one line (and
    status 1) before the reactor runs; a listen that fails later stops the reactor, so that
    the node never runs without its peer port.  Either way a data directory this start
    created is removed.  Set as a child of twistd's application, it filters twistd's log
    observer by C{log_level}.

    @param created_data_dir: the outermost directory this start created for the data
        directory, or C{None}.
    @param log_level: the least level of the events twistd's observer gets.
    @param log_observer: makes twistd's own log observer (for the application component), or
        C{None} to leave twistd's logging alone.
    """

    log = Logger()

    def __init__(
        self,
        *args: Any,
        created_data_dir: Path | None = None,
        log_level: LogLevel = LogLevel.info,
        log_observer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._created_data_dir = created_data_dir
        self._log_level = log_level
        self._log_observer = log_observer

    def setServiceParent(self, parent: Any) -> None:
        """
        Join twistd's application, and give it a log observer that drops the events below
        C{log_level}: twistd's own observer (stdout, C{--logfile}, C{--syslog}) behind a
        L{FilteringLogObserver}.  (An application that has an observer keeps it, and a
        C{--logger} factory takes precedence over both, as twistd documents.)

        @param parent: the application.
        """
        super().setServiceParent(parent)
        if self._log_observer is None or not hasattr(parent, "setComponent"):
            return
        if parent.getComponent(ILogObserver, None) is None:
            parent.setComponent(ILogObserver, FilteringLogObserver(
                self._log_observer(), [LogLevelFilterPredicate(self._log_level)]
            ))

    def privilegedStartService(self) -> None:
        """
        Listen before the reactor runs.

        @raise SystemExit: with one line, when a port cannot be bound or the data directory
            cannot be used.
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            self._remove_created_data_dir()
            where = f"{e.interface or '*'}:{e.port}"
            which = "--listen tcp:PORT"
            if self.control is not None and self.listener.port is not None:
                which = "--control tcp:PORT:interface=127.0.0.1"
            raise SystemExit(
                f"twistd p2pnet: cannot listen on {where}: {e.socketError}: is another node "
                f"running there? Choose another port with {which}") from None
        except DataDirError as e:
            self._remove_created_data_dir()
            raise SystemExit(f"twistd p2pnet: {e}") from None
        self.listener.when_listening().addErrback(self._cannot_listen)

    def _remove_created_data_dir(self) -> None:
        if self.data_dir is not None:
            remove_created_data_dir(self._created_data_dir, self.data_dir.path)

    def _cannot_listen(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # stopped before the port was open: nothing is wrong
        self.log.critical("twistd p2pnet: cannot listen on {endpoint}: {why}; stopping",
                          endpoint=self.listener.description, why=failure.getErrorMessage())
        self._remove_created_data_dir()
        self.reactor.stop()


def twistd_log_observer(server_options: Any) -> Any:
    """
    Return a maker of the log observer twistd would make for C{server_options} (stdout with
    C{-n}, C{--logfile}, C{--syslog}), to put behind a level filter.

    @param server_options: twistd's own options (the parent of ours).
    """
    from twisted.scripts.twistd import _SomeApplicationRunner

    # twistd has no public hook to filter its own observer; this is how twistd makes it.
    return lambda: _SomeApplicationRunner.loggerFactory(server_options)._getLogObserver()


def makeService(options: Options) -> PeerNetworkService:
    """
    Build a node from parsed options.  This is where the global reactor enters.
    """
    from twisted.internet import reactor

    data_dir = options["data-dir-object"]
    private_key = options["private-key"]
    token = options["control-token"]
    policy = IncomingPeerTrustPolicy(
        allow_default_communication=not options["no-default-communication"],
        allow_enhanced_packet_exchange=bool(options["allow-enhanced"]),
        run_default_trust_protocol=options["trust"] != "none",
        blocked_ips=options["block-ips"],
    )
    pins = options["name-pins"]
    network = PeerNetwork(
        reactor,
        display_name=options["name"],
        private_key=private_key,
        policy=policy,
        wire=options["wire"],
        transport=options["transport"],
        trust_protocol=options["trust"] if pins is None else key_trust(name_pins=pins),
    )
    parent = getattr(options, "parent", None)
    node = _TwistdNode(
        network,
        created_data_dir=options.get("data-dir-created"),
        log_level=LOG_LEVELS[options["log-level"]],
        log_observer=twistd_log_observer(parent) if parent is not None else None,
        listen=options["listen"],
        peers=options["peers"],
        control=None if options["control"] == "none" else options["control"],
        control_token=token,
        data_dir=data_dir,
        control_fallback=options["control"] == DEFAULT_CONTROL,
        control_max_connections=options["control-max-connections"],
    )
    if options.get("discovery-config") is not None:
        discovery = LanDiscoveryService(network, reactor, options["discovery-config"])
        node.add_part("discovery", discovery, status=discovery.status)
    files = add_files_part(node, data_dir.path / "files", quota=options["files-quota"],
                           max_file_size=options["files-max-size"],
                           min_free=options["files-min-free"])
    if options["bootstrap"]:
        part = bootstrap_part(
            network, options["bootstrap"], reactor=reactor, mode=options["bootstrap-mode"],
            authority_key=options["authority-public-key"], api=options["bootstrap-api"],
            port=lambda: node.when_listening().addCallback(lambda port: port.getHost().port),
        )
        node.add_part("bootstrap", part, status=part.status)
        if part.runner is not None:
            # Peers may relay the authority's tasks; they run only if it signed them.
            files.distribution.set_task_runner(part.runner.task_packet_received)
    return node
