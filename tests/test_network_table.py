"""
Tests for L{p2pnet_tx.network.table}: the peer table on its own, with fake channels.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.network.table import PeerTable, host_of
from p2pnet_tx.peer import GenericPeer

from .network_fakes import FakeChannel


def active(table: PeerTable, peer: GenericPeer, inbound_host: str | None = "10.0.0.1",
           outbound: bool = False) -> FakeChannel:
    """A channel connected and accepted in C{table}."""
    channel = FakeChannel(peer, host=peer.address)
    if outbound:
        table.mark_outbound(channel)
    table.connect(channel, None if outbound else inbound_host)
    table.activate(channel)
    return channel


class PeerTableIndexTests(SynchronousTestCase):
    """Active channels are found by identifier or by address and port, without a scan."""

    def setUp(self) -> None:
        self.table = PeerTable(max_known_peers=10)

    def test_channel_for_by_identifier_or_address(self) -> None:
        """A peer is found by its identifier, or by its address and port when they differ."""
        one = active(self.table, GenericPeer("10.0.0.1", 9000, "one"))
        self.assertIs(self.table.channel_for(GenericPeer("10.9.9.9", 1, "one")), one)
        self.assertIs(self.table.channel_for(GenericPeer("10.0.0.1", 9000)), one)
        self.assertIsNone(self.table.channel_for(GenericPeer("10.0.0.1", 9001, "two")))

    def test_active_in_arrival_order(self) -> None:
        """active lists channels as they arrived; it is a snapshot, not the table's own."""
        channels = [active(self.table, GenericPeer("10.0.0.1", 9000 + n, f"p{n}"))
                    for n in range(3)]
        snapshot = self.table.active
        self.assertEqual(snapshot, channels)
        snapshot.clear()
        self.assertEqual(self.table.active, channels)

    def test_duplicate_of(self) -> None:
        """Another channel to the same peer is a duplicate; the channel itself is not."""
        one = active(self.table, GenericPeer("10.0.0.1", 9000, "one"))
        newcomer = FakeChannel()
        self.assertIs(self.table.duplicate_of(newcomer, GenericPeer("10.0.0.2", 1, "one")), one)
        self.assertIs(self.table.duplicate_of(newcomer, GenericPeer("10.0.0.1", 9000)), one)
        self.assertIsNone(self.table.duplicate_of(one, one.peer))

    def test_deactivate_uses_the_keys_it_indexed(self) -> None:
        """A peer attribute changed after indexing does not leave a stale index entry."""
        one = active(self.table, GenericPeer("10.0.0.1", 9000, "one"))
        one.peer = GenericPeer("10.0.0.5", 5, "renamed")
        self.assertTrue(self.table.deactivate(one))
        self.assertIsNone(self.table.channel_for(GenericPeer("10.0.0.1", 9000, "one")))
        self.assertFalse(self.table.deactivate(one))

    def test_trusted(self) -> None:
        """trusted lists the active channels whose peer is trusted now."""
        one = active(self.table, GenericPeer("10.0.0.1", 1, "one"))
        two = active(self.table, GenericPeer("10.0.0.1", 2, "two"))
        two.is_trusted = True
        self.assertEqual(self.table.trusted(), [two])
        self.assertEqual(self.table.active, [one, two])


