# -*- test-case-name: tests.test_service -*-
"""
L{PeerNetworkService}: a node as a Twisted service, for C{twistd p2pnet} and for embedding::

    from twisted.application.service import Application
    from p2pnet_tx.network import PeerNetwork
    from p2pnet_tx.service import PeerNetworkService

    application = Application("my p2p app")
    network = PeerNetwork(reactor)
    PeerNetworkService(network, listen="tcp:8051").setServiceParent(application)

Its children are Twisted's own kinds of service: the peer listener and the control API are
L{StreamServerEndpointService}s (L{PeerListenerService}, L{ControlService}), and each
configured peer is kept by a L{PeerConnectionService}, which has the contract of
L{ClientService <twisted.application.internet.ClientService>}.  A node can be stopped and
started again: stopping closes every channel but leaves the network usable.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pnet_tx._keeper import (
    DOTNET_REFUSALS,
    GIVE_UP_ON,
    Dialer,
    KeeperMachine,
    doubling_backoff,
)
from p2pnet_tx._keeper import _Core as _KeeperCore
from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.control import (
    DEFAULT_MAX_CONNECTIONS,
    ControlAPI,
    ControlSite,
    MessageLog,
)
from p2pnet_tx.control_events import EventRoutes
from p2pnet_tx.datadir import DataDirError, NodeDataDir
from p2pnet_tx.event_log import EventLog
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.network import DEFAULT_BACKLOG, PeerNetwork

__all__ = [
    "DEFAULT_CONTROL",
    "DEFAULT_LISTEN",
    "GIVE_UP_ON",
    "ControlService",
    "ListenerService",
    "PeerConnectionService",
    "PeerKeeper",
    "PeerListenerService",
    "PeerNetworkService",
    "SAVE_DELAY",
    "doubling_backoff",
    "peer_endpoint",
]

DEFAULT_LISTEN = "tcp:8051"
"""Where a node accepts peers unless told otherwise."""

DEFAULT_CONTROL = "tcp:8765:interface=127.0.0.1"
"""Where a node's control API listens unless told otherwise (loopback only)."""

_FALLBACK_CONTROL = "tcp:0:interface=127.0.0.1"

SAVE_DELAY = 1.0
"""Seconds between a change of the known peers and writing them to the data directory."""


