# -*- test-case-name: tests.test_service -*-
"""
L{PeerNetworkService}: a node as a Twisted service, for C{twistd p2pnet} and for embedding.

    from twisted.application.service import Application
    from p2pnet_tx.network import PeerNetwork
    from p2pnet_tx.service import PeerNetworkService

    application = Application("my p2p app")
    network = PeerNetwork(reactor)
    PeerNetworkService(network, listen="tcp:8051").setServiceParent(application)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.control import ControlAPI, ControlRequest, MessageLog
from p2pnet_tx.datadir import NodeDataDir
from p2pnet_tx.errors import PeerBlocked, SelfConnection
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.network import PeerNetwork

DEFAULT_LISTEN = "tcp:8051"
"""Where a node accepts peers unless told otherwise."""

DEFAULT_CONTROL = "tcp:8765:interface=127.0.0.1"
"""Where a node's control API listens unless told otherwise (loopback only)."""

_FALLBACK_CONTROL = "tcp:0:interface=127.0.0.1"

SAVE_DELAY = 1.0
"""Seconds between a change of the known peers and writing them to the data directory."""


class PeerKeeper(Service):
    """
    Keeps a connection to one peer open: connects on start, and after every failure or loss
    waits (1 s, doubling up to C{max_delay}) and connects again.  A peer that is this node or is
    blocked is given up on.
    """

    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        peer: IPeer,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        self.network = network
        self.peer = peer
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.channel: PeerChannel | None = None
        self._delay = initial_delay
        self._attempt: Deferred[PeerChannel] | None = None
        self._retry: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        self._connect()

    def stopService(self) -> None:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.cancel()

    def _connect(self) -> None:
        self._retry = None
        self._attempt = self.network.connect(self.peer)
        self._attempt.addCallbacks(self._connected, self._failed)

    def _connected(self, channel: PeerChannel) -> None:
        self._attempt = None
        self.channel = channel
        # Only a peer that trusts us resets the backoff: one that accepts and then refuses
        # every handshake must not be redialled every second.
        channel.when_trusted().addCallbacks(self._reset_backoff, lambda _: None)
        channel.when_closed().addCallback(self._lost)

    def _reset_backoff(self, channel: PeerChannel) -> None:
        self._delay = self.initial_delay

    def _lost(self, reason: str) -> None:
        self.channel = None
        if self.running:
            self.log.info("lost {peer} ({reason}); reconnecting", peer=self.peer, reason=reason)
            self._schedule()

    def _failed(self, failure: Failure) -> None:
        self._attempt = None
        if not self.running:
            return
        if failure.check(SelfConnection, PeerBlocked):
            self.log.error("not connecting to {peer}: {why}", peer=self.peer,
                           why=failure.getErrorMessage())
            return
        self.log.info("could not connect to {peer}: {why}; retrying in {delay} s",
                      peer=self.peer, why=failure.getErrorMessage(), delay=self._delay)
        self._schedule()

    def _schedule(self) -> None:
        self._retry = self.network.reactor.callLater(self._delay, self._connect)
        self._delay = min(self._delay * 2, self.max_delay)


class _ListensEarly(Service):
    """
    A service that binds its port in C{privilegedStartService}, so that twistd fails before the
    reactor runs (and before dropping privileges), or in C{startService} when embedded.
    """

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def _listen(self) -> None:
        raise NotImplementedError


class _Listener(_ListensEarly):
    """Listens for peers; stopping it closes the whole network."""

    log = Logger()

    def __init__(self, network: PeerNetwork, endpoint: str) -> None:
        self.network = network
        self.endpoint = endpoint
        self._started = False

    def _listen(self) -> None:
        if self._started:
            return
        self._started = True
        errors: list[Failure] = []
        self.network.listen(self.endpoint).addErrback(errors.append)
        if errors:
            errors[0].raiseException()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.network.close()


