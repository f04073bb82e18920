# -*- test-case-name: tests.test_channel_lifecycle -*-
"""
Tests for L{p2pnet_tx.channel.lifecycle}: the channel's lifecycle machine, alone against a
recording channel, and the rule that no timer outlives the state that owns it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits, PeerChannel
from p2pnet_tx.channel.lifecycle import LifecycleCore, new_lifecycle
from p2pnet_tx.errors import HandshakeTimeout, TrustRefused
from p2pnet_tx.packets import IdentifierPacket, PureMessagePacket
from p2pnet_tx.wire import get_codec


class DummyChannel:
    """The actions of a channel, recorded (wormhole's Dummy): what the machine asks for."""

    def __init__(self, trust_protocol: Any = None, limits: ChannelLimits | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.limits = limits or ChannelLimits()
        self._trust_protocol = trust_protocol or (lambda channel: Deferred())
        self.peer = "peer"

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_lifecycle_"):
            raise AttributeError(name)
        action = name[len("_lifecycle_"):]
        return lambda *args, **kwargs: self.events.append((action, *args, *kwargs.values()))

    def names(self) -> list[str]:
        return [event[0] for event in self.events]


class LifecycleMachineTests(SynchronousTestCase):
    """The machine alone: each input in each state asks the channel for the right actions."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.cancelled: list[Deferred[bool]] = []
        self.decision: Deferred[bool] = Deferred(self.cancelled.append)
        self.channel = DummyChannel(lambda channel: self.decision)
        self.machine = new_lifecycle(LifecycleCore(self.channel, self.clock))  # type: ignore
        self.machine.connected()

    def test_connected_opens(self) -> None:
        """Connecting opens the channel and sets the handshake deadline."""
        self.assertEqual(self.channel.names(), ["opened"])

    def test_handshake_success(self) -> None:
        """The trust protocol's True trusts the peer and cancels the deadline."""
        self.machine.start_handshake()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.decision.callback(True)
        self.assertEqual(self.channel.names(), ["opened", "trusted"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_handshake_refusal_aborts(self) -> None:
        """The trust protocol's False records the refusal, then aborts."""
        self.machine.start_handshake()
        self.decision.callback(False)
        self.assertEqual(self.channel.names(), ["opened", "handshake_failed", "goodbye"])
        [(_, error)] = [e for e in self.channel.events if e[0] == "handshake_failed"]
        self.assertIsInstance(error, TrustRefused)
        self.assertEqual(self.channel.events[-1], ("goodbye", f"trust refused: {error}", False))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_non_bool_verdict(self) -> None:
        """A verdict that is not a bool refuses the peer."""
        self.machine.start_handshake()
        self.decision.callback("yes")
        self.assertEqual(self.channel.names(), ["opened", "handshake_failed", "goodbye"])
        [(_, error)] = [e for e in self.channel.events if e[0] == "handshake_failed"]
        self.assertIn("not a bool", str(error))

    def test_deadline(self) -> None:
        """The deadline runs from the connection, not from the handshake's start."""
        self.clock.advance(4)
        self.machine.expect_identity()
        self.clock.advance(4)
        self.machine.start_handshake()
        self.clock.advance(1.9)
        self.assertNotIn("handshake_failed", self.channel.names())
        self.clock.advance(0.1)
        [(_, error)] = [e for e in self.channel.events if e[0] == "handshake_failed"]
        self.assertIsInstance(error, HandshakeTimeout)
        self.assertEqual(self.cancelled, [self.decision])  # cancelled with its state

    def test_untrust_and_trust_again(self) -> None:
        """A trusted peer can be untrusted and trusted again."""
        self.machine.trust()
        self.machine.untrust()
        self.machine.trust()
        self.assertEqual(self.channel.names(), ["opened", "trusted", "untrusted", "trusted"])

    def test_close_then_lost(self) -> None:
        """close() says goodbye once; the loss that follows closes; later inputs do nothing."""
        self.machine.close("bye")
        self.machine.close("again")
        self.machine.abort("and again")
        self.machine.trust()
        self.machine.connection_lost("gone")
        self.machine.connection_lost("gone twice")
        self.assertEqual(self.channel.events[1:], [("goodbye", "bye", True), ("closed", "gone")])

    def test_lost_without_goodbye(self) -> None:
        """A connection lost while open reports closing (to the owner) then closed."""
        self.machine.trust()
        self.machine.connection_lost("reset")
        self.assertEqual(self.channel.names()[-2:], ["closing", "closed"])

    def test_peer_left(self) -> None:
        """A peer's Disconnect closes without a goodbye of ours."""
        self.machine.peer_left("disconnected by peer")
        self.assertEqual(self.channel.events[-1], ("peer_left", "disconnected by peer"))

    def test_stuck_close_is_aborted(self) -> None:
        """A close that does not drain within close_timeout is aborted."""
        self.machine.close("bye")
        self.clock.advance(self.channel.limits.close_timeout)
        self.assertEqual(self.channel.names()[-1], "stuck")
        self.machine.connection_lost("aborted")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_trust_while_awaiting_identity_ignored(self) -> None:
        """Before the peer said who it is, trust() means nothing."""
        self.machine.expect_identity()
        self.machine.trust()
        self.assertNotIn("trusted", self.channel.names())

    def test_synchronous_verdict(self) -> None:
        """A trust protocol that decides at once is handled after the state is entered."""
        channel = DummyChannel(lambda channel: succeed(True))
        machine = new_lifecycle(LifecycleCore(channel, self.clock))  # type: ignore
        machine.connected()
        machine.start_handshake()
        self.assertEqual(channel.names(), ["opened", "trusted"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


def quiet_limits(**changes: Any) -> ChannelLimits:
    """Limits without the idle, keep-alive and partial-frame deadlines, so that the clock holds
    only the timers of the lifecycle's states."""
    return ChannelLimits(idle_timeout=None, keepalive_interval=None,
                         partial_frame_timeout=None, **changes)


def identity(identifier: str = "them") -> bytes:
    return get_codec("p2pnet").encode(
        IdentifierPacket("connect", 9000, "", source_origin_identifier=identifier)
    )


class EveryInputEveryStateTests(SynchronousTestCase):
    """No public method of a channel can raise Automat's NoTransition, in any state."""

    def test_every_input_is_defined_in_every_state(self) -> None:
        """Each state has a transition for each input, but "connected" (which comes once)."""
        from p2pnet_tx.channel import lifecycle

        automaton = lifecycle._builder._automaton
        transitions = list(automaton.allTransitions())
        defined = {(old.name, name) for old, name, _, _ in transitions}
        states = {old.name for old, _, _, _ in transitions}
        missing = {
            (state, name) for state in states for name in automaton.inputAlphabet()
            if (state, name) not in defined and not (name == "connected" and state != "connecting")
        }
        self.assertEqual(missing, set())

    def test_disconnect_before_connection(self) -> None:
        """A Disconnect handled on a channel not yet connected changes nothing."""
        channel = PeerChannel("p2pnet", clock=Clock())
        channel.peer_disconnected(None)  # type: ignore[arg-type]
        self.assertIsNone(channel.close_reason)


class NoTimerOutlivesItsStateTests(SynchronousTestCase):
    """
    Each state that owns a timer (awaiting identity and handshaking: the deadline; closing: the
    close abort) cancels it on every way out, so after each transition the clock holds exactly
    the timers of the state entered.
    """

    def channel(self, trust_protocol: Any = None, await_identity: bool = False) -> PeerChannel:
        self.clock = Clock()
        self.cancelled: list[Deferred[bool]] = []
        self.decision: Deferred[bool] = Deferred(self.cancelled.append)
        channel = PeerChannel(
            "p2pnet", trust_protocol=trust_protocol or (lambda channel: self.decision),
            clock=self.clock, limits=quiet_limits(), await_identity=await_identity,
        )
        self.transport = StringTransport()
        channel.makeConnection(self.transport)
        return channel

    def timers(self) -> list[str]:
        return sorted(call.func.__qualname__ for call in self.clock.getDelayedCalls())

    def assert_deadline_only(self) -> None:
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 10.0)

    def test_awaiting_identity_to_handshaking(self) -> None:
        """The identity deadline is replaced by the handshake's, at the same time."""
        channel = self.channel(await_identity=True)
        self.assert_deadline_only()
        self.clock.advance(3)
        channel.dataReceived(identity())
        self.assert_deadline_only()

    def test_awaiting_identity_to_untrusted(self) -> None:
        """Identified with no trust protocol: no deadline is left."""
        channel = PeerChannel("p2pnet", clock=Clock(), limits=quiet_limits(), await_identity=True)
        self.clock = channel.clock  # type: ignore[assignment]
        channel.makeConnection(StringTransport())
        self.assert_deadline_only()
        channel.dataReceived(identity())
        self.assertEqual(self.timers(), [])

    def test_awaiting_identity_to_closing(self) -> None:
        """Closing while awaiting identity leaves only the close timer."""
        channel = self.channel(await_identity=True)
        channel.close("bye")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(),
                         channel.limits.close_timeout)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.timers(), [])

    def test_awaiting_identity_to_aborting(self) -> None:
        """A first packet that is not an Identity aborts: no timer at all."""
        channel = self.channel(await_identity=True)
        channel.dataReceived(get_codec("p2pnet").encode(PureMessagePacket("hello")))
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(channel.close_reason.startswith("misbehaving"))
        self.assertEqual(self.timers(), [])

    def test_awaiting_identity_to_closed(self) -> None:
        """A connection lost while awaiting identity leaves no timer."""
        channel = self.channel(await_identity=True)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.timers(), [])

    def test_handshaking_to_trusted(self) -> None:
        """Trust cancels the deadline."""
        channel = self.channel()
        self.assert_deadline_only()
        self.decision.callback(True)
        self.assertTrue(channel.is_trusted)
        self.assertEqual(self.timers(), [])

    def test_handshaking_to_trusted_by_the_application(self) -> None:
        """Trust given by the application cancels the deadline and the pending protocol."""
        channel = self.channel()
        channel.trust()
        self.assertEqual(self.timers(), [])
        self.assertEqual(self.cancelled, [self.decision])

    def test_handshaking_refused(self) -> None:
        """A refusal aborts: the deadline goes with it."""
        channel = self.channel()
        self.decision.callback(False)
        self.assertEqual(channel.close_reason.split(":")[0], "trust refused")
        self.assertEqual(self.timers(), [])

    def test_handshaking_timed_out(self) -> None:
        """The deadline firing aborts; the pending protocol is cancelled; nothing is left."""
        channel = self.channel()
        self.clock.advance(10)
        self.assertEqual(channel.close_reason, "handshake timeout")
        self.assertEqual(self.cancelled, [self.decision])
        self.assertEqual(self.timers(), [])

    def test_handshaking_to_closing_to_closed(self) -> None:
        """close() during the handshake swaps the deadline for the close timer, and the loss of
        the connection takes that too."""
        channel = self.channel()
        channel.close("bye")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), channel.limits.close_timeout)
        self.assertEqual(self.cancelled, [self.decision])
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.timers(), [])

    def test_handshaking_to_closed(self) -> None:
        """A connection lost during the handshake leaves no timer."""
        channel = self.channel()
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.timers(), [])
        self.assertEqual(self.cancelled, [self.decision])

    def test_closing_stuck_then_closed(self) -> None:
        """The close timer fires once, aborts, and is gone."""
        channel = self.channel()
        self.decision.callback(True)
        channel.close("bye")
        self.clock.advance(channel.limits.close_timeout)
        self.assertEqual(self.timers(), [])
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.timers(), [])


class DiagramTests(SynchronousTestCase):
    """docs/state-machines/channel.dot draws the machine as it is."""

    def test_diagram_matches_machine(self) -> None:
        """Every state change of the machine is an edge of the diagram, and nothing else is."""
        import re
        from pathlib import Path

        from p2pnet_tx.channel import lifecycle

        machine: dict[tuple[str, str], set[str]] = {}
        # Automat keeps the transition table on the builder; reading it here is the only way to
        # hold the drawing to the code.
        for old, name, new, _ in lifecycle._builder._automaton.allTransitions():
            if old.name != new.name:
                machine.setdefault((old.name, new.name), set()).add(name)
        dot = (Path(__file__).resolve().parent.parent / "docs" / "state-machines"
               / "channel.dot").read_text()
        drawn = {
            (old, new): set(label.split(" / "))
            for old, new, label in re.findall(r'(\w+) -> (\w+) \[label="([^"]+)"\]', dot)
        }
        self.assertEqual(drawn, machine)