class PeerTableCountsTests(SynchronousTestCase):
    """Inbound connections count per address and as pending until their handshake is done."""

    def setUp(self) -> None:
        self.table = PeerTable(max_known_peers=10)

    def test_inbound_counts(self) -> None:
        """Inbound connections count against their address and as pending; outbound do not."""
        a, b, out = FakeChannel(), FakeChannel(), FakeChannel()
        self.table.connect(a, "10.0.0.7")
        self.table.connect(b, "10.0.0.7")
        self.table.mark_outbound(out)
        self.table.connect(out, None)
        self.assertEqual((self.table.inbound_from("10.0.0.7"), self.table.inbound_count,
                          self.table.pending_count, self.table.outbound_count), (2, 2, 2, 1))
        self.table.handshake_done(a)
        self.assertEqual(self.table.pending, [b])
        self.table.remove(b)
        self.assertEqual((self.table.inbound_from("10.0.0.7"), self.table.pending_count), (1, 0))

    def test_inbound_and_pending_oldest_first(self) -> None:
        """
        Eviction asks for the inbound channels with their address and the pending ones, in
        order of arrival; a channel whose handshake is done leaves the pending ones only.
        """
        a, b, c, out = FakeChannel(), FakeChannel(), FakeChannel(), FakeChannel()
        self.table.mark_outbound(out)
        self.table.connect(c, "10.0.0.3")
        self.table.connect(out, None)
        self.table.connect(a, "10.0.0.1")
        self.table.connect(b, "10.0.0.2")
        self.table.handshake_done(a)
        self.assertEqual(self.table.inbound(), [(c, "10.0.0.3"), (a, "10.0.0.1"),
                                                (b, "10.0.0.2")])
        self.assertEqual(list(self.table.pending_hosts()), [(c, "10.0.0.3"), (b, "10.0.0.2")])
        self.assertEqual(self.table.pending, [c, b])
        self.assertEqual([self.table.is_pending(x) for x in (a, b, c, out)],
                         [False, True, True, False])
        self.table.remove(c)
        self.assertEqual(self.table.inbound(), [(a, "10.0.0.1"), (b, "10.0.0.2")])
        self.assertEqual(list(self.table.pending_hosts()), [(b, "10.0.0.2")])

    def test_matching(self) -> None:
        """matching finds connected channels by address or by identifier."""
        one = active(self.table, GenericPeer("10.0.0.1", 1, "one"))
        two = active(self.table, GenericPeer("10.0.0.2", 2, "two"))
        self.assertEqual(self.table.matching("10.0.0.2", None), [two])
        self.assertEqual(self.table.matching(None, "one"), [one])
        self.assertEqual(self.table.matching("10.0.0.3", "three"), [])


class PeerTableRemoveTests(SynchronousTestCase):
    """remove() leaves no trace of a channel, whatever stage it reached."""

    def test_remove_leaves_no_trace(self) -> None:
        """After remove, no collection of the table names the channel; the peer may return."""
        table = PeerTable(max_known_peers=10)
        peer = GenericPeer("10.0.0.1", 9000, "one")
        channel = active(table, peer, inbound_host="10.0.0.1")
        table.mark_not_listening(channel)
        table.share(channel)
        self.assertTrue(table.holds(channel))
        self.assertTrue(table.remove(channel))
        self.assertFalse(table.holds(channel))
        self.assertEqual((table.inbound_from("10.0.0.1"), list(table.shared())), (0, []))
        self.assertIsNone(table.channel_for(peer))
        self.assertFalse(table.remove(channel))
        again = active(table, peer)
        self.assertIs(table.channel_for(peer), again)

    def test_remove_outbound_before_connection(self) -> None:
        """An outbound channel whose connection never came is forgotten too."""
        table = PeerTable(max_known_peers=10)
        channel = FakeChannel()
        table.mark_outbound(channel)
        self.assertFalse(table.remove(channel))
        self.assertEqual(table.outbound_count, 0)
        self.assertFalse(table.holds(channel))


class KnownPeersTests(SynchronousTestCase):
    """Known peers are bounded: the oldest is forgotten first; remembering again refreshes."""

    def test_bounded_and_refreshed(self) -> None:
        """Past max_known_peers the least recently remembered peer goes."""
        table = PeerTable(max_known_peers=2)
        a, b, c = (GenericPeer("10.0.0.1", n) for n in (1, 2, 3))
        table.remember(a)
        table.remember(b)
        table.remember(a)
        table.remember(c)
        self.assertEqual(list(table.known_peers.values()), [a, c])
        self.assertTrue(table.knows(GenericPeer("10.0.0.1", 3, "any")))
        table.forget(a)
        self.assertFalse(table.knows(a))


class HostOfTests(SynchronousTestCase):
    """A channel's host is its peer's address, or its connection's, normalised."""

    def test_host_of(self) -> None:
        """Without a peer the transport's address is used; ::ffff:a.b.c.d is a.b.c.d."""
        self.assertEqual(host_of(FakeChannel(GenericPeer("10.0.0.9", 1))), "10.0.0.9")
        self.assertEqual(host_of(FakeChannel(host="::ffff:10.1.2.3")), "10.1.2.3")
