# -*- test-case-name: tests.test_task_runner -*-
"""
L{TaskRunner}: executes on a node the network tasks a bootstrap authority signed.

Every task goes through L{p2pnet_tx.tasks.verify_task} (the signature, against the configured
authority key) and L{p2pnet_tx.tasks.check_task} (time window, target, never executed
before) first.  A refused task is never executed: it is logged once and counted as
C{rejected.<cause>}.  The accepted ones act through the network's public API only.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pnet_tx._json import Invalid, loads
from p2pnet_tx.bootstrap.v1 import parse_peers
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataTransmissionPacket,
    NetworkTask,
    PureMessagePacket,
    encode_task,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.tasks import (
    AuthorityTask,
    ReplayCache,
    TaskRejected,
    TaskType,
    check_task,
    verify_task,
)

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network import PeerNetwork

__all__ = ["TaskRunner"]

_LOGGED_REJECTIONS = 1024
"""How many refused task ids are remembered, so that each is logged once."""


class TaskRunner:
    """
    Runs verified authority tasks on one network.

    @param network: the node's network.
    @param authority: the authority's public key; C{None} refuses every task as C{forged}
        (a node that trusts no authority).
    @param clock: the clock of the time window.
    @param replay: the ids already executed (a fresh cache by default).

    @ivar counters: C{executed}, C{executed.<TaskType name>} and C{rejected.<cause>}.
    """

    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        authority: Ed25519PublicKey | None,
        clock: IReactorTime,
        replay: ReplayCache | None = None,
    ) -> None:
        self._network = network
        self._authority = authority
        self._clock = clock
        self._replay = ReplayCache() if replay is None else replay
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.counters: Counter[str] = Counter()
        self._actions: dict[TaskType, Callable[[AuthorityTask], str]] = {
            TaskType.BLOCK_AND_REMOVE_PEER: self._block_and_remove,
            TaskType.BLOCK_IP: self._block_ip,
            TaskType.PING_PEER: self._ping,
            TaskType.DISCONNECT_PEER: self._disconnect,
            TaskType.AUTHORIZE_PEER: self._authorize,
            TaskType.BOOTSTRAP_INITIALIZATION: self._peer_list,
        }

    def status(self) -> dict[str, int]:
        """The counters, as C{/api/status} shows them (keys C{tasks.<counter>})."""
        return {f"tasks.{name}": count for name, count in sorted(self.counters.items())}

    def run_signed_task(self, signed: Any) -> str:
        """
        Verify and check a signed task, then execute it.

        @param signed: the parsed JSON C{{"task": ..., "signature": ...}} as received (from a
            bootstrap heartbeat, or a DataTransmit packet).
        @return: what was done, or why nothing was (C{"rejected: <cause>: <reason>"}).
        """
        try:
            if self._authority is None:
                raise TaskRejected("forged", "no authority key is configured on this node")
            task = verify_task(signed, self._authority)
            check_task(task, now=self._clock.seconds(), identifier=self._network.identifier,
                       replay=self._replay)
            action = self._actions.get(task.task_type)
            if action is None:
                raise TaskRejected("unsupported", f"{task.task_type.name} is not executed here")
            done = action(task)
        except TaskRejected as e:
            return self._rejected(signed, e)
        self.counters["executed"] += 1
        self.counters[f"executed.{task.task_type.name}"] += 1
        self.log.info("authority task {id} ({kind}): {done}", id=task.id,
                      kind=task.task_type.name, done=done)
        return done

    def task_packet_received(self, channel: PeerChannel, packet: DataTransmissionPacket) -> str:
        """
        Run a task a peer relayed in a Task C{DataTransmit} (the handler to give
        L{Distribution.set_task_runner<p2pnet_tx.distribution.Distribution.set_task_runner>}):
        its payload is the signed task's JSON, and it runs only if the authority signed it,
        whoever relayed it; anything else is refused like a forged task.

        @return: what was done, or why nothing was (see L{run_signed_task}).
        """
        try:
            signed = loads(packet.payload)
        except Invalid as e:
            return self._rejected({}, TaskRejected("malformed", f"from {channel.peer}: {e}"))
        return self.run_signed_task(signed)

    def reject_unverifiable(self, task: NetworkTask, reason: str) -> str:
        """
        Refuse a task whose signature this node cannot check (a .NET authority's PGP-signed
        tasks): never executed, logged once per distinct task and counted as
        C{rejected.unverifiable}.

        @param task: the task as received.
        @param reason: why it cannot be checked.
        @return: C{"rejected: unverifiable: <reason>"}.
        """
        digest = hashlib.sha256(encode_task(task)).hexdigest()[:32]
        reason = f"{task.task_type.name} task {digest}: {reason}"
        return self._rejected({"task": {"id": digest}}, TaskRejected("unverifiable", reason))

    def _rejected(self, signed: Any, error: TaskRejected) -> str:
        self.counters[f"rejected.{error.cause}"] += 1
        task = signed.get("task") if isinstance(signed, dict) else None
        task_id = task.get("id") if isinstance(task, dict) else None
        key = (error.cause, str(task_id)[:64])
        if key not in self._logged:
            self._logged[key] = None
            if len(self._logged) > _LOGGED_REJECTIONS:
                self._logged.popitem(last=False)
            self.log.warn("authority task refused ({cause}): {reason}", cause=error.cause,
                          reason=error.reason)
        return f"rejected: {error.cause}: {error.reason}"

    # -- Actions -------------------------------------------------------------------------------

    def _channels_of(self, identifier: str | None, ip: str | None = None) -> list[PeerChannel]:
        found = []
        for channel in self._network.active_peer_channels:
            peer = channel.peer
            if peer is None:
                continue
            if (identifier and peer.identifier == identifier) or (ip and peer.address == ip):
                found.append(channel)
        return found

    def _one_channel(self, task: AuthorityTask) -> tuple[str, list[PeerChannel]]:
        identifier = task.data.get("Identifier")
        if not identifier:
            raise TaskRejected("malformed", f"{task.task_type.name} needs data Identifier")
        return identifier, self._channels_of(identifier)

    def _block_and_remove(self, task: AuthorityTask) -> str:
        # With an identifier, the identifier is what is blocked: the address it came from may
        # be shared by other peers (one host, one NAT), whom an IP block would cut off too.
        identifier = task.data.get("Identifier") or None
        ip = _ip(task.data.get("IP"))
        if identifier is None and ip is None:
            raise TaskRejected("malformed", "BLOCK_AND_REMOVE_PEER needs Identifier and/or IP")
        if identifier == self._network.identifier:
            return "names this node: nothing to do"
        if identifier is not None:
            ip = None
        removed = self._channels_of(identifier, ip)
        for channel in removed:
            self._network.remove_peer(channel)
        self._network.block(ip=ip, identifier=identifier)
        return f"blocked {identifier or ip}, removed {len(removed)} channel(s)"

    def _block_ip(self, task: AuthorityTask) -> str:
        ip = _ip(task.data.get("IP"))
        if ip is None:
            raise TaskRejected("malformed", "BLOCK_IP needs data IP")
        dropped = self._network.block(ip=ip)
        return f"blocked {ip}, dropped {len(dropped)} channel(s)"

    def _ping(self, task: AuthorityTask) -> str:
        identifier, channels = self._one_channel(task)
        ping = PureMessagePacket(source_origin_identifier=self._network.identifier)
        sent = sum(1 for channel in channels if channel.send(ping) is not False)
        return f"pinged {identifier} on {sent} channel(s)"

    def _disconnect(self, task: AuthorityTask) -> str:
        identifier, channels = self._one_channel(task)
        for channel in channels:
            channel.close("disconnected by the authority")
        return f"disconnected {identifier} ({len(channels)} channel(s))"

    def _authorize(self, task: AuthorityTask) -> str:
        identifier, channels = self._one_channel(task)
        for channel in channels:
            self._network.elevate_peer_permission(channel)
        return f"trusted {identifier} ({len(channels)} channel(s))"

    def _peer_list(self, task: AuthorityTask) -> str:
        try:
            peers, skipped = parse_peers(loads(task.data.get("Peers", "").encode()))
        except (Invalid, ValueError) as e:
            raise TaskRejected("malformed", f"Peers is not a peer list: {e}") from None
        learned = [
            GenericPeer(p.ip, p.port, p.identifier)
            for p in peers
            if p.identifier != self._network.identifier
        ]
        self._network.process_peer_list(CollectionSharePacket(peers=learned))
        return f"learned {len(learned)} peer(s), skipped {skipped}"


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise TaskRejected("malformed", f"{value[:64]!r} is not an IP address") from None
