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
from p2pnet_tx.network import PeerNetwork, peers_from_strings
from p2pnet_tx.peer import InvalidPeer, validate_identifier
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.service import DEFAULT_CONTROL, DEFAULT_LISTEN, PeerNetworkService
from p2pnet_tx.wire import get_codec

TRUST_CHOICES = ("key", "ping", "none")


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
    ]
    optParameters = [
        ["listen", "l", DEFAULT_LISTEN, "Endpoint to accept peers on (Twisted endpoint string)."],
        ["identifier", "i", None, "This node's identifier (default: derived from its key)."],
        ["wire", "w", "p2pnet", "Wire format: p2pnet or dotnet."],
        ["trust", "t", "key", "Trust protocol: key, ping or none."],
        ["data-dir", "d", DEFAULT_DATA_DIR, "Directory for the node key, token, peers, blocks."],
        ["control", "c", DEFAULT_CONTROL, "Endpoint of the control API ('none' to disable)."],
        ["control-max-connections", None, DEFAULT_MAX_CONNECTIONS,
         "Connections the control API keeps open at most.", _connection_limit],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["peers"] = []
        self["block-ips"] = []

    def opt_peer(self, value: str) -> None:
        """A peer to keep connected, HOST:PORT (repeatable)."""
        try:
            self["peers"].extend(peers_from_strings([value]))
        except ValueError as e:
            raise usage.UsageError(f"--peer: {e}") from None

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
        except ValueError as e:
            raise usage.UsageError(f"--wire: {e}") from None
        if self["trust"] not in TRUST_CHOICES:
            raise usage.UsageError(f"--trust must be one of {', '.join(TRUST_CHOICES)}")
        if self["identifier"] is not None:
            try:
                validate_identifier(self["identifier"])
            except InvalidPeer as e:
                raise usage.UsageError(f"--identifier: {e}") from None
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
    network = PeerNetwork(
        reactor,
        identifier=options["identifier"],
        private_key=private_key,
        policy=policy,
        wire=options["wire"],
        trust_protocol=options["trust"],
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
