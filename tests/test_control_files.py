"""
Tests for L{p2pnet_tx.control_files}, L{p2pnet_tx.control_events} and
L{p2pnet_tx.event_log}: the file-transfer endpoints and the event stream of the control API,
served in memory with treq's StubTreq over a fake of the node's file transfers
(L{tests.files_fakes}).
"""

from __future__ import annotations

import io
import json
import os
import socket
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.control import ControlAPI, MessageLog
from p2pnet_tx.control_events import MAX_EVENT_WAIT, EventRoutes
from p2pnet_tx.control_files import (
    MAX_RECIPIENTS,
    FileRoutes,
    serve_file_transfers,
    transfers_version,
)
from p2pnet_tx.event_log import EventLog
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.service import PeerNetworkService
from p2pnet_tx.trust import always_trust
from tests.files_fakes import FakeFileTransfers

TOKEN = "tok"
AUTH = {b"Authorization": [b"Bearer " + TOKEN.encode()]}


class FileRoutesTests(SynchronousTestCase):
    """POST /api/files, GET /api/transfers[/<id>], DELETE /api/transfers/<id>, /metrics."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.api = ControlAPI(self.network, TOKEN, MessageLog(self.reactor), "tcp:8051")
        self.files = FakeFileTransfers(["peer-a", "peer-b"], clock=self.reactor)
        self.events = EventLog(self.reactor)
        self.routes = FileRoutes(self.files, self.api, self.reactor, self.events)
        EventRoutes(self.events, self.api)
        self.http = StubTreq(self.api)
        self.path = os.path.abspath(self.mktemp())
        with open(self.path, "wb") as f:
            f.write(b"x" * 1000)

    def start(self, method: str, path: str, body: Any = None) -> Any:
        kwargs: dict[str, Any] = {"headers": AUTH}
        if body is not None:
            kwargs["data" if isinstance(body, bytes) else "json"] = body
        return self.http.request(method, "http://127.0.0.1" + path, **kwargs)

    def answer(self, d: Any) -> tuple[int, Any]:
        self.http.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        return response.code, json.loads(content)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.answer(self.start(method, path, body))

    # -- POST /api/files --------------------------------------------------------------------------

    def test_send_to_every_trusted_peer(self) -> None:
        """Without "to", the file is offered to every trusted peer: one transfer each."""
        code, body = self.call("POST", "/api/files", {"path": self.path})
        self.assertEqual(code, 200)
        self.assertEqual(self.files.sent, [(self.path, None)])
        self.assertEqual([t["peer"] for t in body["transfers"]], ["peer-a", "peer-b"])
        self.assertEqual({t["state"] for t in body["transfers"]}, {"offered"})
        self.assertEqual(body["transfers"][0]["size"], 1000)

    def test_send_to_chosen_peers(self) -> None:
        """"to" is one identifier or a list; duplicates are dropped, order kept."""
        self.call("POST", "/api/files", {"path": self.path, "to": "peer-b"})
        self.call("POST", "/api/files", {"path": self.path, "to": ["peer-b", "peer-a", "peer-b"]})
        self.call("POST", "/api/files", {"path": self.path, "to": None})
        self.assertEqual([to for _, to in self.files.sent],
                         [["peer-b"], ["peer-b", "peer-a"], None])

    def test_unknown_or_untrusted_peer(self) -> None:
        """A recipient that is not a trusted peer, or no trusted peer at all, is a 409 whose
        error says so."""
        code, body = self.call("POST", "/api/files", {"path": self.path, "to": "mallory"})
        self.assertEqual(code, 409)
        self.assertIn("'mallory' is not a trusted peer", body["error"])
        self.files.trusted = []
        code, body = self.call("POST", "/api/files", {"path": self.path})
        self.assertEqual(code, 409)
        self.assertIn("no trusted peer", body["error"])

    def test_hostile_bodies(self) -> None:
        """Wrong types, missing or empty fields, and a body that is not an object are 400s
        with an error that says what to give; FileTransfers is never called."""
        for body in (b"{nope", b"[]", b'"path"', {}, {"path": None}, {"path": 5},
                     {"path": ["/etc/passwd"]}, {"path": ""}, {"path": {"a": 1}},
                     {"path": self.path, "to": 5}, {"path": self.path, "to": []},
                     {"path": self.path, "to": [5]}, {"path": self.path, "to": [""]},
                     {"path": self.path, "to": ["x" * 257]},
                     {"path": self.path, "to": {"peer-a": True}},
                     {"path": self.path, "to": [["peer-a"]]}):
            code, answer = self.call("POST", "/api/files", body)
            self.assertEqual(code, 400, body)
            self.assertIsInstance(answer["error"], str)
        self.assertEqual(self.files.sent, [])

    def test_bad_paths(self) -> None:
        """A relative path, a missing file, a directory, a device, a FIFO, a socket, a path
        with a NUL or over 4096 characters: each a 400 naming the problem."""
        fifo = os.path.abspath(self.mktemp())
        os.mkfifo(fifo)
        sock_path = os.path.abspath(self.mktemp())
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(sock_path)
        cases = [
            ("relative.txt", "must be absolute"),
            ("../../etc/passwd", "must be absolute"),
            (self.path + ".missing", "no such file"),
            (os.path.dirname(self.path), "is a directory"),
            ("/dev/zero", "not a regular file"),
            (fifo, "not a regular file"),
            (sock_path, "not a regular file"),
            (self.path + "\x00x", "NUL"),
            ("/" + "a" * 5000, "over 4096"),
        ]
        for path, why in cases:
            code, answer = self.call("POST", "/api/files", {"path": path})
            self.assertEqual(code, 400, path)
            self.assertIn(why, answer["error"], path)
        self.assertEqual(self.files.sent, [])

    def test_unreadable_file(self) -> None:
        """A file the node may not read is a 400 that says so (FileTransfers raises it)."""
        def refuse(path: str, to: Any = None) -> Any:
            raise PermissionError(f"the node may not read {path}")

        self.files.send_file = refuse  # type: ignore[method-assign]
        code, answer = self.call("POST", "/api/files", {"path": self.path})
        self.assertEqual(code, 400)
        self.assertIn("may not read", answer["error"])

    def test_huge_to_list(self) -> None:
        """A "to" of more than MAX_RECIPIENTS identifiers is refused before any is looked
        at; one of exactly MAX_RECIPIENTS is looked at (and here refused as unknown)."""
        code, answer = self.call("POST", "/api/files",
                                 {"path": self.path, "to": ["p"] * (MAX_RECIPIENTS + 1)})
        self.assertEqual(code, 400)
        self.assertIn(f"over {MAX_RECIPIENTS}", answer["error"])
        self.assertEqual(self.files.sent, [])
        names = [f"p{i}" for i in range(MAX_RECIPIENTS)]
        code, _ = self.call("POST", "/api/files", {"path": self.path, "to": names})
        self.assertEqual(code, 409)
        self.assertEqual(len(self.files.sent[0][1]), MAX_RECIPIENTS)

    # -- GET /api/transfers -----------------------------------------------------------------------

    def test_list_and_get(self) -> None:
        """The list is newest first, with a version; one transfer is served by its id."""
        incoming = self.files.add(direction="receive", peer="peer-b", name="in.bin", size=5)
        _, posted = self.call("POST", "/api/files", {"path": self.path, "to": "peer-a"})
        code, body = self.call("GET", "/api/transfers")
        self.assertEqual(code, 200)
        self.assertEqual([t["id"] for t in body["transfers"]],
                         [posted["transfers"][0]["id"], incoming.id])
        self.assertEqual(body["version"], transfers_version(self.files.transfers()))
        code, body = self.call("GET", f"/api/transfers/{incoming.id}")
        self.assertEqual((code, body["name"], body["direction"]), (200, "in.bin", "receive"))

    def test_bad_and_unknown_ids(self) -> None:
        """An id that is not hex is a 400; an unknown one a 404; for GET and DELETE."""
        for method in ("GET", "DELETE"):
            code, answer = self.call(method, "/api/transfers/0123456789ab")
            self.assertEqual(code, 404)
            self.assertIn("no transfer 0123456789ab", answer["error"])
            for bad in ("zz", "12%2034", "%1b%5b2J", "x" * 100, "-1"):
                code, answer = self.call(method, f"/api/transfers/{bad}")
                self.assertEqual(code, 400, bad)
                self.assertIn("not a transfer id", answer["error"])
                self.assertNotIn("\x1b", answer["error"])

    def test_bad_query(self) -> None:
        """wait, after and state that are not what they should be are 400s."""
        transfer = self.files.add(direction="send", peer="peer-a", name="a", size=10)
        for query in ("wait=x", "wait=-1", "wait=nan", "wait=inf", "after=x", "after=-3",
                      "wait=1&wait=2", "state=%ff"):
            code, answer = self.call("GET", f"/api/transfers/{transfer.id}?{query}")
            self.assertEqual(code, 400, query)
            self.assertIsInstance(answer["error"], str)
        code, _ = self.call("GET", "/api/transfers?wait=zz")
        self.assertEqual(code, 400)

    def test_wait_for_one_transfer(self) -> None:
        """?wait=S&after=DONE holds the request until the transfer changes, then answers
        with it at once; nothing is left waiting."""
        transfer = self.files.add(direction="send", peer="peer-a", name="a", size=10,
                                  state="sending", done=2)
        d = self.start("GET", f"/api/transfers/{transfer.id}?wait=10&after=2&state=sending")
        self.http.flush()
        self.assertNoResult(d)
        self.assertEqual(self.routes.waiting, 1)
        transfer.move(done=6)
        code, body = self.answer(d)
        self.assertEqual((code, body["done"]), (200, 6))
        self.assertEqual(self.routes.waiting, 0)
        self.assertEqual(len(transfer.changed), 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_wait_answers_at_once_when_behind(self) -> None:
        """A caller whose figures are old (done or state differ) or whose transfer has
        ended is answered at once."""
        transfer = self.files.add(direction="send", peer="peer-a", name="a", size=10,
                                  state="paused", done=4)
        for query in ("after=3", "after=4&state=sending", "after=0"):
            d = self.start("GET", f"/api/transfers/{transfer.id}?wait=10&{query}")
            self.assertEqual(self.answer(d)[0], 200, query)
        self.files.finish(transfer, "failed", reason="disk full")
        d = self.start("GET", f"/api/transfers/{transfer.id}?wait=10&after=4&state=failed")
        self.assertEqual(self.answer(d)[1]["state"], "failed")
        self.assertEqual(self.routes.waiting, 0)

    def test_wait_times_out(self) -> None:
        """With no change, the wait ends after S seconds (cut to MAX_EVENT_WAIT) with the
        transfer as it is."""
        transfer = self.files.add(direction="send", peer="peer-a", name="a", size=10)
        d = self.start("GET", f"/api/transfers/{transfer.id}?wait=1000&after=0&state=offered")
        self.http.flush()
        self.reactor.advance(MAX_EVENT_WAIT - 0.1)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        self.assertEqual(self.answer(d)[1]["state"], "offered")
        self.assertEqual(len(transfer.changed), 0)

    def test_client_gone_stops_waiting(self) -> None:
        """A long poll whose client goes away stops observing and cancels its timer."""
        transfer = self.files.add(direction="send", peer="peer-a", name="a", size=10)
        d = self.start("GET", f"/api/transfers/{transfer.id}?wait=10&after=0&state=offered")
        self.http.flush()
        self.assertEqual(len(transfer.changed), 1)
        d.cancel()
        self.http.flush()
        self.failureResultOf(d)
        self.assertEqual(len(transfer.changed), 0)
        self.assertEqual(self.routes.waiting, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_wait_for_the_list(self) -> None:
        """GET /api/transfers?wait=S&version=V waits while the list is at version V, and
        answers when any transfer moves, or a new one starts."""
        a = self.files.add(direction="send", peer="peer-a", name="a", size=10)
        _, listed = self.call("GET", "/api/transfers")
        d = self.start("GET", f"/api/transfers?wait=10&version={listed['version']}")
        self.http.flush()
        self.assertNoResult(d)
        a.move(done=3, state="sending")
        _, body = self.answer(d)
        self.assertNotEqual(body["version"], listed["version"])
        self.assertEqual(body["transfers"][0]["done"], 3)
        d = self.start("GET", f"/api/transfers?wait=10&version={body['version']}")
        self.http.flush()
        self.assertNoResult(d)
        self.call("POST", "/api/files", {"path": self.path, "to": "peer-b"})
        self.assertEqual(len(self.answer(d)[1]["transfers"]), 2)
        d = self.start("GET", "/api/transfers?wait=10&version=stale")
        self.assertEqual(self.answer(d)[0], 200)
        self.assertEqual(self.routes.waiting, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    # -- DELETE /api/transfers/<id> ---------------------------------------------------------------

    def test_cancel(self) -> None:
        """DELETE cancels a transfer and answers with it; a finished one is left alone."""
        _, posted = self.call("POST", "/api/files", {"path": self.path, "to": "peer-a"})
        transfer_id = posted["transfers"][0]["id"]
        code, body = self.call("DELETE", f"/api/transfers/{transfer_id}")
        self.assertEqual((code, body["state"], body["cancelled_now"]), (200, "cancelled", True))
        code, body = self.call("DELETE", f"/api/transfers/{transfer_id}")
        self.assertEqual((code, body["state"], body["cancelled_now"]), (200, "cancelled", False))
        done = self.files.add(direction="receive", peer="peer-b", name="b", size=1)
        self.files.finish(done)
        code, body = self.call("DELETE", f"/api/transfers/{done.id}")
        self.assertEqual((code, body["state"], body["cancelled_now"]), (200, "done", False))
        code, _ = self.call("DELETE", "/api/transfers")
        self.assertEqual(code, 404)
        code, _ = self.call("PUT", "/api/transfers/" + transfer_id)
        self.assertEqual(code, 405)

    # -- Events -----------------------------------------------------------------------------------

    def test_events_recorded_and_served(self) -> None:
        """Each transfer event becomes an event of the log: kind file.<kind>, with the
        transfer; GET /api/events lists them after since=N."""
        incoming = self.files.add(direction="receive", peer="peer-b", name="in.bin", size=5,
                                  state="receiving")
        self.files.finish(incoming)
        _, posted = self.call("POST", "/api/files", {"path": self.path, "to": "peer-a"})
        self.call("DELETE", f"/api/transfers/{posted['transfers'][0]['id']}")
        code, body = self.call("GET", "/api/events")
        self.assertEqual(code, 200)
        self.assertEqual([e["kind"] for e in body["events"]], ["file.received", "file.cancelled"])
        self.assertEqual(body["events"][0]["transfer"]["name"], "in.bin")
        self.assertEqual(body["events"][0]["seq"], 1)
        self.assertEqual(body["last"], 2)
        code, body = self.call("GET", "/api/events?since=1")
        self.assertEqual([e["seq"] for e in body["events"]], [2])
        for query in ("since=x", "since=-1", "wait=no"):
            self.assertEqual(self.call("GET", f"/api/events?{query}")[0], 400, query)

    def test_events_long_poll(self) -> None:
        """GET /api/events?since=N&wait=S waits for the next event, or S seconds."""
        d = self.start("GET", "/api/events?since=0&wait=5")
        self.http.flush()
        self.assertNoResult(d)
        transfer = self.files.add(direction="receive", peer="peer-b", name="x", size=1)
        self.files.finish(transfer, "refused", reason="too big")
        _, body = self.answer(d)
        self.assertEqual([e["kind"] for e in body["events"]], ["file.refused"])
        self.assertEqual(body["events"][0]["transfer"]["reason"], "too big")
        d = self.start("GET", "/api/events?since=1&wait=5")
        self.http.flush()
        self.reactor.advance(5)
        self.assertEqual(self.answer(d)[1]["events"], [])
        self.assertEqual(self.events.waiting, 0)

    def test_event_log_bounded(self) -> None:
        """The log keeps the last max_events; numbers go on."""
        log = EventLog(self.reactor, max_events=3)
        for n in range(5):
            log.record("file.sent", n=n)
        self.assertEqual([e.seq for e in log.since(0)], [3, 4, 5])
        self.assertEqual(log.since(0)[0].to_json(),
                         {"seq": 3, "kind": "file.sent", "time": 0.0, "n": 2})

    # -- Metrics ----------------------------------------------------------------------------------

    def test_metrics_show_transfers_in_progress(self) -> None:
        """/metrics shows each unfinished transfer's done and size bytes, labelled by id,
        peer and direction; finished ones are not shown."""
        out = self.files.add(direction="send", peer="peer-a", name="a", size=100, done=40,
                             state="sending")
        inc = self.files.add(direction="receive", peer="peer-\"b\n", name="b", size=7, done=1,
                             state="receiving")
        ended = self.files.add(direction="receive", peer="peer-c", name="c", size=9)
        self.files.finish(ended)
        response = self.successResultOf(self.http.get("http://127.0.0.1/metrics", headers=AUTH))
        text = self.successResultOf(response.content()).decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        done = {(s.labels["transfer"], s.labels["peer"], s.labels["direction"]): s.value
                for s in families["p2pnet_transfer_done_bytes"].samples}
        self.assertEqual(done, {(out.id, "peer-a", "out"): 40, (inc.id, 'peer-"b\n', "in"): 1})
        sizes = {s.labels["transfer"]: s.value
                 for s in families["p2pnet_transfer_size_bytes"].samples}
        self.assertEqual(sizes, {out.id: 100, inc.id: 7})


class NodeTests(SynchronousTestCase):
    """A node's control API serves its events; serve_file_transfers adds the transfers."""

    def node(self, control: str | None) -> PeerNetworkService:
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", identifier="node",
                              trust_protocol=always_trust)
        return PeerNetworkService(network, listen="tcp:0", control=control,
                                  control_token=TOKEN if control else None)

    def test_served_on_the_node(self) -> None:
        """GET /api/events is served by every node with a control API; the transfers'
        routes and events once serve_file_transfers is called."""
        node = self.node("tcp:0:interface=127.0.0.1")
        http = StubTreq(node.api)

        def get(path: str) -> tuple[int, Any]:
            response = self.successResultOf(http.get("http://127.0.0.1" + path, headers=AUTH))
            return response.code, json.loads(self.successResultOf(response.content()))

        self.assertEqual(get("/api/events"), (200, {"events": [], "last": 0}))
        self.assertEqual(get("/api/transfers")[0], 404)
        files = FakeFileTransfers(["peer-a"])
        self.assertIsInstance(serve_file_transfers(node, files), FileRoutes)
        transfer = files.add(direction="receive", peer="peer-a", name="a", size=1)
        files.finish(transfer)
        self.assertEqual(get("/api/transfers")[1]["transfers"][0]["id"], transfer.id)
        self.assertEqual(get("/api/events")[1]["events"][0]["kind"], "file.received")

    def test_no_control_api(self) -> None:
        """Without a control API there is nothing to serve the transfers on."""
        self.assertIsNone(serve_file_transfers(self.node(None), FakeFileTransfers()))



