# -*- test-case-name: tests.test_tap -*-
"""
C{twistd p2pnet}: the command-line options of a node and the service they build.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from p2pnet_tx.control import DEFAULT_MAX_CONNECTIONS
from p2pnet_tx.datadir import DEFAULT_DATA_DIR, DataDirError, NodeDataDir
from p2pnet_tx.identity import MAX_DISPLAY_NAME, sanitize_display_name
from p2pnet_tx.network import PeerNetwork, peers_from_strings
from p2pnet_tx.network.security import TRANSPORTS, TRUST_NAMES, resolve_transport
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.service import DEFAULT_CONTROL, DEFAULT_LISTEN, PeerNetworkService
from p2pnet_tx.trust import key_trust
from p2pnet_tx.wire import get_codec
from p2pnet_tx.wire_mode import get_wire_mode

TRUST_CHOICES = TRUST_NAMES

_log = Logger(namespace="p2pnet_tx.tap")


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
    ]

    def __init__(self) -> None:
        super().__init__()
        self._identifier_warned = False
        self["peers"] = []
        self["block-ips"] = []

    def opt_peer(self, value: str) -> None:
        """A peer to keep connected, HOST:PORT (repeatable)."""
        try:
            self["peers"].extend(peers_from_strings([value]))
        except ValueError as e:
            raise usage.UsageError(f"--peer: {e}") from None

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

    def postOptions(self) -> None:
        from twisted.internet import reactor

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
        if self["name"] is not None and sanitize_display_name(self["name"]) is None:
            raise usage.UsageError(
                f"--name: {self['name']!r} is not 1 to {MAX_DISPLAY_NAME} printable characters")
        for name in ("listen", "control"):
            if name == "control" and self["control"] == "none":
                continue
            try:
                serverFromString(reactor, self[name])
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError(f"--{name}: bad endpoint {self[name]!r}: {e}") from None
        # Open the data directory now, so that a bad one is a usage error, and a bad file in
        # it one line on stderr (SystemExit), not a traceback.
        try:
            data_dir = NodeDataDir(self["data-dir"], reactor).ensure()
        except DataDirError as e:
            raise usage.UsageError(f"--data-dir: {e}") from None
        try:
            self["private-key"] = data_dir.private_key()
            self["control-token"] = (
                data_dir.control_token() if self["control"] != "none" else None
            )
            data_dir.blocked()
            self["name-pins"] = data_dir.name_pins() if self["pin-names"] else None
        except DataDirError as e:
            raise SystemExit(f"twistd p2pnet: {e}") from None
        self["data-dir-object"] = data_dir


class _TwistdNode(PeerNetworkService):
    """
    The node as twistd runs it: a port that cannot be bound ends twistd with one line (and
    status 1) before the reactor runs; a listen that fails later stops the reactor, so that
    the node never runs without its peer port.
    """

    log = Logger()

    def privilegedStartService(self) -> None:
        """
        Listen before the reactor runs.

        @raise SystemExit: with one line, when a port cannot be bound or the data directory
            cannot be used.
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            where = f"{e.interface or '*'}:{e.port}"
            raise SystemExit(f"twistd p2pnet: cannot listen on {where}: {e.socketError}") from None
        except DataDirError as e:
            raise SystemExit(f"twistd p2pnet: {e}") from None
        self.listener.when_listening().addErrback(self._cannot_listen)

    def _cannot_listen(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # stopped before the port was open: nothing is wrong
        self.log.critical("twistd p2pnet: cannot listen on {endpoint}: {why}; stopping",
                          endpoint=self.listener.description, why=failure.getErrorMessage())
        self.reactor.stop()


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
    return _TwistdNode(
        network,
        listen=options["listen"],
        peers=options["peers"],
        control=None if options["control"] == "none" else options["control"],
        control_token=token,
        data_dir=data_dir,
        control_fallback=options["control"] == DEFAULT_CONTROL,
        control_max_connections=options["control-max-connections"],
    )