class ControlService(_ListensEarly):
    """
    Serves the control API.  If the default endpoint is taken (another node on this host), it
    falls back to a free loopback port; either way the URL is written to the data directory,
    where C{p2pnet-ctl} finds it.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        endpoint: str,
        resource: ControlAPI,
        data_dir: NodeDataDir | None = None,
        fallback: bool = False,
    ) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.site = Site(resource, requestFactory=ControlRequest)
        self.site.noisy = False
        self.data_dir = data_dir
        self.fallback = fallback
        self.port: IListeningPort | None = None
        self.url: str | None = None

    def _listen(self) -> None:
        if self.port is not None:
            return
        from twisted.internet.endpoints import serverFromString

        errors: list[Failure] = []
        ports: list[IListeningPort] = []
        serverFromString(self.reactor, self.endpoint).listen(self.site).addCallbacks(
            ports.append, errors.append
        )
        if errors and self.fallback and errors[0].check(CannotListenError):
            self.log.warn("control endpoint {endpoint} is taken; using a free loopback port",
                          endpoint=self.endpoint)
            errors = []
            serverFromString(self.reactor, _FALLBACK_CONTROL).listen(self.site).addCallbacks(
                ports.append, errors.append
            )
        if errors:
            errors[0].raiseException()
        self.port = ports[0]
        address = self.port.getHost()
        host = getattr(address, "host", "127.0.0.1")
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{getattr(address, 'port', 0)}"
        if self.data_dir is not None:
            self.data_dir.save_control_url(self.url)
        self.log.info("control API at {url}", url=self.url)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.data_dir is not None:
            self.data_dir.save_control_url(None)
        if self.port is not None:
            port, self.port = self.port, None
            return maybeDeferred(port.stopListening)
        return None


class PeerNetworkService(MultiService):
    """
    A node: the network's listener, its control API and the peers it keeps connected, as one
    service; starting it starts them all, stopping it closes every channel.

    :param network: the node's network.
    :param listen: the endpoint string to accept peers on.
    :param peers: peers to keep connected (reconnecting with backoff).
    :param control: the control API endpoint string, or None for no control API.
    :param control_token: the bearer token of the control API (required with C{control}).
    :param data_dir: where known peers, blocks and the control URL are kept across restarts.
    :param control_fallback: if the control endpoint is taken, use a free loopback port.
    """

    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        listen: str = DEFAULT_LISTEN,
        peers: Iterable[IPeer] = (),
        control: str | None = None,
        control_token: str | None = None,
        data_dir: NodeDataDir | None = None,
        control_fallback: bool = False,
    ) -> None:
        super().__init__()
        self.network = network
        self.data_dir = data_dir
        self.messages = MessageLog(network.reactor)
        self.messages.install(network)
        listener = _Listener(network, listen)
        listener.setName("listener")
        listener.setServiceParent(self)
        self.control: ControlService | None = None
        if control is not None:
            if not control_token:
                raise ValueError("a control endpoint needs a control_token")
            api = ControlAPI(network, control_token, self.messages, listen)
            self.control = ControlService(
                network.reactor, control, api, data_dir, control_fallback
            )
            self.control.setName("control")
            self.control.setServiceParent(self)
        self.keepers = [PeerKeeper(network, peer) for peer in peers]
        for keeper in self.keepers:
            keeper.setServiceParent(self)
        self._save_call: IDelayedCall | None = None
        self._state_loaded = False
        if data_dir is not None:
            network.peer_trusted.add(lambda channel: self._save_soon())
            network.peer_blocked.add(lambda ip, identifier: self.save_state())

    def privilegedStartService(self) -> None:
        # Saved blocks apply before the listening port opens.
        self._load_state_once()
        super().privilegedStartService()

    def startService(self) -> None:
        self._load_state_once()
        super().startService()
        if self.data_dir is not None and self.network.known_peers:
            started = self.network.dial_known_peers()
            self.log.info("dialling {count} known peers", count=started)

    def _load_state_once(self) -> None:
        if self.data_dir is not None and not self._state_loaded:
            self._state_loaded = True
            self.load_state()

    def _save_soon(self) -> None:
        # Peers come and go in bursts: write once a second at most, not once per peer.
        if self._save_call is None:
            self._save_call = self.network.reactor.callLater(SAVE_DELAY, self._save_now)

    def _save_now(self) -> None:
        self._save_call = None
        self.save_state()

    def stopService(self) -> Deferred[None]:
        if self._save_call is not None and self._save_call.active():
            self._save_call.cancel()
        self._save_call = None
        d = maybeDeferred(super().stopService)
        if self.data_dir is not None:
            d.addBoth(self._save_after_stop)
        return d

    def _save_after_stop(self, result: object) -> object:
        self.save_state()
        return result

    def load_state(self) -> None:
        """Restore known peers and the block list from the data directory."""
        assert self.data_dir is not None
        ips, identifiers = self.data_dir.blocked()
        for ip in ips:
            try:
                self.network.policy.blocked_ips.add(ip)
            except ValueError:
                self.log.warn("ignoring bad saved blocked IP {ip!r}", ip=ip)
        for identifier in identifiers:
            self.network.policy.blocked_identifiers.add(identifier)
        for peer in self.data_dir.known_peers():
            self.network.remember(peer)
        self.log.info("restored {peers} known peers, {ips} blocked IPs, {ids} blocked identifiers",
                      peers=len(self.network.known_peers), ips=len(ips), ids=len(identifiers))

    def save_state(self) -> None:
        """Write known peers and the block list to the data directory."""
        assert self.data_dir is not None
        self.data_dir.save_known_peers(list(self.network.known_peers.values()))
        policy = self.network.policy
        self.data_dir.save_blocked(list(policy.blocked_ips), list(policy.blocked_identifiers))