class RealFileTransfersTests(SynchronousTestCase):
    """The routes over the real FileTransfers of two networks joined in memory: a file
    offered through POST /api/files arrives, a long poll follows it, the events and metrics
    show it, and the CLI's send-file follows it to the end."""

    def setUp(self) -> None:
        from p2pnet_tx.distribution import Distribution
        from p2pnet_tx.files.store import FileStore
        from p2pnet_tx.files.transfers import FileTransfers
        from p2pnet_tx.testing import connected_channels

        self.reactor = MemoryReactorClock()
        parts = []
        for name in ("alice", "bob"):
            network = PeerNetwork(self.reactor, transport="tcp", identifier=name,
                                  trust_protocol=always_trust)
            files = FileTransfers(network, Distribution(network),
                                  FileStore(self.mktemp(), min_free=0))
            files.startService()
            self.addCleanup(files.stopService)
            parts.append((network, files))
        (self.alice, self.files), (self.bob, self.bob_files) = parts
        _, _, self.pump = connected_channels(
            lambda: self.bob.make_channel(outbound=False),
            lambda: self.alice.make_channel(outbound=True), self.reactor)
        self.assertEqual(len(self.alice.trusted_peer_channels), 1)
        self.api = ControlAPI(self.alice, TOKEN, MessageLog(self.reactor), "tcp:8051")
        self.events = EventLog(self.reactor)
        self.routes = FileRoutes(self.files, self.api, self.reactor, self.events)
        EventRoutes(self.events, self.api)
        self.http = StubTreq(self.api)
        self.path = os.path.abspath(self.mktemp())
        self.data = bytes(range(256)) * 2500  # 640,000 bytes: three chunks
        with open(self.path, "wb") as f:
            f.write(self.data)

    def run_until(self, done: Any, limit: int = 500) -> None:
        """Turn the reactor and the connection until C{done()}, a bounded number of times."""
        for _ in range(limit):
            if done():
                return
            self.reactor.advance(0.01)
            self.pump.flush()
            self.http.flush()
        self.fail("never done")

    def get(self, path: str) -> Any:
        response = self.successResultOf(
            self.http.request("GET", "http://127.0.0.1" + path, headers=AUTH))
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_file_sent_and_followed(self) -> None:
        """POST /api/files starts a transfer to bob; a long poll on it answers as it moves;
        it ends done, the file arrives whole, and the events say so on both sides."""
        d = self.http.request("POST", "http://127.0.0.1/api/files", headers=AUTH,
                              json={"path": self.path, "to": ["bob"]})
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        [transfer] = json.loads(self.successResultOf(response.content()))["transfers"]
        self.assertEqual((transfer["peer"], transfer["size"]), ("bob", len(self.data)))
        poll = self.http.request(
            "GET", f"http://127.0.0.1/api/transfers/{transfer['id']}?wait=20&after=0"
                   f"&state={transfer['state']}", headers=AUTH)
        self.http.flush()
        self.assertNoResult(poll)
        self.run_until(lambda: self.files.get(transfer["id"]).is_finished)
        self.assertEqual(self.successResultOf(poll).code, 200)
        code, body = self.get(f"/api/transfers/{transfer['id']}")
        self.assertEqual((code, body["state"], body["done"]), (200, "done", len(self.data)))
        [received] = self.bob_files.transfers()
        self.assertEqual(received.state, "done")
        with open(received.path, "rb") as f:
            self.assertEqual(f.read(), self.data)
        kinds = [e["kind"] for e in self.get("/api/events")[1]["events"]]
        self.assertEqual(kinds, ["file.sent"])
        self.assertEqual(self.routes.progress(), [])
        self.assertEqual(self.routes.waiting, 0)

    def test_unknown_peer_and_bad_ids_with_the_real_part(self) -> None:
        """The real part's refusals come back as one-line errors: an unknown peer is a 409,
        an unknown transfer a 404."""
        d = self.http.request("POST", "http://127.0.0.1/api/files", headers=AUTH,
                              json={"path": self.path, "to": ["carol"]})
        response = self.successResultOf(d)
        self.assertEqual(response.code, 409)
        error = json.loads(self.successResultOf(response.content()))["error"]
        self.assertIn("carol", error)
        self.assertNotIn("\n", error)
        self.assertEqual(self.get("/api/transfers/0123456789ab")[0], 404)

    def test_ctl_send_file_with_the_real_part(self) -> None:
        """p2pnet-ctl send-file follows the real transfer to its end, and exits 0."""
        from twisted.internet.defer import ensureDeferred

        from p2pnet_tx.ctl import parser, run
        from p2pnet_tx.datadir import NodeDataDir

        data_dir = NodeDataDir(self.mktemp()).ensure()
        (data_dir.path / "control.token").write_text(TOKEN)
        args = parser().parse_args(["--data-dir", str(data_dir.path), "--url",
                                    "http://127.0.0.1", "send-file", self.path, "--to", "bob"])
        out = io.StringIO()
        d = ensureDeferred(run(self.reactor, args, out, self.http))
        results: list[Any] = []
        d.addBoth(results.append)
        self.run_until(lambda: bool(results))
        self.assertEqual(results, [0])
        self.assertTrue(out.getvalue().endswith(f"{os.path.basename(self.path)} to bob: done "
                                                f"(625.0 KiB)\n"), out.getvalue())
