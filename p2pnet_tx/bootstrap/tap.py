# -*- test-case-name: tests.test_bootstrap_tap -*-
"""
C{twistd p2pnet-bootstrap}: the options of a bootstrap server and the service they build,
e.g. C{twistd -n p2pnet-bootstrap --listen tcp:5070 --mode authority}.

The data directory (C{--data-dir}, C{~/.p2pnet-bootstrap} by default, mode 0700) holds the
authority key (C{authority.key}) and the admin token (C{admin.token}), both mode 0600, the
database (C{bootstrap.sqlite3}) and, while the server listens, its URL (C{bootstrap.url}).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from p2pnet_tx.bootstrap.authority import DEFAULT_DATA_DIR, Authority, BootstrapDataDir
from p2pnet_tx.bootstrap.limits import BootstrapLimits
from p2pnet_tx.bootstrap.service import BootstrapService
from p2pnet_tx.bootstrap.store import DB_FILE, BootstrapStore
from p2pnet_tx.bootstrap.v1 import DEFAULT_HEARTBEAT_INTERVAL, MODES
from p2pnet_tx.datadir import DataDirError
from p2pnet_tx.twistd_usage import OneLineUsageErrors

__all__ = ["DEFAULT_LISTEN", "DEFAULT_PEER_TTL", "Options", "TwistdOptions", "makeService"]

DEFAULT_LISTEN = "tcp:5070"
"""Where a bootstrap server listens unless told otherwise."""

DEFAULT_PEER_TTL = 1800.0
"""Seconds a peer stays registered without a heartbeat (.NET's server: 30 minutes)."""

_DEFAULTS = BootstrapLimits()

USAGE_HINT = "Run 'twistd p2pnet-bootstrap --help' for usage."


def _seconds(name: str, low: float, high: float) -> Any:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not low <= number <= high:
            raise ValueError(f"--{name} must be a number of seconds from {low:g} to {high:g}, "
                             f"not {value!r}")
        return number
    return parse


def _whole(name: str) -> Any:
    def parse(value: str) -> int:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--{name} must be a whole number from 1, not {value!r}")
        return int(value)
    return parse


class Options(usage.Options):
    """The options of C{twistd p2pnet-bootstrap}."""

    synopsis = "[options]"
    longdesc = (
        "Run a P2PNet bootstrap server: nodes register and learn their peers (/v1 for "
        "p2pnet_tx nodes, /api/Bootstrap for .NET P2PNet clients); in authority mode it also "
        "sends them tasks signed by its key.  The operator dashboard is at / (log in with the "
        "token in admin.token in the data directory)."
    )
    optParameters = [  # noqa: RUF012 - twisted.python.usage reads a class attribute
        ["listen", "l", DEFAULT_LISTEN, "Endpoint to serve HTTP on (Twisted endpoint string)."],
        ["mode", "m", "trustless", "trustless, or authority (sign and send tasks)."],
        ["data-dir", "d", DEFAULT_DATA_DIR,
         "Directory for the authority key, the admin token and the database."],
        ["peer-ttl", None, DEFAULT_PEER_TTL,
         "Seconds a peer stays registered without a heartbeat.", _seconds("peer-ttl", 10, 86400)],
        ["heartbeat-interval", None, DEFAULT_HEARTBEAT_INTERVAL,
         "Seconds between heartbeats asked of /v1 nodes.",
         _seconds("heartbeat-interval", 0.5, 3600)],
        ["max-per-network", None, _DEFAULTS.max_per_group,
         "Live registrations from one IPv4 /24 or IPv6 /64.", _whole("max-per-network")],
        ["rate", None, _DEFAULTS.request_rate,
         "Requests a second one IP may make, sustained.", _seconds("rate", 0.01, 10000)],
        ["burst", None, _DEFAULTS.request_burst,
         "Requests one IP may make at once.", _whole("burst")],
    ]

    def postOptions(self) -> None:
        """Check the options; open the data directory and read (or make) its secrets."""
        from twisted.internet import reactor

        if self["mode"] not in MODES:
            raise usage.UsageError(f"--mode must be trustless or authority, not "
                                   f"{self['mode']!r}")
        if self["peer-ttl"] <= self["heartbeat-interval"]:
            raise usage.UsageError("--peer-ttl must be longer than --heartbeat-interval")
        try:
            serverFromString(reactor, self["listen"])
        except (ValueError, KeyError, TypeError) as e:
            raise usage.UsageError(f"--listen: bad endpoint {self['listen']!r}: {e}; write "
                                   "a Twisted endpoint string, e.g. tcp:5070") from None
        path = Path(self["data-dir"]).expanduser()
        if path.exists() and not path.is_dir():
            raise usage.UsageError(f"--data-dir: {path} is a file, not a directory")
        try:
            data_dir = BootstrapDataDir(path).ensure()
            self["admin-token"] = data_dir.admin_token()
            # Made in either mode, so that a server switched to authority mode later keeps
            # the key its nodes were given.
            key = data_dir.authority_key()
        except DataDirError as e:
            raise SystemExit(f"twistd p2pnet-bootstrap: {e}") from None
        self["authority"] = Authority(self["mode"], key)
        self["data-dir-path"] = data_dir.path
        self["limits"] = BootstrapLimits(max_per_group=self["max-per-network"],
                                         request_rate=self["rate"],
                                         request_burst=self["burst"])


class TwistdOptions(OneLineUsageErrors, Options):
    """The options as twistd parses them: a bad option is one line and a hint."""

    command = "twistd p2pnet-bootstrap"
    usage_hint = USAGE_HINT


def makeService(options: Options) -> BootstrapService:
    """
    Build the bootstrap server from parsed options.

    @param options: the parsed L{Options}.
    @return: the service, to be started by twistd.
    """
    from twisted.internet import reactor

    path: Path = options["data-dir-path"]
    return BootstrapService(
        reactor, serverFromString(reactor, options["listen"]),
        BootstrapStore.at(path / DB_FILE, reactor), options["authority"],
        options["admin-token"], ttl=options["peer-ttl"],
        heartbeat_interval=options["heartbeat-interval"], limits=options["limits"],
        description=options["listen"], data_dir=path)