class PeerConnectionService(Service):
    """
    Keeps one peer connected: dials it on start, and after every failure or loss waits (by
    C{retry_policy}) and dials again; the backoff resets once the peer trusts us.  A peer that
    is this node or is blocked is given up on (an error is logged) until the next start.

    It has the contract of Twisted's L{ClientService
    <twisted.application.internet.ClientService>}; why it is not one is told in
    L{p2pnet_tx._keeper}.

    @param network: dials with C{connect(peer) -> Deferred[PeerChannel]} (a L{PeerNetwork}).
    @param peer: the peer to keep connected.
    @param clock: schedules the retries.
    @param retry_policy: seconds to wait after C{n} failures in a row, C{policy(n)}; by
        default L{doubling_backoff}C{()}: 1, 2, 4 ... 60 s.  A .NET peer (the network's wire
        is C{"dotnet"}) that closed 3 connections in a row at once, never trusting us, is
        refusing our IP until it restarts: it is dialled at the policy's longest wait
        (C{policy(64)}), and a warning says so once (see docs/dotnet.md).
    @ivar peer: the kept peer.
    @ivar held: whether the peer is held: not dialled (after L{hold}) until L{release} or the
        next start.
    """

    log = Logger()
    held = False

    def __init__(
        self,
        network: Dialer,
        peer: IPeer,
        clock: IReactorTime,
        retry_policy: Callable[[int], float] | None = None,
    ) -> None:
        self.network = network
        self.peer = peer
        self.clock = clock
        self._core = _KeeperCore(
            network, peer, clock, retry_policy or doubling_backoff(), self.log,
            refusal_limit=DOTNET_REFUSALS if getattr(network, "wire", None) == "dotnet" else None,
        )
        self._machine = KeeperMachine(self._core)

    @property
    def channel(self) -> PeerChannel | None:
        """The kept channel while it is open, else C{None}."""
        return self._core.channel

    def when_connected(self) -> Deferred[PeerChannel]:
        """
        @return: a Deferred firing with the kept channel, at once if it is open, else once it
            is.  It fails with C{CancelledError} when the service stops first, and with
            L{SelfConnection} or L{PeerBlocked} when the peer is given up on.
        """
        return self._machine.when_connected()

    def startService(self) -> None:
        """Start dialling the peer (a second start while running does nothing)."""
        if self.running:
            return
        super().startService()
        self.held = False
        self._machine.start()

    def hold(self) -> Deferred[None]:
        """
        Stop keeping the peer connected while the service runs: cancel a pending dial or retry
        and close the kept channel, as L{stopService} does, but stay running, so that
        L{release} (or the next start) dials again.

        @return: a Deferred firing once the kept channel is gone.
        """
        self.held = True
        self.log.info("no longer redialling {peer}: it was removed", peer=self.peer)
        channel = self._core.channel
        if channel is not None and getattr(channel, "close_reason", None) is not None:
            # Closing already (removed): stop once it is gone rather than close it twice;
            # the retry its close schedules is then cancelled.
            return channel.when_closed().addBoth(lambda _: self._stop_if_held())
        return self._machine.stop()

    def _stop_if_held(self) -> Deferred[None] | None:
        return self._machine.stop() if self.held else None

    def release(self) -> None:
        """Dial a held peer again (if the service runs); nothing if it is not held."""
        if not self.held:
            return
        self.held = False
        if self.running:
            self.log.info("keeping {peer} connected again", peer=self.peer)
            self._machine.start()

    def keeps(self, peer: IPeer | None, channel: PeerChannel | None = None) -> bool:
        """
        Whether this service keeps C{peer} (or C{channel}): the channel it keeps, or a peer
        of the same address and port, or of the same identifier.

        @param peer: a peer (a connected peer's address, or a dial target's name).
        @param channel: a channel, matched by identity with the kept one.
        """
        if channel is not None and channel is self._core.channel:
            return True
        if peer is None:
            return False
        kept = self.peer
        if kept.identifier is not None and kept.identifier == peer.identifier:
            return True
        return (kept.address, kept.port) == (peer.address, peer.port)

    def stopService(self) -> Deferred[None]:
        """
        Cancel a pending dial or retry, and close the kept channel.

        @return: a Deferred firing once the kept channel is gone.
        """
        super().stopService()
        return self._machine.stop()


class PeerKeeper(PeerConnectionService):
    """
    Deprecated after p2pnet_tx 0.1.0: use L{PeerConnectionService}, which takes its clock
    explicitly (this one reads C{network.reactor}) and a retry policy.

    @param network: the network to dial with; its C{reactor} is the clock.
    @param peer: the peer to keep connected.
    @param initial_delay: seconds to wait after the first failure.
    @param max_delay: the longest wait.
    """

    def __init__(
        self,
        network: PeerNetwork,
        peer: IPeer,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        warnings.warn(
            "p2pnet_tx.service.PeerKeeper is deprecated after p2pnet_tx 0.1.0; use "
            "PeerConnectionService(network, peer, clock, retry_policy)",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(
            network, peer, network.reactor, doubling_backoff(initial_delay, max_delay)
        )


@implementer(IStreamServerEndpoint)
class _ObservedEndpoint:
    """Tells a L{ListenerService} how each C{listen} ends, before Twisted's own handling."""

    def __init__(self, endpoint: IStreamServerEndpoint, service: ListenerService) -> None:
        self.endpoint = endpoint
        self._service = service

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        # An error of the service's own listening hook counts as a failure to listen.
        listening = self.endpoint.listen(factory).addCallback(self._service._listening)
        return listening.addErrback(self._service._not_listening)


class ListenerService(StreamServerEndpointService):
    """
    A L{StreamServerEndpointService} that can be stopped and started again, and that fails
    every start, not only the first, when it cannot listen.

    A failure to listen while starting (as with TCP, which listens at once) is raised by
    C{privilegedStartService} or C{startService}: twistd fails before the reactor runs, an
    embedding application gets the exception.  A failure that comes later (an endpoint that
    listens asynchronously) is logged as an error and fails L{when_listening}.

    Subclasses react to the port in L{listening} and L{stopped_listening}.

    @param endpoint: where to listen.
    @param factory: the factory of the connections.
    @param description: how log lines name the endpoint (e.g. its endpoint string).
    @ivar port: the listening port while listening, else C{None}.
    @ivar description: how log lines name the endpoint.
    """

    log = Logger()

    def __init__(
        self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory, description: str
    ) -> None:
        super().__init__(_ObservedEndpoint(endpoint, self), factory)
        self.description = description
        self.port: IListeningPort | None = None
        self._starting = False
        self._waiters: list[Deferred[IListeningPort]] = []

    def listening(self, port: IListeningPort) -> None:
        """
        Called once listening; by default does nothing.  An exception raised here fails the
        listen (and closes the port) as an endpoint error would.

        @param port: the listening port.
        """

    def stopped_listening(self, port: IListeningPort) -> None:
        """
        Called once a port stopped by L{stopService} is closed; by default does nothing.

        @param port: the closed port.
        """

    def when_listening(self) -> Deferred[IListeningPort]:
        """
        @return: a Deferred firing with the listening port, at once if listening, else when the
            current (or next) start listens.  It fails with the error of that listen, or with
            C{CancelledError} if the service stops first.
        """
        if self.port is not None:
            return succeed(self.port)
        waiter: Deferred[IListeningPort] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def privilegedStartService(self) -> None:
        """
        Listen.

        @raise Exception: the endpoint's error (e.g. L{CannotListenError}) when the listen
            fails at once; the service can then be started again.
        """
        # Twisted raises only on the first start, and resets _raiseSynchronously after it.
        self._raiseSynchronously = True
        self._starting = True
        try:
            super().privilegedStartService()
        except BaseException:
            self._waitingForPort = None  # so that the next start listens again
            self.running = False
            raise
        finally:
            self._starting = False

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, or cancel a listen still under way.

        @return: a Deferred firing once the port is closed.
        """
        if self._waitingForPort is None:  # never started, or its start failed
            Service.stopService(self)
            return succeed(None)
        port, self.port = self.port, None
        stopped: Deferred[None] = super().stopService()
        self._waitingForPort = None  # so that the next start listens again
        if port is not None:
            stopped.addCallback(lambda _: self.stopped_listening(port))
        return stopped

    def _listening(self, port: IListeningPort) -> IListeningPort:
        try:
            self.listening(port)
        except BaseException:
            port.stopListening()
            raise
        self.port = port
        self.log.info("listening on {endpoint}: {address}", endpoint=self.description,
                      address=port.getHost())
        self._fire(port)
        return port

    def _not_listening(self, failure: Failure) -> Failure | None:
        self._fire(failure)
        if self._starting or failure.check(CancelledError):
            return failure  # raised by the start in progress; a cancel is no error
        self.log.error("cannot listen on {endpoint}: {why}", endpoint=self.description,
                       why=failure.getErrorMessage())
        return None

    def _fire(self, result: IListeningPort | Failure) -> None:
        waiting, self._waiters = self._waiters, []
        for waiter in waiting:
            waiter.callback(result)


class PeerListenerService(ListenerService):
    """
    Accepts peers for a network: the network learns of the port (C{port_opened}, which makes
    it the port announced to peers) and of its closing (C{port_closed}).

    @param network: the network whose factory accepts the connections.
    @param endpoint: where to listen.
    @param description: how log lines name the endpoint.
    """

    def __init__(
        self, network: PeerNetwork, endpoint: IStreamServerEndpoint, description: str = ""
    ) -> None:
        super().__init__(endpoint, network.factory, description or repr(endpoint))
        self.network = network

    def listening(self, port: IListeningPort) -> None:
        """Tell the network it listens on C{port}."""
        self.network.port_opened(port)

    def stopped_listening(self, port: IListeningPort) -> None:
        """Tell the network C{port} is closed."""
        self.network.port_closed(port)


@implementer(IStreamServerEndpoint)
@attrs.frozen
class _FallbackEndpoint:
    """Listens on C{primary}, or on C{fallback} if C{primary} is taken."""

    primary: IStreamServerEndpoint
    fallback: IStreamServerEndpoint
    description: str
    log = Logger()

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        def taken(failure: Failure) -> Deferred[IListeningPort]:
            failure.trap(CannotListenError)
            self.log.warn("control endpoint {endpoint} is taken; using a free loopback port",
                          endpoint=self.description)
            return self.fallback.listen(factory)

        return self.primary.listen(factory).addErrback(taken)


class ControlService(ListenerService):
    """
    Serves the control API.  If the default endpoint is taken (another node on this host), it
    falls back to a free loopback port; either way the URL is written to the data directory,
    where C{p2pnet-ctl} finds it, and removed when the service stops.

    The site keeps at most C{max_connections} connections and closes idle ones (see
    L{ControlSite}).

    @param reactor: listens and times the HTTP connections out.
    @param endpoint: the endpoint string to listen on.
    @param resource: the control API.
    @param data_dir: where the URL is written, if anywhere.
    @param fallback: listen on a free loopback port if C{endpoint} is taken.
    @param max_connections: how many connections the API keeps open at most.
    @ivar site: the L{ControlSite} serving C{resource}.
    @ivar url: the API's URL while listening, else C{None}.
    @raise ValueError: if C{max_connections} is below 1.
    """

    def __init__(
        self,
        reactor: Any,
        endpoint: str,
        resource: ControlAPI,
        data_dir: NodeDataDir | None = None,
        fallback: bool = False,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.reactor = reactor
        self.site = ControlSite(resource, reactor, max_connections)
        listen: IStreamServerEndpoint = serverFromString(reactor, endpoint)
        if fallback:
            listen = _FallbackEndpoint(
                listen, serverFromString(reactor, _FALLBACK_CONTROL), endpoint
            )
        super().__init__(listen, self.site, endpoint)
        self.data_dir = data_dir
        self.url: str | None = None

    def listening(self, port: IListeningPort) -> None:
        """Work out the API's URL from C{port} and write it to the data directory."""
        address = port.getHost()
        host = getattr(address, "host", "127.0.0.1")
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{getattr(address, 'port', 0)}"
        if self.data_dir is not None:
            self.data_dir.save_control_url(self.url)
        self.log.info("control API at {url}", url=self.url)

    def stopped_listening(self, port: IListeningPort) -> None:
        """Remove the URL from the data directory."""
        self.url = None
        if self.data_dir is not None:
            self.data_dir.save_control_url(None)


def peer_endpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    Parse the endpoint string a node accepts peers on; a TCP endpoint gets a backlog of
    C{DEFAULT_BACKLOG} unless it names one.

    @param reactor: the reactor the endpoint listens with.
    @param description: a server endpoint string, e.g. C{"tcp:8051"}.
    @return: the endpoint.
    @raise ValueError: for a string that is not a server endpoint.
    """
    if description.split(":", 1)[0] in ("tcp", "tcp6") and "backlog=" not in description:
        description += f":backlog={DEFAULT_BACKLOG}"
    try:
        return serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"bad endpoint {description!r}: {e}") from None


class PeerNetworkService(MultiService):
    """
    A node: the network's listener, its control API and the peers it keeps connected, as one
    service; starting it starts them all, stopping it closes every channel (the network stays
    usable, so the service can be started again).

    @param network: the node's network.
    @param listen: the endpoint (or endpoint string) to accept peers on.
    @param peers: peers to keep connected (reconnecting with backoff).
    @param control: the control API endpoint string, or None for no control API.
    @param control_token: the bearer token of the control API (required with C{control}).
    @param data_dir: where known peers, blocks and the control URL are kept across restarts.
    @param control_fallback: if the control endpoint is taken, use a free loopback port.
    @param reactor: listens, dials and keeps time for the services; by default the network's.
    @param control_max_connections: how many connections the control API keeps open at most.
    @ivar listener: the L{PeerListenerService}.
    @ivar control: the L{ControlService}, or C{None}.
    @ivar keepers: a L{PeerConnectionService} per configured peer; one whose peer is removed
        through the control API is held (not redialled) until the API connects it again.
    @ivar api: the L{ControlAPI}, or C{None}.
    @ivar messages: the log of received messages the control API shows.
    @ivar events: the log of what the node's parts say happened (a file received...), which
        the control API shows at C{/api/events}.
    @raise ValueError: for a bad C{listen} string, a control API without a token, or a
        C{control_max_connections} below 1.
    """

    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        listen: str | IStreamServerEndpoint = DEFAULT_LISTEN,
        peers: Iterable[IPeer] = (),
        control: str | None = None,
        control_token: str | None = None,
        data_dir: NodeDataDir | None = None,
        control_fallback: bool = False,
        reactor: Any = None,
        control_max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        super().__init__()
        self.network = network
        self.reactor = network.reactor if reactor is None else reactor
        self.data_dir = data_dir
        if control is not None and not control_token:
            raise ValueError("a control endpoint needs a control_token")
        self.messages = MessageLog(self.reactor)
        self.events = EventLog(self.reactor)
        self.messages.install(network)
        if isinstance(listen, str):
            self.listener = PeerListenerService(
                network, peer_endpoint(self.reactor, listen), listen
            )
        else:
            self.listener = PeerListenerService(network, listen)
        self.listener.setName("listener")
        self.listener.setServiceParent(self)
        self.control: ControlService | None = None
        self.keepers = [PeerConnectionService(network, peer, self.reactor) for peer in peers]
        self.api: ControlAPI | None = None
        if control is not None:
            api = self.api = ControlAPI(
                network, control_token, self.messages,  # type: ignore[arg-type]
                listen if isinstance(listen, str) else "",
                self.save_state if data_dir is not None else None,
                peer_removed=self.hold_kept_peer, connecting=self.release_kept_peer,
            )
            EventRoutes(self.events, api)
            self.control = ControlService(
                self.reactor, control, api, data_dir, control_fallback, control_max_connections
            )
            self.control.setName("control")
            self.control.setServiceParent(self)
        for keeper in self.keepers:
            keeper.setServiceParent(self)
        self._save_call: IDelayedCall | None = None
        self._state_loaded = False
        if data_dir is not None:
            network.peer_trusted.add(lambda channel: self._save_soon(SAVE_DELAY))
            # A block matters: it is written on the next turn (or at once by the control
            # API, which reports a failure to its caller).
            network.peer_blocked.add(lambda ip, identifier: self._save_soon(0))

    def when_listening(self) -> Deferred[IListeningPort]:
        """
        @return: a Deferred firing with the port peers connect to, once listening (see
            L{ListenerService.when_listening}).
        """
        return self.listener.when_listening()

    def add_part(
        self, name: str, part: IService, status: Callable[[], Any] | None = None
    ) -> None:
        """
        Add a capability to the node: C{part} (discovery, a bootstrap client...) becomes a
        named child service, started and stopped with the node, and C{status()} (a JSON-able
        value) appears under key C{name} of the control API's C{/api/status}.

        @param name: the part's name, unique in this node.
        @param part: the part's service.
        @param status: what the part reports, or C{None}.
        @raise ValueError: if the name is taken (by a part or a status key).
        """
        if name in self.namedServices:
            raise ValueError(f"the node already has a part named {name!r}")
        if status is not None and self.api is not None:
            self.api.add_status_section(name, status)
        part.setName(name)
        part.setServiceParent(self)

    def hold_kept_peer(self, channel: PeerChannel) -> int:
        """
        A peer was removed: the configured peers that keep it (see
        L{PeerConnectionService.keeps}) stop redialling it until L{release_kept_peer}.

        @param channel: the removed peer's channel.
        @return: how many configured peers are now held.
        """
        held = [k for k in self.keepers if not k.held and k.keeps(channel.peer, channel)]
        for keeper in held:
            keeper.hold()
        return len(held)

    def release_kept_peer(self, peer: IPeer) -> None:
        """
        A peer is dialled by hand: a held configured peer that keeps it is dialled again.

        @param peer: the peer dialled.
        """
        for keeper in self.keepers:
            if keeper.held and keeper.keeps(peer):
                keeper.release()

    def privilegedStartService(self) -> None:
        """
        Restore the saved state (once per process) and listen, as twistd does before the
        reactor runs.

        @raise Exception: the listener's error, e.g. L{CannotListenError} for a taken port.
        """
        # Saved blocks apply before the listening port opens.
        self._load_state_once()
        super().privilegedStartService()

    def startService(self) -> None:
        """
        Restore the saved state (once per process), listen, start keeping the configured peers
        and dial the known ones.

        @raise Exception: the listener's error, e.g. L{CannotListenError} for a taken port.
        """
        self._load_state_once()
        if self.api is not None:
            self.api.started = self.reactor.seconds()
        super().startService()
        if self.data_dir is not None and self.network.known_peers:
            started = self.network.dial_known_peers()
            self.log.info("dialling {count} known peers", count=started)

    def _load_state_once(self) -> None:
        if self.data_dir is not None and not self._state_loaded:
            self._state_loaded = True
            self.load_state()

    def _save_soon(self, delay: float) -> None:
        # Peers come and go in bursts: write once a second at most, not once per peer.
        if self._save_call is None:
            self._save_call = self.reactor.callLater(delay, self._save_now)
        elif self._save_call.getTime() > self.reactor.seconds() + delay:
            self._save_call.reset(delay)

    def _save_now(self) -> None:
        self._save_call = None
        self._save_or_log()

    def _save_or_log(self) -> None:
        try:
            self.save_state()
        except DataDirError as e:
            self.log.error("cannot save the node's state: {why}", why=str(e))

    def stopService(self) -> Deferred[None]:
        """
        Stop listening and keeping peers, then close every remaining channel (the network's
        C{disconnect_all}, which leaves it usable), then save the state.

        @return: a Deferred firing once the ports are closed and every connection is gone.
        """
        if self._save_call is not None and self._save_call.active():
            self._save_call.cancel()
        self._save_call = None
        d = maybeDeferred(super().stopService)
        d.addCallback(lambda _: self.network.disconnect_all("node stopping"))
        if self.data_dir is not None:
            d.addBoth(self._save_after_stop)
        return d

    def _save_after_stop(self, result: object) -> object:
        self._save_or_log()
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
        """
        Write the block list and the known peers to the data directory now (a save that was
        scheduled is then not needed).

        @raise DataDirError: if a file cannot be written (a full disk, a lost directory); the
            block list is written first, and when it fails the known peers are not written.
        """
        assert self.data_dir is not None
        if self._save_call is not None and self._save_call.active():
            self._save_call.cancel()
        self._save_call = None
        policy = self.network.policy
        self.data_dir.save_blocked(list(policy.blocked_ips), list(policy.blocked_identifiers))
        self.data_dir.save_known_peers(list(self.network.known_peers.values()))
